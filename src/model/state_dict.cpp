#include "model/state_dict.h"

#include <torch/nn/module.h>

namespace ffc::model {
namespace {

void collect(const torch::nn::Module& module, const std::string& prefix, bool with_buffers,
             NamedTensors& out) {
  for (const auto& p : module.named_parameters(/*recurse=*/false)) {
    out.emplace_back(prefix + p.key(), p.value());
  }
  if (with_buffers) {
    for (const auto& b : module.named_buffers(/*recurse=*/false)) {
      out.emplace_back(prefix + b.key(), b.value());
    }
  }
  for (const auto& child : module.named_children()) {
    collect(*child.value(), prefix + child.key() + ".", with_buffers, out);
  }
}

}  // namespace

NamedTensors state_dict(const torch::nn::Module& module) {
  NamedTensors out;
  collect(module, "", true, out);
  return out;
}

NamedTensors named_parameters(const torch::nn::Module& module) {
  NamedTensors out;
  collect(module, "", false, out);
  return out;
}

}  // namespace ffc::model
