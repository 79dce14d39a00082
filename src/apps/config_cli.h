#pragma once
// The configuration options every config-taking subcommand shares (registered in main.cpp):
//   --config FILE        YAML file applied over the defaults
//   --set KEY=VALUE      override, repeatable, applied after the file in command-line order
//   --dump-config        print the resolved configuration and exit

#include <string>
#include <vector>

#include "common/config.h"

namespace ffc::app {

struct ConfigOptions {
  std::string file;
  std::vector<std::string> sets;
  bool dump = false;
};

// Defaults <- file <- sets, then cross-key checks. Throws ConfigError.
Config resolve_config(const ConfigOptions& options);

}  // namespace ffc::app
