#include "common/methods.h"

#include <algorithm>

namespace ffc {

const std::vector<MethodInfo>& methods() {
  static const std::vector<MethodInfo> table = {
      {"fc", "model-parallel FC", "combined", true, MethodSampler::kInstance},
      {"pfc", "Partial FC", "combined", true, MethodSampler::kInstance},
      {"vfc", "Virtual FC", "arc", true, MethodSampler::kKPerIdentity},
      {"ffc", "FFC", "am", true, MethodSampler::kDual},
      // No head: its loss is never built; "combined" is what auto resolved to before the table.
      {"backbone", "the backbone alone", "combined", false, MethodSampler::kInstance},
  };
  return table;
}

const MethodInfo* find_method(const std::string& name) {
  for (const MethodInfo& m : methods()) {
    if (name == m.name) {
      return &m;
    }
  }
  return nullptr;
}

std::vector<std::string> method_names(bool with_backbone) {
  std::vector<std::string> out;
  for (const MethodInfo& m : methods()) {
    if (m.has_head || with_backbone) {
      out.emplace_back(m.name);
    }
  }
  return out;
}

std::string method_list(bool with_backbone, const std::string& last, bool titles,
                        const std::string& sep) {
  std::vector<std::string> parts;
  for (const MethodInfo& m : methods()) {
    if (m.has_head || with_backbone) {
      parts.emplace_back(titles ? m.title : m.name);
    }
  }
  std::string s;
  for (size_t i = 0; i < parts.size(); ++i) {
    s += (i == 0 ? std::string() : i + 1 == parts.size() ? last : sep) + parts[i];
  }
  return s;
}

int64_t default_pool_size(int64_t num_classes, int64_t global_gallery_rows) {
  return std::max<int64_t>((num_classes + 99) / 100, global_gallery_rows);
}

}  // namespace ffc
