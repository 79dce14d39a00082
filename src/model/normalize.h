#pragma once
// L2 normalisation of embeddings, as torch.nn.functional.normalize(x, p=2, dim=1, eps=1e-12):
// each row divided by max(||row||_2, eps). Backbones return un-normalised embeddings; the heads
// (cosine logits) and the evaluation normalise them with this.

#include <ATen/core/Tensor.h>

namespace ffc::model {

at::Tensor l2_normalize(const at::Tensor& embeddings, double eps = 1e-12);

}  // namespace ffc::model
