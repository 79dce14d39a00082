// `ffc config`: resolve, validate and print a configuration; list the keys.

#include <iostream>

#include "apps/commands.h"

namespace ffc::app {

int run_config(const ConfigCommand& cmd) {
  if (cmd.keys) {
    if (cmd.markdown) {
      std::cout << config_keys_markdown();
      return 0;
    }
    for (const auto& k : config_keys()) {
      std::cout << k.name << " (" << k.type << ", default " << k.default_value << "; " << k.allowed
                << ")\n    " << k.doc << "\n";
    }
    return 0;
  }
  std::cout << dump_config(resolve_config(cmd.config));
  return 0;
}

}  // namespace ffc::app
