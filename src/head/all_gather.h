#pragma once
// Autograd-aware gather of rows: forward concatenates every rank's rows (rank order); backward
// sums the gradients of all ranks (reduce-scatter) and returns each rank the part of its own
// rows. With a loss J that is the same on every rank, the result is dJ/d(own rows): backbone
// gradients must then be summed over ranks, not averaged (docs/method.md, "Gradients").

#include <ATen/core/Tensor.h>

#include <vector>

#include "comm/communicator.h"

namespace ffc::head {

// counts[r] = rows of rank r (x.size(0) == counts[rank]).
at::Tensor all_gather_rows(const at::Tensor& x, comm::Communicator& comm,
                           const std::vector<int64_t>& counts);

}  // namespace ffc::head
