#include "common/version.h"

#include "common/version_config.h"

namespace ffc {
namespace detail {
extern const char* const kGitRevision;
}

std::string project_version() {
  return FFC_VERSION_STRING;
}
std::string git_revision() {
  return detail::kGitRevision;
}

}  // namespace ffc
