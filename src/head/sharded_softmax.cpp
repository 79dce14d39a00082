#include "head/sharded_softmax.h"

#include <ATen/ATen.h>
#include <ATen/record_function.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "common/error.h"
#include "head/softmax_kernels.h"

namespace ffc::head {

namespace {

// Whether the fused CPU kernels (head/softmax_kernels.h) can work on `t` in place.
bool cpu_float_buffer(const at::Tensor& t) {
  return t.device().is_cpu() && t.scalar_type() == at::kFloat && t.is_contiguous();
}

// The CPU path: two passes over the buffer (head/softmax_kernels.h), the rest on [rows] vectors.
// The same collectives in the same order as the generic path, so ranks may take either.
CeResult softmax_ce_cpu(at::Tensor& cos, const CeTargets& targets, const MarginSpec& margin,
                        comm::Communicator& comm, const at::Tensor& col_scale) {
  const int64_t rows = cos.size(0);
  const int64_t cols = cos.size(1);
  const auto scale = static_cast<float>(margin.scale);
  CeResult result;
  const at::Tensor w = targets.weight.to(at::kFloat).contiguous();
  const at::Tensor ce_rows = w > 0;
  const at::Tensor zero = at::zeros({}, w.options());
  const at::Tensor mine = (targets.column >= 0).logical_and(ce_rows);
  // The skipped (target) column of each row: the class's column in this rank's CE rows, else -1.
  const at::Tensor skip =
      at::where(mine, targets.column, at::full_like(targets.column, -1)).to(at::kLong).contiguous();
  const int64_t* skip_p = skip.data_ptr<int64_t>();
  float* x = cos.data_ptr<float>();
  const float* cs = col_scale.defined() ? col_scale.data_ptr<float>() : nullptr;

  at::Tensor target_cos = at::zeros({rows}, w.options());
  float* tc = target_cos.data_ptr<float>();
  for (int64_t i = 0; i < rows; ++i) {
    const int64_t k = skip_p[i];
    if (k >= 0) {
      tc[i] = x[i * cols + k] * (cs ? cs[k] : 1.0f);
    }
  }
  at::Tensor all_target = target_cos;
  comm.all_reduce(all_target, comm::ReduceOp::kSum);
  const at::Tensor samples = ce_rows.sum().to(at::kFloat);
  result.mean_target = at::where(ce_rows, all_target, zero).sum() / samples.clamp_min(1);
  const at::Tensor z = margin.apply(all_target).contiguous();
  const at::Tensor dz = margin.derivative(all_target).contiguous();

  // Pass 1: each row's max and sum of exponentials over its columns but the target (the buffer
  // now holds exponentials relative to their chunk's max), then the target's margin logit.
  at::Tensor row_max = at::empty({rows}, w.options());
  at::Tensor row_sum = at::empty({rows}, w.options());
  float* mx = row_max.data_ptr<float>();
  float* sm = row_sum.data_ptr<float>();
  at::Tensor chunk_max = at::empty({rows * cpu::softmax_chunks(cols)}, w.options());
  {
    RECORD_FUNCTION("ffc::softmax_exp", std::vector<c10::IValue>());
    cpu::softmax_exp_(x, rows, cols, scale, cs, skip_p, mx, sm, chunk_max.data_ptr<float>());
  }
  const float* zp = z.data_ptr<float>();
  for (int64_t i = 0; i < rows; ++i) {
    if (skip_p[i] >= 0) {
      cpu::merge_max_sum(mx[i], sm[i], scale * zp[i], 1.0f);  // the target's margin logit
    }
  }
  at::Tensor global_max = row_max.clone();
  comm.all_reduce(global_max, comm::ReduceOp::kMax);
  global_max = at::where(at::isfinite(global_max), global_max, zero).contiguous();
  const float* gm = global_max.data_ptr<float>();
  for (int64_t i = 0; i < rows; ++i) {
    sm[i] =
        mx[i] == -std::numeric_limits<float>::infinity() ? 0.0f : sm[i] * std::exp(mx[i] - gm[i]);
  }
  at::Tensor sum = row_sum;
  comm.all_reduce(sum, comm::ReduceOp::kSum);
  at::Tensor target_logit = at::where(mine, z * margin.scale - global_max, zero);
  comm.all_reduce(target_logit, comm::ReduceOp::kSum);
  const at::Tensor safe_sum = at::where(ce_rows, sum, at::ones_like(sum));
  result.loss = at::where(ce_rows, (safe_sum.log() - target_logit) * w, zero).sum();

  // Pass 2: dJ/dcos = softmax * w * s (times col_scale), then the target columns.
  const at::Tensor row_scale = at::where(ce_rows, w * margin.scale / safe_sum, zero).contiguous();
  {
    RECORD_FUNCTION("ffc::softmax_scale", std::vector<c10::IValue>());
    cpu::softmax_scale_(x, rows, cols, cs, chunk_max.data_ptr<float>(), gm,
                        row_scale.data_ptr<float>());
  }
  const at::Tensor target_grad =
      ((at::exp(target_logit) / safe_sum - 1.0) * w * margin.scale * dz).contiguous();
  const float* tg = target_grad.data_ptr<float>();
  for (int64_t i = 0; i < rows; ++i) {
    const int64_t k = skip_p[i];
    if (k >= 0) {
      x[i * cols + k] = tg[i] * (cs ? cs[k] : 1.0f);
    }
  }
  return result;
}

}  // namespace

CeResult softmax_ce_(at::Tensor& cos, const CeTargets& targets, const MarginSpec& margin,
                     comm::Communicator& comm, const at::Tensor& col_scale) {
  const int64_t rows = cos.size(0);
  const int64_t cols = cos.size(1);
  FFC_CHECK(targets.column.numel() == rows && targets.weight.numel() == rows,
            "softmax_ce_: targets for " + std::to_string(targets.column.numel()) +
                " rows, cosines for " + std::to_string(rows));
  FFC_CHECK(!col_scale.defined() || col_scale.numel() == cols,
            "softmax_ce_: a column scale of " + std::to_string(col_scale.numel()) +
                " entries for " + std::to_string(cols) + " columns");
  if (cpu_float_buffer(cos) && cols > 0 && margin.type != MarginType::kSv &&
      (!col_scale.defined() || cpu_float_buffer(col_scale))) {
    return softmax_ce_cpu(cos, targets, margin, comm, col_scale);
  }
  if (col_scale.defined() && cols > 0) {
    cos.mul_(col_scale.unsqueeze(0));
  }
  CeResult result;
  const at::Tensor w = targets.weight.to(at::kFloat);
  const at::Tensor ce_rows = w > 0;
  const at::Tensor zero = at::zeros({}, w.options());
  // The CE rows whose class is one of this rank's columns; `col` is a valid column everywhere
  // (0 elsewhere), so gathers and scatters need no row selection.
  const at::Tensor mine = (targets.column >= 0).logical_and(ce_rows);
  const at::Tensor col = targets.column.clamp_min(0).unsqueeze(1);
  at::Tensor target_cos = zero.expand({rows}).contiguous();
  if (cols > 0) {
    target_cos = at::where(mine, cos.gather(1, col).squeeze(1), zero);
  }
  // Every rank learns every row's target cosine (the sv threshold needs it; it is also logged).
  at::Tensor all_target = target_cos;
  comm.all_reduce(all_target, comm::ReduceOp::kSum);
  const at::Tensor samples = ce_rows.sum().to(at::kFloat);
  result.mean_target = at::where(ce_rows, all_target, zero).sum() / samples.clamp_min(1);

  at::Tensor sv;  // float 0/1 mask of re-weighted hard negatives
  if (margin.type == MarginType::kSv && cols > 0) {
    const at::Tensor threshold = (all_target - margin.m3).unsqueeze(1);
    sv = (cos > threshold).logical_and_(ce_rows.unsqueeze(1)).to(at::kFloat);
    cos.addcmul_(cos, sv, margin.sv_t);  // cos * (1 + t) where masked
    cos.add_(sv, margin.sv_t);           // + t where masked
  }
  // Margins of the target cosines (rows that are not this rank's keep their column's value).
  const at::Tensor z = margin.apply(all_target);
  const at::Tensor dz = margin.derivative(all_target);
  if (cols > 0) {
    cos.scatter_(1, col, at::where(mine, z, cos.gather(1, col).squeeze(1)).unsqueeze(1));
  }
  cos.mul_(margin.scale);

  // Distributed softmax: max and sum over every rank's columns. Every row subtracts its own
  // maximum (a row with no column anywhere has none: 0).
  at::Tensor row_max = cols > 0
                           ? std::get<0>(cos.max(1))
                           : at::full({rows}, -std::numeric_limits<float>::infinity(), w.options());
  comm.all_reduce(row_max, comm::ReduceOp::kMax);
  row_max = at::where(at::isfinite(row_max), row_max, zero);
  cos.sub_(row_max.unsqueeze(1)).exp_();
  at::Tensor sum = cols > 0 ? cos.sum(1) : zero.expand({rows}).contiguous();
  comm.all_reduce(sum, comm::ReduceOp::kSum);
  at::Tensor target_logit = at::where(mine, z * margin.scale - row_max, zero);
  comm.all_reduce(target_logit, comm::ReduceOp::kSum);
  const at::Tensor safe_sum = at::where(ce_rows, sum, at::ones_like(sum));
  const at::Tensor per_row = safe_sum.log() - target_logit;
  result.loss = at::where(ce_rows, per_row * w, zero).sum();

  // dJ/dcos in place: softmax * w * s on every column, then the target column replaced by
  // (p_y - 1) * w * s * dz, and hard negatives scaled by (1 + t).
  if (cols > 0) {
    const at::Tensor row_scale = at::where(ce_rows, w * margin.scale / safe_sum, zero);
    cos.mul_(row_scale.unsqueeze(1));
    if (sv.defined()) {
      cos.addcmul_(cos, sv, margin.sv_t);
    }
    const at::Tensor p_target = at::exp(target_logit) / safe_sum;
    const at::Tensor target_grad = (p_target - 1.0) * w * margin.scale * dz;
    cos.scatter_(1, col, at::where(mine, target_grad, cos.gather(1, col).squeeze(1)).unsqueeze(1));
    if (col_scale.defined()) {
      cos.mul_(col_scale.unsqueeze(0));
    }
  }
  return result;
}

FreshResult fresh_topk(const at::Tensor& cos, const at::Tensor& fresh_weight, int64_t k,
                       comm::Communicator& comm) {
  FreshResult result;
  const int64_t rows = cos.size(0);
  const int64_t cols = cos.size(1);
  const at::Tensor u = fresh_weight.to(at::kFloat);
  const at::Tensor zero = at::zeros({}, u.options());
  if (rows == 0 || k <= 0) {
    result.loss = zero;
    return result;
  }
  const int64_t local_k = std::min(k, cols);
  // This rank's k best columns per row, padded with -inf (a rank may hold fewer than k). Every
  // row takes part (rows with u_i = 0 weigh nothing), so no row selection is needed.
  at::Tensor values = at::full({rows, k}, -std::numeric_limits<float>::infinity(), cos.options());
  at::Tensor index = at::zeros({rows, k}, cos.options().dtype(at::kLong));
  if (local_k > 0 && local_k == k && cpu_float_buffer(cos)) {
    RECORD_FUNCTION("ffc::row_topk", std::vector<c10::IValue>());
    cpu::row_topk(cos.data_ptr<float>(), rows, cols, k, values.data_ptr<float>(),
                  index.data_ptr<int64_t>());
  } else if (local_k > 0) {
    auto top = cos.topk(local_k, 1);
    values.narrow(1, 0, local_k).copy_(std::get<0>(top));
    index.narrow(1, 0, local_k).copy_(std::get<1>(top));
  }
  // The global k best among every rank's k best.
  const int64_t p = comm.size();
  at::Tensor gathered = at::empty({p * rows, k}, values.options());
  comm.all_gather(values, gathered);
  gathered = gathered.view({p, rows, k}).permute({1, 0, 2}).reshape({rows, p * k});
  auto best = gathered.topk(k, 1);
  const at::Tensor best_values = std::get<0>(best);
  const at::Tensor best_index = std::get<1>(best);
  result.loss = (best_values.clamp_min(0).sum(1) * u).sum();

  const at::Tensor owner = best_index.div(k, "floor");
  const at::Tensor position = best_index.remainder(k);
  const at::Tensor selected =
      (owner == comm.rank()).logical_and_(best_values > 0).logical_and_((u > 0).unsqueeze(1));
  result.columns = at::where(selected, index.gather(1, position), at::zeros_like(position));
  result.weights = at::where(selected, u.unsqueeze(1).expand({rows, k}), zero);
  return result;
}

int64_t default_fresh_k(int64_t pool_size) {
  return std::clamp<int64_t>(static_cast<int64_t>(0.0002 * static_cast<double>(pool_size)), 3, 10);
}

}  // namespace ffc::head
