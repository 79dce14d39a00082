#pragma once
// PyTorch's state dict of a LibTorch module: names and order as torch.nn.Module.state_dict()
// gives them (each module's own parameters, then its own buffers, then its children in
// registration order, keys joined with dots). LibTorch has no state_dict(); its
// named_parameters() lists all parameters before all buffers, which is not PyTorch's order.

#include <ATen/core/Tensor.h>

#include <string>
#include <utility>
#include <vector>

namespace torch::nn {
class Module;
}

namespace ffc::model {

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

// The tensors themselves (not copies): writing into them writes into the module.
NamedTensors state_dict(const torch::nn::Module& module);

// Parameters only, in state-dict order.
NamedTensors named_parameters(const torch::nn::Module& module);

}  // namespace ffc::model
