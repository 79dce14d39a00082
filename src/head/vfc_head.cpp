#include "head/vfc_head.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <map>

#include "comm/device.h"
#include "common/error.h"
#include "common/random.h"

namespace ffc::head {

VfcHead::VfcHead(const VfcOptions& options, comm::Communicator& comm)
    : options_(options), comm_(comm) {
  FFC_CHECK(options.rows >= 1, "Virtual FC needs at least one row");
  // Xavier uniform: U(-a, a), a = sqrt(6 / (fan_in + fan_out)), from the seed.
  const double a = std::sqrt(6.0 / static_cast<double>(options.rows + options.dim));
  weight_ = at::empty({options.rows, options.dim}, at::kFloat);
  float* w = weight_.data_ptr<float>();
  Rng rng(mix({options.seed, 0xfcf}));
  for (int64_t i = 0; i < weight_.numel(); ++i) {
    w[i] = static_cast<float>((2 * rng.uniform() - 1) * a);
  }
  weight_ = weight_.to(comm.device());
  weight_.set_requires_grad(true);
  saved_ = at::zeros({options.rows, options.dim}, weight_.options().requires_grad(false));
}

at::Tensor VfcHead::forward(const at::Tensor& features, const at::Tensor& labels, VfcStats* stats) {
  const int64_t m = options_.rows;
  const at::Device device = weight_.device();
  auto upload = [&](const std::vector<int64_t>& v) {
    return comm::to_device(at::tensor(v, at::kLong), device);
  };
  {
    at::NoGradGuard no_grad;
    // 1. Give back the rows borrowed last step.
    if (!borrowed_.empty()) {
      const at::Tensor b = upload(borrowed_);
      weight_.index_copy_(0, b, saved_.index_select(0, b));
    }
    borrowed_.clear();
  }
  // 2. Identities of the gathered batch (labels on the host): their rows and the detached sums of
  // their features (on the device).
  const at::Tensor f_all = comm::all_gather_v(comm_, features.detach().contiguous());
  const at::Tensor l_all = comm::all_gather_v(comm_.host(), labels.to(at::kLong).contiguous());
  std::map<int64_t, int64_t> row_of;  // label -> row, ascending labels
  const int64_t* l = l_all.data_ptr<int64_t>();
  for (int64_t i = 0; i < l_all.numel(); ++i) {
    row_of.emplace(l[i], -1);
  }
  std::vector<bool> used(static_cast<size_t>(m), false);
  std::vector<int64_t> deferred;
  for (auto& [label, row] : row_of) {
    const int64_t home = label % m;
    if (!used[home]) {
      used[home] = true;
      row = home;
    } else {
      deferred.push_back(label);
    }
  }
  int64_t next_free = 0;
  for (int64_t label : deferred) {
    while (next_free < m && used[next_free]) {
      ++next_free;
    }
    FFC_CHECK(next_free < m, "Virtual FC: " + std::to_string(row_of.size()) +
                                 " identities in one batch exceed the " + std::to_string(m) +
                                 " virtual rows; raise vfc_rows");
    used[next_free] = true;
    row_of[label] = next_free;
    borrowed_.push_back(next_free);
  }
  {
    at::NoGradGuard no_grad;
    if (!borrowed_.empty()) {
      const at::Tensor b = upload(borrowed_);
      saved_.index_copy_(0, b, weight_.index_select(0, b));
    }
    // Rows touched, in ascending label order, and each sample's position among them.
    std::vector<int64_t> touched;
    std::map<int64_t, int64_t> position;  // label -> position in touched
    for (const auto& [label, row] : row_of) {
      position.emplace(label, static_cast<int64_t>(touched.size()));
      touched.push_back(row);
    }
    std::vector<int64_t> sample_position(static_cast<size_t>(l_all.numel()));
    for (int64_t i = 0; i < l_all.numel(); ++i) {
      sample_position[i] = position[l[i]];
    }
    at::Tensor sums =
        at::zeros({static_cast<int64_t>(touched.size()), options_.dim}, f_all.options())
            .index_add_(0, upload(sample_position), f_all);
    weight_.index_copy_(0, upload(touched), sums);
  }
  // 3. ArcFace over all rows for this rank's samples.
  std::vector<int64_t> mine(static_cast<size_t>(labels.size(0)));
  const at::Tensor local = labels.to(at::kLong).contiguous();
  for (int64_t i = 0; i < local.numel(); ++i) {
    mine[i] = row_of[local.data_ptr<int64_t>()[i]];
  }
  const at::Tensor target = upload(mine).unsqueeze(1);
  const at::Tensor fn = features / features.norm(2, 1, true).clamp_min(1e-12);
  const at::Tensor wn = weight_ / weight_.norm(2, 1, true).clamp_min(1e-12);
  const at::Tensor cos = at::mm(fn, wn.t());
  const at::Tensor t_cos = cos.gather(1, target);
  const at::Tensor onehot = at::zeros_like(cos, at::kBool).scatter_(1, target, true);
  const at::Tensor logits =
      at::where(onehot, options_.margin.apply(t_cos).expand_as(cos), cos) * options_.margin.scale;
  const at::Tensor ce = -at::log_softmax(logits, 1).gather(1, target).mean();
  const at::Tensor share = ce / static_cast<double>(comm_.size());
  if (stats != nullptr) {
    at::Tensor total = share.detach().clone();
    comm_.all_reduce(total, comm::ReduceOp::kSum);
    stats->loss = total;
    stats->identities = static_cast<int64_t>(row_of.size());
    stats->collisions = static_cast<int64_t>(deferred.size());
  }
  return share;
}

}  // namespace ffc::head
