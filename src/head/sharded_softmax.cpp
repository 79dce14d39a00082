#include "head/sharded_softmax.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <limits>

#include "common/error.h"

namespace ffc::head {

CeResult softmax_ce_(at::Tensor& cos, const CeTargets& targets, const MarginSpec& margin,
                     comm::Communicator& comm) {
  const int64_t rows = cos.size(0);
  const int64_t cols = cos.size(1);
  const auto fopt = at::TensorOptions().dtype(at::kFloat).device(cos.device());
  FFC_CHECK(targets.column.numel() == rows && targets.weight.numel() == rows,
            "softmax_ce_: targets for " + std::to_string(targets.column.numel()) +
                " rows, cosines for " + std::to_string(rows));
  CeResult result;
  const at::Tensor w = targets.weight.to(at::kFloat);
  const at::Tensor ce_rows = w > 0;
  result.samples = ce_rows.sum().item<int64_t>();
  if (result.samples == 0) {
    cos.zero_();
    return result;
  }
  // The CE rows whose class is one of this rank's columns.
  const at::Tensor mine = (targets.column >= 0).logical_and(ce_rows);
  const at::Tensor my_rows = mine.nonzero().squeeze(1);
  const at::Tensor my_cols = targets.column.index_select(0, my_rows);
  const at::Tensor target_cos = cols > 0 ? cos.index({my_rows, my_cols}) : at::empty({0}, fopt);

  // Every rank learns every row's target cosine (the sv threshold needs it; it is also logged).
  at::Tensor all_target = at::zeros({rows}, fopt);
  all_target.index_put_({my_rows}, target_cos);
  comm.all_reduce(all_target, comm::ReduceOp::kSum);
  result.mean_target =
      at::where(ce_rows, all_target, at::zeros_like(all_target)).sum().item<double>() /
      static_cast<double>(result.samples);

  at::Tensor sv;  // float 0/1 mask of re-weighted hard negatives
  if (margin.type == MarginType::kSv && cols > 0) {
    const at::Tensor threshold = (all_target - margin.m3).unsqueeze(1);
    sv = (cos > threshold).logical_and_(ce_rows.unsqueeze(1)).to(at::kFloat);
    cos.addcmul_(cos, sv, margin.sv_t);  // cos * (1 + t) where masked
    cos.add_(sv, margin.sv_t);           // + t where masked
  }
  const at::Tensor z = margin.apply(target_cos);
  const at::Tensor dz = margin.derivative(target_cos);
  if (cols > 0) {
    cos.index_put_({my_rows, my_cols}, z);
  }
  cos.mul_(margin.scale);

  // Distributed softmax: max and sum over every rank's columns.
  at::Tensor row_max = cols > 0 ? std::get<0>(cos.max(1))
                                : at::full({rows}, -std::numeric_limits<float>::infinity(), fopt);
  comm.all_reduce(row_max, comm::ReduceOp::kMax);
  row_max = at::where(ce_rows, row_max, at::zeros_like(row_max));  // rows without CE: unused
  cos.sub_(row_max.unsqueeze(1)).exp_();
  at::Tensor sum = cols > 0 ? cos.sum(1) : at::zeros({rows}, fopt);
  comm.all_reduce(sum, comm::ReduceOp::kSum);
  at::Tensor target_logit = at::zeros({rows}, fopt);
  target_logit.index_put_({my_rows}, z * margin.scale - row_max.index_select(0, my_rows));
  comm.all_reduce(target_logit, comm::ReduceOp::kSum);
  const at::Tensor per_row = sum.log() - target_logit;
  result.loss = at::where(ce_rows, per_row * w, at::zeros_like(w)).sum().item<double>();

  // dJ/dcos in place: softmax * w * s on every column, then the target column replaced by
  // (p_y - 1) * w * s * dz, and hard negatives scaled by (1 + t).
  const at::Tensor safe_sum = at::where(ce_rows, sum, at::ones_like(sum));
  const at::Tensor row_scale = at::where(ce_rows, w * margin.scale / safe_sum, at::zeros_like(w));
  if (cols > 0) {
    cos.mul_(row_scale.unsqueeze(1));
    if (sv.defined()) {
      cos.addcmul_(cos, sv, margin.sv_t);
    }
    const at::Tensor p_target =
        at::exp(target_logit.index_select(0, my_rows)) / safe_sum.index_select(0, my_rows);
    const at::Tensor w_mine = w.index_select(0, my_rows);
    cos.index_put_({my_rows, my_cols}, (p_target - 1.0) * w_mine * margin.scale * dz);
  }
  return result;
}

FreshResult fresh_topk(const at::Tensor& cos, const at::Tensor& fresh_weight, int64_t k,
                       comm::Communicator& comm) {
  FreshResult result;
  const auto lopt = at::TensorOptions().dtype(at::kLong).device(cos.device());
  const at::Tensor u = fresh_weight.to(at::kFloat);
  const at::Tensor fresh_rows = (u > 0).nonzero().squeeze(1);
  result.samples = fresh_rows.numel();
  if (result.samples == 0 || k <= 0) {
    return result;
  }
  const int64_t nf = result.samples;
  const int64_t cols = cos.size(1);
  const int64_t local_k = std::min(k, cols);
  // This rank's k best columns per fresh row, padded with -inf (a rank may hold fewer than k).
  at::Tensor values = at::full({nf, k}, -std::numeric_limits<float>::infinity(), cos.options());
  at::Tensor index = at::full({nf, k}, -1, lopt);
  if (local_k > 0) {
    auto top = cos.index_select(0, fresh_rows).topk(local_k, 1);
    values.narrow(1, 0, local_k).copy_(std::get<0>(top));
    index.narrow(1, 0, local_k).copy_(std::get<1>(top));
  }
  // The global k best among every rank's k best.
  const int64_t p = comm.size();
  at::Tensor gathered = at::empty({p * nf, k}, values.options());
  comm.all_gather(values, gathered);
  gathered = gathered.view({p, nf, k}).permute({1, 0, 2}).reshape({nf, p * k});
  auto best = gathered.topk(k, 1);
  const at::Tensor best_values = std::get<0>(best);
  const at::Tensor best_index = std::get<1>(best);
  const at::Tensor u_rows = u.index_select(0, fresh_rows);
  result.loss = (best_values.clamp_min(0).sum(1) * u_rows).sum().item<double>();

  const at::Tensor owner = best_index.div(k, "floor");
  const at::Tensor position = best_index.remainder(k);
  const at::Tensor selected = (owner == comm.rank()).logical_and(best_values > 0);
  result.columns = index.gather(1, position).masked_select(selected);
  result.rows = fresh_rows.unsqueeze(1).expand({nf, k}).masked_select(selected);
  result.weights = u_rows.unsqueeze(1).expand({nf, k}).masked_select(selected);
  return result;
}

int64_t default_fresh_k(int64_t pool_size) {
  return std::clamp<int64_t>(static_cast<int64_t>(0.0002 * static_cast<double>(pool_size)), 3, 10);
}

}  // namespace ffc::head
