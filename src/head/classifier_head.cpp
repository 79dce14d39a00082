#include "head/classifier_head.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/record_function.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cmath>

#include "comm/device.h"
#include "common/error.h"
#include "common/random.h"
#include "head/all_gather.h"
#include "head/sharded_softmax.h"

namespace ffc::head {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct LossContext {
  comm::Communicator* comm = nullptr;
  const MarginSpec* margin = nullptr;
  at::Tensor weight;  // [S, D]: the rows scored (all local rows, or the sampled ones)
  at::Tensor logits;  // [rows, S] workspace
  at::Tensor grad;    // [S, D]: receives dJ/dweight (on the CPU before its projection, below)
  at::Tensor inv;     // [S]: out: the rows' inverse norms
  CeTargets targets;
  CeResult ce;
};

// A dot product in eight independent sums, so that the compiler vectorises it.
float dot_product(const float* a, const float* b, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t d = 0;
  for (; d + 8 <= n; d += 8) {
    for (int k = 0; k < 8; ++k) {
      acc[k] += a[d + k] * b[d + k];
    }
  }
  float dot = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; d < n; ++d) {
    dot += a[d] * b[d];
  }
  return dot;
}

// torch.optim.SGD (dampening 0) on rows `index[j]` (or j) of `weight` and `momentum`, in one
// pass over the rows on the CPU. The gradient of row j is g_j - inv_j^2 (g_j . w_j) w_j (the
// projection of the cosine's derivative, for the unprojected g that the CPU's forward leaves)
// times `grad_scale`: per row, the weight, momentum and gradient are read once and the weight
// and momentum written once. The gradient buffer is not changed.
struct SgdStep {
  double lr, momentum, weight_decay, grad_scale;
  bool nesterov;
};
void sgd_rows_cpu(at::Tensor& weight, at::Tensor& momentum, const at::Tensor& grad,
                  const at::Tensor& inv, const int64_t* index, const SgdStep& o) {
  RECORD_FUNCTION("ffc::sgd_rows", std::vector<c10::IValue>());
  const int64_t rows = grad.size(0);
  const int64_t dim = grad.size(1);
  float* wp = weight.data_ptr<float>();
  float* mp = momentum.data_ptr<float>();
  const float* gp = grad.data_ptr<float>();
  const float* ip = inv.data_ptr<float>();
  const auto lr = static_cast<float>(o.lr);
  const auto mu = static_cast<float>(o.momentum);
  const auto wd = static_cast<float>(o.weight_decay);
  const auto gs = static_cast<float>(o.grad_scale);
  at::parallel_for(0, rows, 64, [&](int64_t begin, int64_t end) {
    for (int64_t j = begin; j < end; ++j) {
      const int64_t r = index ? index[j] : j;
      float* w = wp + r * dim;
      float* m = mp + r * dim;
      const float* g = gp + j * dim;
      const float a = -ip[j] * ip[j] * dot_product(g, w, dim);
      for (int64_t d = 0; d < dim; ++d) {
        const float gd = (g[d] + a * w[d]) * gs + wd * w[d];
        const float md = mu * m[d] + gd;
        m[d] = md;
        w[d] -= lr * (o.nesterov ? gd + mu * md : md);
      }
    }
  });
}

// g_j <- g_j - inv_j^2 (g_j . w_j) w_j for every row j: one pass, each row's dot product and
// update while the row is in cache (on the CPU; ATen elsewhere).
void project_out_rows(at::Tensor& g, const at::Tensor& w, const at::Tensor& inv) {
  RECORD_FUNCTION("ffc::project_out_rows", std::vector<c10::IValue>());
  const int64_t rows = g.size(0);
  const int64_t dim = g.size(1);
  if (!g.device().is_cpu() || !g.is_contiguous() || !w.is_contiguous()) {
    const at::Tensor dots = at::bmm(g.unsqueeze(1), w.unsqueeze(2)).view({-1});
    g.addcmul_(w, (-(inv * inv) * dots).unsqueeze(1));
    return;
  }
  float* gp = g.data_ptr<float>();
  const float* wp = w.data_ptr<float>();
  const float* ip = inv.data_ptr<float>();
  at::parallel_for(0, rows, 256, [&](int64_t begin, int64_t end) {
    for (int64_t j = begin; j < end; ++j) {
      float* gj = gp + j * dim;
      const float* wj = wp + j * dim;
      const float dot = dot_product(gj, wj, dim);
      const float a = -ip[j] * ip[j] * dot;
      for (int64_t d = 0; d < dim; ++d) {
        gj[d] += a * wj[d];
      }
    }
  });
}

// dJ/dW_j = inv_j * (A_j - (A_j . W^_j) W^_j) with A = G^T f, written as A'_j - inv_j^2 (A'_j .
// W_j) W_j for A' = (G * inv)^T f; dJ/df = (G * inv) W.
struct ClassifierLoss : public torch::autograd::Function<ClassifierLoss> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& features, int64_t context) {
    auto& c = *reinterpret_cast<LossContext*>(context);
    const at::Tensor f = features.contiguous();
    const at::Tensor& w = c.weight;
    at::Tensor& cos = c.logits;
    const at::Tensor inv = w.norm(2, 1).clamp_min(1e-12).reciprocal();
    if (w.size(0) > 0) {
      at::mm_out(cos, f, w.t());  // raw dot products: the softmax scales them by inv
    }
    c.ce = softmax_ce_(cos, c.targets, *c.margin, *c.comm, inv);  // now dJ/dcos * inv
    at::Tensor grad_f = at::zeros_like(f);
    if (w.size(0) > 0) {
      at::mm_out(grad_f, cos, w);
      at::mm_out(c.grad, cos.t(), f);
      if (!w.device().is_cpu()) {
        project_out_rows(c.grad, w, inv);  // the CPU's step does it in its pass over the rows
      }
    }
    c.inv = inv;
    ctx->saved_data["grad_f"] = grad_f;
    ctx->saved_data["grad_w"] = c.grad;
    return c.ce.loss.reshape({1});
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const at::Tensor g = grads[0].to(at::kFloat).reshape({});
    at::Tensor grad_w = ctx->saved_data["grad_w"].toTensor();
    // dJ/dW was computed for an upstream gradient of 1 (the head's own buffer, applied by
    // step()). On the CPU the value costs nothing to read and a gradient of 1 skips a pass over
    // the rows; on a device reading it would wait, and the multiply is cheap there.
    if (!g.device().is_cpu() || g.item<float>() != 1.0f) {
      grad_w.mul_(g);
    }
    return {ctx->saved_data["grad_f"].toTensor() * g, at::Tensor()};
  }
};

}  // namespace

int64_t ClassifierHead::local_classes(int64_t n, int rank, int world) {
  return n / world + (rank < n % world ? 1 : 0);
}

int64_t ClassifierHead::first_class(int64_t n, int rank, int world) {
  return (n / world) * rank + std::min<int64_t>(rank, n % world);
}

void ClassifierHead::init_row(uint64_t seed, int64_t c, float* row, int64_t dim) {
  Rng rng(mix({seed, 0xfc, static_cast<uint64_t>(c)}));
  for (int64_t d = 0; d < dim; ++d) {
    row[d] = static_cast<float>(0.01 * rng.normal());
  }
}

ClassifierHead::ClassifierHead(const ClassifierOptions& options, comm::Communicator& comm)
    : options_(options), comm_(comm) {
  FFC_CHECK(options.num_classes >= 1, "the classifier needs num_classes >= 1");
  FFC_CHECK(options.sample_rate > 0 && options.sample_rate <= 1, "sample_rate must be in (0, 1]");
  num_local_ = local_classes(options.num_classes, comm.rank(), comm.size());
  start_ = first_class(options.num_classes, comm.rank(), comm.size());
  partial_ = options.partial;
  num_sample_ = partial_ ? static_cast<int64_t>(options.sample_rate * num_local_) : num_local_;
  const int64_t dim = options.dim;
  const at::Device device = comm.device();
  const auto fopt = at::TensorOptions().dtype(at::kFloat).device(device);
  weight_ = at::empty({num_local_, dim}, fopt);
  // Initialised on the host in blocks of rows (no host copy of the whole block on a device).
  const int64_t block = device.is_cpu() ? std::max<int64_t>(num_local_, 1)
                                        : std::max<int64_t>((int64_t{16} << 20) / (dim * 4), 1);
  at::Tensor host = device.is_cpu() ? weight_ : at::empty({std::min(block, num_local_), dim});
  for (int64_t first = 0; first < num_local_; first += block) {
    const int64_t n = std::min(block, num_local_ - first);
    float* w = host.data_ptr<float>();
    for (int64_t i = 0; i < n; ++i) {
      init_row(options.seed, start_ + first + i, w + i * dim, dim);
    }
    if (!device.is_cpu()) {
      weight_.narrow(0, first, n).copy_(host.narrow(0, 0, n));
    }
  }
  momentum_ = at::zeros({num_local_, dim}, fopt);
  if (!partial_) {
    grad_ = at::zeros({num_local_, dim}, fopt);
  }
}

ClassifierHead::~ClassifierHead() = default;

at::Tensor ClassifierHead::last_rows() const {
  return partial_ ? index_ : at::arange(num_local_, weight_.options().dtype(at::kLong));
}

at::Tensor ClassifierHead::last_weight_grad() const {
  const at::Tensor g = partial_ ? grad_.narrow(0, 0, index_.numel()) : grad_;
  if (!g.device().is_cpu() || !inv_.defined()) {
    return g;
  }
  // The CPU keeps the gradient unprojected until step(): project a copy.
  at::Tensor out = g.clone();
  project_out_rows(out, partial_ ? sub_weight_.narrow(0, 0, index_.numel()) : weight_, inv_);
  return out;
}

std::vector<std::pair<std::string, at::Tensor>> ClassifierHead::workspaces() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  const std::pair<const char*, const at::Tensor*> all[] = {{"sub_weight", &sub_weight_},
                                                           {"sub_momentum", &sub_momentum_},
                                                           {"grad", &grad_},
                                                           {"logits", &logits_},
                                                           {"index", &index_}};
  for (const auto& [name, t] : all) {
    if (t->defined()) {
      out.emplace_back(std::string("head/") + name, *t);
    }
  }
  return out;
}

int64_t ClassifierHead::bytes() const {
  int64_t b = (weight_.numel() + momentum_.numel()) * 4;
  for (const at::Tensor* t : {&sub_weight_, &sub_momentum_, &grad_, &logits_}) {
    if (t->defined()) {
      b += t->numel() * 4;
    }
  }
  return b;
}

at::Tensor ClassifierHead::sample(const at::Tensor& local_labels) {
  // On the host: the gathered labels are host-side. Positive classes of this rank's block, sorted
  // and unique.
  const at::Tensor in_block = (local_labels >= 0).logical_and(local_labels < num_local_);
  const at::Tensor positives = std::get<0>(at::_unique(local_labels.masked_select(in_block), true));
  const int64_t npos = positives.numel();
  if (npos >= num_sample_) {
    return positives;
  }
  // Fill up with classes drawn without replacement through a keyed permutation of the block,
  // skipping the positives: O(sample) time, no num_local-sized array.
  const int64_t want = num_sample_ - npos;
  std::vector<int64_t> picked;
  picked.reserve(static_cast<size_t>(num_sample_));
  const int64_t* pos = positives.data_ptr<int64_t>();
  const KeyedPermutation perm(static_cast<uint64_t>(num_local_),
                              mix({options_.seed, 0x9fc, static_cast<uint64_t>(step_count_),
                                   static_cast<uint64_t>(comm_.rank())}));
  for (uint64_t i = 0; static_cast<int64_t>(picked.size()) < want; ++i) {
    const auto c = static_cast<int64_t>(perm.forward(i));
    if (!std::binary_search(pos, pos + npos, c)) {
      picked.push_back(c);
    }
  }
  picked.insert(picked.end(), pos, pos + npos);
  std::sort(picked.begin(), picked.end());
  return at::tensor(picked, at::kLong);
}

at::Tensor ClassifierHead::forward(const at::Tensor& features, const at::Tensor& labels,
                                   ClassifierStats* stats) {
  const at::Device device = weight_.device();
  const auto fopt = weight_.options();
  const std::vector<int64_t> counts = comm::all_gather_counts(comm_, features.size(0));
  const at::Tensor f_all =
      all_gather_rows(features / features.norm(2, 1, true).clamp_min(1e-12), comm_, counts);
  // Labels and everything derived from them stay on the host; the device gets the columns.
  const at::Tensor l_all = comm::all_gather_v(comm_.host(), labels.to(at::kLong).contiguous());
  const at::Tensor local = l_all - start_;
  const at::Tensor in_block = (local >= 0).logical_and(local < num_local_);
  const int64_t rows = f_all.size(0);
  const int64_t dim = options_.dim;

  LossContext c;
  c.comm = &comm_;
  c.margin = &options_.margin;
  at::Tensor column;
  int64_t scored = num_local_;
  if (partial_) {
    const at::Tensor index = sample(local);
    scored = index.numel();
    const int64_t cap = std::max(scored, num_sample_);
    if (!sub_weight_.defined() || sub_weight_.size(0) < cap) {
      sub_weight_ = at::zeros({cap, dim}, fopt);
      if (!device.is_cpu()) {
        sub_momentum_ = at::zeros({cap, dim}, fopt);  // the CPU's step updates rows in place
      }
      grad_ = at::zeros({cap, dim}, fopt);
    }
    index_ = comm::to_device(index, device);
    c.weight = sub_weight_.narrow(0, 0, scored);
    at::index_select_out(c.weight, weight_, 0, index_);
    c.grad = grad_.narrow(0, 0, scored);
    // A label's column is its position in the sorted sample.
    const at::Tensor pos =
        at::searchsorted(index, local.clamp(0, std::max<int64_t>(num_local_ - 1, 0)));
    column = at::where(in_block, pos, at::full_like(pos, -1));
  } else {
    c.weight = weight_;
    c.grad = grad_;
    column = at::where(in_block, local, at::full_like(local, -1));
  }
  if (!logits_.defined() || logits_.numel() < rows * std::max<int64_t>(scored, num_sample_)) {
    // Sized for the largest sample once, so later steps reuse it.
    logits_ = at::zeros({rows * std::max<int64_t>(scored, num_sample_)}, fopt);
  }
  c.logits = logits_.narrow(0, 0, rows * scored).view({rows, scored});
  c.targets.column = comm::to_device(column, device);
  c.targets.weight = at::full({rows}, 1.0 / static_cast<double>(rows), fopt);

  at::Tensor loss = ClassifierLoss::apply(f_all, reinterpret_cast<int64_t>(&c));
  inv_ = c.inv;
  if (stats != nullptr) {
    stats->loss = c.ce.loss.detach();
    stats->sampled = scored;
    stats->positives = std::get<0>(at::_unique(local.masked_select(in_block), true)).numel();
  }
  ++step_count_;
  return loss;
}

void ClassifierHead::step(double lr, double inv_grad_scale) {
  at::NoGradGuard no_grad;
  if (partial_) {
    FFC_CHECK(index_.defined(), "ClassifierHead::step before forward");
  }
  const SgdStep o{lr, options_.momentum, options_.weight_decay, inv_grad_scale, options_.nesterov};
  if (weight_.device().is_cpu()) {
    const at::Tensor g = partial_ ? grad_.narrow(0, 0, index_.numel()) : grad_;
    sgd_rows_cpu(weight_, momentum_, g, inv_, partial_ ? index_.data_ptr<int64_t>() : nullptr, o);
    return;
  }
  at::Tensor w, m;
  at::Tensor g;
  if (partial_) {
    const int64_t s = index_.numel();
    w = sub_weight_.narrow(0, 0, s);
    m = sub_momentum_.narrow(0, 0, s);
    at::index_select_out(m, momentum_, 0, index_);
    g = grad_.narrow(0, 0, s);
  } else {
    w = weight_;
    m = momentum_;
    g = grad_;
  }
  if (inv_grad_scale != 1.0) {
    g.mul_(inv_grad_scale);
  }
  // torch.optim.SGD with dampening 0; a zero momentum buffer makes the first step m = g, as the
  // buffer PyTorch creates from the first gradient.
  if (options_.weight_decay != 0) {
    g.add_(w, options_.weight_decay);
  }
  m.mul_(options_.momentum).add_(g);
  if (options_.nesterov) {
    g.add_(m, options_.momentum);
    w.sub_(g, lr);
  } else {
    w.sub_(m, lr);
  }
  if (partial_) {
    weight_.index_copy_(0, index_, w);
    momentum_.index_copy_(0, index_, m);
  }
}

}  // namespace ffc::head
