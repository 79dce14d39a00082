#include "head/ffc_head.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include "comm/device.h"
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
  at::Tensor ref_columns;  // local columns whose cos2 uses row 1 (on the device)
  int64_t num_ref = 0;     // their number (known on the host)
  at::Tensor cos1, cos2;   // workspaces [rows, valid]
  // Outputs.
  CeResult ce[2];
  FreshResult fresh[2];
};

// dJ_fresh/dp for one matrix: per row, the sum over its selected entries of u * W[column], where
// W[column] is row `row_of_column` of the column's slot in the pool's flat [local_slots * 2, D]
// view (row 0, or row 1 for cos2's refreshed slots). One embedding-bag pass: no [rows, k, D]
// temporary, no copy of the pool's rows.
void add_fresh_gradient(at::Tensor& grad, const FreshResult& fr, const at::Tensor& flat_rows,
                        const at::Tensor& row_of_column) {
  if (!fr.columns.defined() || fr.columns.numel() == 0) {
    return;
  }
  at::Tensor index = fr.columns * 2;
  if (row_of_column.defined()) {
    index.add_(row_of_column.index_select(0, fr.columns.reshape(-1)).view_as(index));
  }
  const int64_t rows = index.size(0);
  const int64_t k = index.size(1);
  const at::Tensor offsets = at::arange(0, rows * k, k, index.options());
  const auto bag = at::embedding_bag(flat_rows, index.reshape(-1), offsets,
                                     /*scale_grad_by_freq=*/false, /*mode=sum*/ 0,
                                     /*sparse=*/false, fr.weights.reshape(-1));
  grad.add_(std::get<0>(bag));
}

struct FfcLoss : public torch::autograd::Function<FfcLoss> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& probes, int64_t context) {
    auto& c = *reinterpret_cast<PassContext*>(context);
    const at::Tensor f = probes.contiguous();
    const int64_t rows = f.size(0);
    const int64_t dim = f.size(1);
    const at::Tensor& pool_rows = c.pool->rows();
    const at::Tensor w0 = pool_rows.narrow(0, 0, c.valid).select(1, 0);  // [valid, D], strided
    const int64_t nref = c.num_ref;
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
      const at::Tensor flat_rows = pool_rows.view({-1, dim});
      at::Tensor row1_of_column;  // cos2: 1 for the refreshed columns, 0 elsewhere
      if (nref > 0) {
        row1_of_column =
            at::zeros({c.valid}, c.ref_columns.options()).index_fill_(0, c.ref_columns, 1);
      }
      add_fresh_gradient(grad_fresh, c.fresh[0], flat_rows, at::Tensor());
      add_fresh_gradient(grad_fresh, c.fresh[1], flat_rows, row1_of_column);
    }
    ctx->saved_data["grad_ce"] = grad_ce;
    ctx->saved_data["grad_fresh"] = grad_fresh;
    return at::stack({c.ce[0].loss + c.ce[1].loss, c.fresh[0].loss + c.fresh[1].loss});
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    // Device arithmetic with the upstream gradient: reading it on the host would wait.
    const at::Tensor g = grads[0].to(at::kFloat);
    at::Tensor grad = ctx->saved_data["grad_ce"].toTensor() * g.select(0, 0);
    grad.add_(ctx->saved_data["grad_fresh"].toTensor() * g.select(0, 1));
    return {grad, at::Tensor()};
  }
};

// Rank of each gathered row, from the per-rank row counts.
std::vector<int64_t> rank_of_rows(const std::vector<int64_t>& counts) {
  std::vector<int64_t> r;
  for (size_t k = 0; k < counts.size(); ++k) {
    r.insert(r.end(), counts[k], static_cast<int64_t>(k));
  }
  return r;
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
      single_(comm::make_single_process_communicator(comm.device())),
      pool_(options.pool_size, options.dim, comm.rank(), comm.size(), options.placement,
            options.random_init, options.seed, comm.device()) {
  FFC_CHECK(options.fresh_k >= 1, "fresh_k must be >= 1");
}

FfcHead::~FfcHead() = default;

std::vector<std::pair<std::string, at::Tensor>> FfcHead::workspaces() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (int i = 0; i < 2; ++i) {
    if (buffers_[i].defined()) {
      out.emplace_back("head/logits" + std::to_string(i + 1), buffers_[i]);
    }
  }
  return out;
}

at::Tensor FfcHead::logits_buffer(int which, int64_t rows, int64_t cols) {
  at::Tensor& buf = buffers_[which];
  const int64_t need = rows * std::max<int64_t>(pool_.local_slots(), cols);
  if (!buf.defined() || buf.numel() < need) {
    // Sized for every slot this rank stores, so it is allocated (and touched) once, at the
    // first pass, not again as the pool fills.
    buf = at::zeros({need}, at::TensorOptions().dtype(at::kFloat).device(comm_.device()));
  }
  return buf.narrow(0, 0, rows * cols).view({rows, cols});
}

at::Tensor FfcHead::pass(const at::Tensor& probe, const at::Tensor& probe_labels,
                         const at::Tensor& gallery, const at::Tensor& gallery_labels, bool rollback,
                         FfcPassStats* stats) {
  const int world = comm_.size();
  const bool sharded = pool_.placement() == Placement::kSharded;
  const at::Device device = comm_.device();
  comm::Communicator& host = comm_.host();  // labels and counts: host-side bookkeeping

  // 1. Gallery: gather (features on the device, labels on the host) and insert.
  const at::Tensor g_all = comm::all_gather_v(comm_, gallery.detach().contiguous());
  const at::Tensor gl_all = comm::all_gather_v(host, gallery_labels.to(at::kLong).contiguous());
  FFC_CHECK(g_all.size(0) <= pool_.capacity(),
            "a gathered gallery batch of " + std::to_string(g_all.size(0)) +
                " rows exceeds the pool of " + std::to_string(pool_.capacity()) + " slots");
  const InsertStats inserted = pool_.insert(gl_all, g_all, rollback, refreshed_);

  // 2. Probes: gathered (sharded) or local (replicated), and their slots (on the host).
  at::Tensor p_all = probe;
  at::Tensor pl_all = probe_labels.to(at::kLong).contiguous();
  std::vector<int64_t> row_rank(static_cast<size_t>(probe.size(0)), comm_.rank());
  comm::Communicator* softmax_comm = single_.get();
  if (sharded) {
    const std::vector<int64_t> counts = comm::all_gather_counts(comm_, probe.size(0));
    p_all = all_gather_rows(probe, comm_, counts);
    pl_all = comm::all_gather_v(host, pl_all);
    row_rank = rank_of_rows(counts);
    softmax_comm = &comm_;
  }
  const at::Tensor slots = pool_.lookup(pl_all);
  const int64_t* s = slots.data_ptr<int64_t>();
  const int64_t rows = slots.numel();

  // Per-sample weights: the mean over each rank's positives (fresh probes), averaged over ranks.
  // Replicated ranks only see their own probes; the counts of the others do not enter their terms.
  std::vector<int64_t> pos_per_rank(static_cast<size_t>(world), 0);
  std::vector<int64_t> fresh_per_rank(static_cast<size_t>(world), 0);
  int64_t positives = 0;
  for (int64_t i = 0; i < rows; ++i) {
    const int r = sharded ? static_cast<int>(row_rank[i]) : 0;
    ++(s[i] >= 0 ? pos_per_rank : fresh_per_rank)[r];
    positives += s[i] >= 0 ? 1 : 0;
  }
  std::vector<float> ce_weight(static_cast<size_t>(rows));
  std::vector<float> fresh_weight(static_cast<size_t>(rows));
  std::vector<int64_t> column(static_cast<size_t>(rows), -1);
  for (int64_t i = 0; i < rows; ++i) {
    const int r = sharded ? static_cast<int>(row_rank[i]) : 0;
    const bool pos = s[i] >= 0;
    ce_weight[i] =
        pos ? static_cast<float>(
                  1.0 / (static_cast<double>(std::max<int64_t>(pos_per_rank[r], 1)) * world))
            : 0.0f;
    fresh_weight[i] =
        pos ? 0.0f
            : static_cast<float>(options_.fresh_weight /
                                 (static_cast<double>(std::max<int64_t>(fresh_per_rank[r], 1)) *
                                  world * options_.fresh_k));
    // Local column of each positive probe's slot on this rank, else -1.
    if (pos && pool_.stores(s[i])) {
      column[i] = pool_.local_index(s[i]);
    }
  }
  std::vector<int64_t> ref;
  for (int64_t slot : refreshed_) {
    if (pool_.stores(slot)) {
      ref.push_back(pool_.local_index(slot));
    }
  }
  PassContext c;
  c.comm = softmax_comm;
  c.pool = &pool_;
  c.margin = &options_.margin;
  c.fresh_k = options_.fresh_k;
  c.targets.weight = comm::to_device(at::tensor(ce_weight, at::kFloat), device);
  c.fresh_weight = comm::to_device(at::tensor(fresh_weight, at::kFloat), device);
  c.targets.column = comm::to_device(at::tensor(column, at::kLong), device);
  c.valid = pool_.local_valid();
  c.num_ref = static_cast<int64_t>(ref.size());
  c.ref_columns = comm::to_device(at::tensor(ref, at::kLong), device);
  c.cos1 = logits_buffer(0, rows, c.valid);
  c.cos2 = logits_buffer(1, rows, c.valid);

  at::Tensor loss = FfcLoss::apply(p_all, reinterpret_cast<int64_t>(&c));

  if (stats != nullptr) {
    // Global figures: sharded ranks already hold them; replicated ranks add up their shares.
    int64_t counts[2] = {positives, rows - positives};
    at::Tensor figures = at::stack({c.ce[0].loss + c.ce[1].loss, c.fresh[0].loss + c.fresh[1].loss,
                                    c.ce[0].mean_target * static_cast<float>(positives)})
                             .detach();
    if (!sharded) {
      at::Tensor n = at::from_blob(counts, {2}, at::kLong);
      host.all_reduce(n, comm::ReduceOp::kSum);
      comm_.all_reduce(figures, comm::ReduceOp::kSum);
    }
    stats->ce = figures[0];
    stats->fresh = figures[1];
    stats->positives = counts[0];
    stats->fresh_samples = counts[1];
    stats->mean_target_cos = figures[2] / static_cast<float>(std::max<int64_t>(counts[0], 1));
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
