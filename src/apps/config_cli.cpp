#include "apps/config_cli.h"

namespace ffc::app {

Config resolve_config(const ConfigOptions& options) {
  ConfigLoader loader;
  if (!options.file.empty()) {
    loader.load_file(options.file);
  }
  for (const auto& s : options.sets) {
    loader.set(s);
  }
  return loader.finish();
}

}  // namespace ffc::app
