#pragma once
// The command-line network options (apps/commands.h) as the network file loader takes them.

#include "apps/commands.h"
#include "eval/network_file.h"

namespace ffc::app {

inline eval::NetworkSource network_source(const NetworkOptions& options) {
  eval::NetworkSource source;
  source.backbone = options.backbone;
  source.checkpoint = options.checkpoint;
  source.net = options.net;
  source.input_norm = options.input_norm;
  return source;
}

}  // namespace ffc::app
