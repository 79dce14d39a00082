#include "model/normalize.h"

#include <ATen/core/Tensor.h>

#include "common/error.h"

namespace ffc::model {

at::Tensor l2_normalize(const at::Tensor& embeddings, double eps) {
  FFC_CHECK(embeddings.dim() == 2, "l2_normalize takes [B, D] embeddings");
  return embeddings.div(embeddings.norm(2, {1}, /*keepdim=*/true).clamp_min(eps));
}

}  // namespace ffc::model
