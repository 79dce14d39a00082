#include "head/ffc_head.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include "common/error.h"
#include "common/logging.h"
#include "head/all_gather.h"
#include "head/sharded_softmax.h"

namespace ffc::head {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Everything the loss of one pass needs besides the probe features.
struct PassContext {
  comm::Communicator* comm = nullptr;  // the softmax's communicator
  const DynamicPool* pool = nullptr;
  const MarginSpec* margin = nullptr;
  CeTargets targets;
  at::Tensor fresh_weight;
  int64_t fresh_k = 0;
  int64_t valid = 0;       // local columns in use (a prefix)
  at::Tensor ref_columns;  // local columns whose cos2 uses row 1
  at::Tensor cos1, cos2;   // workspaces [rows, valid]
  // Outputs.
  CeResult ce[2];
  FreshResult fresh[2];
};

// dJ_fresh/dp for one matrix: at each selected (row, column), u * W[column].
void add_fresh_gradient(at::Tensor& grad, const FreshResult& fr, const at::Tensor& w0,
                        const at::Tensor& w1_of_refreshed, const at::Tensor& is_refreshed) {
  if (!fr.rows.defined() || fr.rows.numel() == 0) {
    return;
  }
  at::Tensor w = w0.index_select(0, fr.columns);
  if (is_refreshed.defined()) {
    const at::Tensor use1 = is_refreshed.index_select(0, fr.columns);
    if (use1.any().item<bool>()) {
      w = at::where(use1.unsqueeze(1), w1_of_refreshed.index_select(0, fr.columns), w);
    }
  }
  grad.index_add_(0, fr.rows, w * fr.weights.unsqueeze(1));
}

struct FfcLoss : public torch::autograd::Function<FfcLoss> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& probes, int64_t context) {
    auto& c = *reinterpret_cast<PassContext*>(context);
    const at::Tensor f = probes.contiguous();
    const int64_t rows = f.size(0);
    const int64_t dim = f.size(1);
    const at::Tensor& pool_rows = c.pool->rows();
    const at::Tensor w0 = pool_rows.narrow(0, 0, c.valid).select(1, 0);  // [valid, D], strided
    const int64_t nref = c.ref_columns.numel();
    at::Tensor w1_ref, w0_ref;
    if (c.valid > 0) {
      at::mm_out(c.cos1, f, w0.t());
      c.cos2.copy_(c.cos1);
      if (nref > 0) {
        w1_ref = pool_rows.index_select(0, c.ref_columns).select(1, 1);
        w0_ref = pool_rows.index_select(0, c.ref_columns).select(1, 0);
        c.cos2.index_copy_(1, c.ref_columns, at::mm(f, w1_ref.t()));
      }
    }
    at::Tensor* cos[2] = {&c.cos1, &c.cos2};
    for (int m = 0; m < 2; ++m) {
      c.fresh[m] = fresh_topk(*cos[m], c.fresh_weight, c.fresh_k, *c.comm);  // raw cosines
      c.ce[m] = softmax_ce_(*cos[m], c.targets, *c.margin, *c.comm);         // now dJ/dcos
    }
    // Gradients now, while the weights are the pool's current rows; the logits buffers are free
    // for the next pass.
    at::Tensor grad_ce = at::zeros({rows, dim}, f.options());
    at::Tensor grad_fresh = at::zeros({rows, dim}, f.options());
    if (c.valid > 0) {
      at::Tensor ref_part;
      if (nref > 0) {
        ref_part = c.cos2.index_select(1, c.ref_columns);
      }
      c.cos1.add_(c.cos2);
      at::mm_out(grad_ce, c.cos1, w0);
      if (nref > 0) {
        grad_ce.addmm_(ref_part, w1_ref - w0_ref);
      }
      at::Tensor is_refreshed;
      at::Tensor w1_full;
      if (nref > 0) {
        is_refreshed = at::zeros({c.valid}, at::kBool).index_fill_(0, c.ref_columns, true);
        w1_full = pool_rows.narrow(0, 0, c.valid).select(1, 1);
      }
      add_fresh_gradient(grad_fresh, c.fresh[0], w0, w1_full, at::Tensor());
      add_fresh_gradient(grad_fresh, c.fresh[1], w0, w1_full, is_refreshed);
    }
    ctx->saved_data["grad_ce"] = grad_ce;
    ctx->saved_data["grad_fresh"] = grad_fresh;
    const double ce = c.ce[0].loss + c.ce[1].loss;
    const double fresh = c.fresh[0].loss + c.fresh[1].loss;
    return at::tensor({static_cast<float>(ce), static_cast<float>(fresh)}, f.options());
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const at::Tensor g = grads[0].to(at::kFloat).cpu();
    const double g_ce = g[0].item<double>();
    const double g_fresh = g[1].item<double>();
    at::Tensor grad = ctx->saved_data["grad_ce"].toTensor() * g_ce;
    grad.add_(ctx->saved_data["grad_fresh"].toTensor(), g_fresh);
    return {grad, at::Tensor()};
  }
};

// Rank of each gathered row, from the per-rank row counts.
at::Tensor rank_of_rows(const std::vector<int64_t>& counts) {
  std::vector<int64_t> r;
  for (size_t k = 0; k < counts.size(); ++k) {
    r.insert(r.end(), counts[k], static_cast<int64_t>(k));
  }
  return at::tensor(r, at::kLong);
}

}  // namespace

void check_pool_size(int64_t pool_size, int64_t gallery_rows_per_rank, int world) {
  const int64_t global = gallery_rows_per_rank * world;
  if (pool_size < global) {
    throw ConfigError("pool_size " + std::to_string(pool_size) +
                      " is smaller than the global gallery batch (" +
                      std::to_string(gallery_rows_per_rank) + " images x " + std::to_string(world) +
                      " ranks): identities would be evicted within one "
                      "step; set pool_size >= " +
                      std::to_string(global));
  }
}

FfcHead::FfcHead(const FfcHeadOptions& options, comm::Communicator& comm)
    : options_(options),
      comm_(comm),
      single_(comm::make_single_process_communicator()),
      pool_(options.pool_size, options.dim, comm.rank(), comm.size(), options.placement,
            options.random_init, options.seed) {
  FFC_CHECK(options.fresh_k >= 1, "fresh_k must be >= 1");
}

FfcHead::~FfcHead() = default;

at::Tensor FfcHead::logits_buffer(int which, int64_t rows, int64_t cols) {
  at::Tensor& buf = buffers_[which];
  const int64_t need = rows * std::max<int64_t>(pool_.local_slots(), cols);
  if (!buf.defined() || buf.numel() < need) {
    // Sized for every slot this rank stores, so it is allocated (and touched) once, at the
    // first pass, not again as the pool fills.
    buf = at::zeros({need}, at::kFloat);
  }
  return buf.narrow(0, 0, rows * cols).view({rows, cols});
}

at::Tensor FfcHead::pass(const at::Tensor& probe, const at::Tensor& probe_labels,
                         const at::Tensor& gallery, const at::Tensor& gallery_labels, bool rollback,
                         FfcPassStats* stats) {
  const int world = comm_.size();
  const bool sharded = pool_.placement() == Placement::kSharded;

  // 1. Gallery: gather and insert.
  const at::Tensor g_all = comm::all_gather_v(comm_, gallery.detach().contiguous());
  const at::Tensor gl_all = comm::all_gather_v(comm_, gallery_labels.to(at::kLong).contiguous());
  FFC_CHECK(g_all.size(0) <= pool_.capacity(),
            "a gathered gallery batch of " + std::to_string(g_all.size(0)) +
                " rows exceeds the pool of " + std::to_string(pool_.capacity()) + " slots");
  const InsertStats inserted = pool_.insert(gl_all, g_all, rollback, refreshed_);

  // 2. Probes: gathered (sharded) or local (replicated), and their slots.
  at::Tensor p_all = probe;
  at::Tensor pl_all = probe_labels.to(at::kLong);
  at::Tensor row_rank = at::full({probe.size(0)}, comm_.rank(), at::kLong);
  comm::Communicator* softmax_comm = single_.get();
  if (sharded) {
    const std::vector<int64_t> counts = comm::all_gather_counts(comm_, probe.size(0));
    p_all = all_gather_rows(probe, comm_, counts);
    pl_all = comm::all_gather_v(comm_, pl_all.contiguous());
    row_rank = rank_of_rows(counts);
    softmax_comm = &comm_;
  }
  const at::Tensor slots = pool_.lookup(pl_all);
  const at::Tensor positive = slots >= 0;

  // Per-sample weights: the mean over each rank's positives (fresh probes), averaged over ranks.
  const at::Tensor pos_per_rank =
      at::zeros({world}, at::kLong).index_add_(0, row_rank, positive.to(at::kLong));
  const at::Tensor fresh_per_rank =
      at::zeros({world}, at::kLong).index_add_(0, row_rank, (~positive).to(at::kLong));
  if (!sharded) {
    // Each rank only sees its own probes; the counts of the others do not enter its terms.
    pos_per_rank.fill_(positive.sum().item<int64_t>());
    fresh_per_rank.fill_((~positive).sum().item<int64_t>());
  }
  const at::Tensor npos = pos_per_rank.index_select(0, row_rank).to(at::kFloat);
  const at::Tensor nfresh = fresh_per_rank.index_select(0, row_rank).to(at::kFloat);
  PassContext c;
  c.comm = softmax_comm;
  c.pool = &pool_;
  c.margin = &options_.margin;
  c.fresh_k = options_.fresh_k;
  c.targets.weight = at::where(positive, 1.0 / (npos.clamp_min(1) * world), at::zeros_like(npos));
  c.fresh_weight =
      at::where(positive, at::zeros_like(nfresh),
                options_.fresh_weight / (nfresh.clamp_min(1) * world * options_.fresh_k));
  // Local column of each positive probe's slot on this rank, else -1.
  std::vector<int64_t> column(static_cast<size_t>(slots.numel()), -1);
  const int64_t* s = slots.data_ptr<int64_t>();
  for (int64_t i = 0; i < slots.numel(); ++i) {
    if (s[i] >= 0 && pool_.stores(s[i])) {
      column[i] = pool_.local_index(s[i]);
    }
  }
  c.targets.column = at::tensor(column, at::kLong);
  c.valid = pool_.local_valid();
  std::vector<int64_t> ref;
  for (int64_t slot : refreshed_) {
    if (pool_.stores(slot)) {
      ref.push_back(pool_.local_index(slot));
    }
  }
  c.ref_columns = at::tensor(ref, at::kLong);
  const int64_t rows = p_all.size(0);
  c.cos1 = logits_buffer(0, rows, c.valid);
  c.cos2 = logits_buffer(1, rows, c.valid);

  at::Tensor loss = FfcLoss::apply(p_all, reinterpret_cast<int64_t>(&c));

  if (stats != nullptr) {
    // Global figures: sharded ranks already hold them; replicated ranks add up their shares.
    at::Tensor t = at::tensor({c.ce[0].loss + c.ce[1].loss, c.fresh[0].loss + c.fresh[1].loss,
                               positive.sum().item<double>(), (~positive).sum().item<double>(),
                               c.ce[0].mean_target * static_cast<double>(c.ce[0].samples)},
                              at::kDouble);
    if (!sharded) {
      comm_.all_reduce(t, comm::ReduceOp::kSum);
    }
    const double* v = t.data_ptr<double>();
    stats->ce = v[0];
    stats->fresh = v[1];
    stats->positives = static_cast<int64_t>(v[2]);
    stats->fresh_samples = static_cast<int64_t>(v[3]);
    stats->mean_target_cos =
        stats->positives > 0 ? v[4] / static_cast<double>(stats->positives) : 0.0;
    stats->insert = inserted;
  }
  if (rollback) {
    pool_.rollback();
  }
  if (stats != nullptr) {
    stats->pool_filled = pool_.filled();
  }
  return loss;
}

}  // namespace ffc::head
