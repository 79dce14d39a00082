#pragma once

#include <string>

namespace ffc {

// "0.1.0"
std::string project_version();
// Short git commit of the build ("3f2a9c1d0b7e", with "-dirty" for local changes), or "unknown".
std::string git_revision();

}  // namespace ffc
