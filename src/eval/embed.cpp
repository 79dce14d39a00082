#include "eval/embed.h"

#include <ATen/ATen.h>

#include <cmath>

#include "common/error.h"
#include "model/backbone.h"
#include "model/normalize.h"

namespace ffc::eval {

RawEmbeddings embed_raw(model::Backbone& net, int64_t begin, int64_t end, const ImageFiller& fill,
                        int64_t batch, bool flip) {
  FFC_CHECK(batch >= 1, "embedding batch must be at least 1");
  const int64_t n = std::max<int64_t>(end - begin, 0);
  const int64_t s = net.spec().image_size;
  const int64_t d = net.spec().embedding_size;
  RawEmbeddings out;
  out.plain = at::empty({n, d}, at::kFloat);
  if (flip) {
    out.mirror = at::empty({n, d}, at::kFloat);
  }
  if (n == 0) {
    return out;
  }
  const bool was_training = net.is_training();
  net.eval();
  at::NoGradGuard no_grad;
  at::Device device = at::kCPU;
  for (const auto& p : net.parameters()) {
    device = p.device();
    break;
  }
  const int64_t rows = std::min(batch, n);
  // The images in rows [0, b), their mirrors in rows [rows, rows + b) with flip.
  at::Tensor buffer = at::empty({flip ? 2 * rows : rows, 3, s, s}, at::kFloat);
  for (int64_t start = 0; start < n; start += rows) {
    const int64_t b = std::min(rows, n - start);
    at::Tensor images = buffer.narrow(0, 0, b);
    fill(begin + start, begin + start + b, images);
    at::Tensor x = images;
    if (flip) {
      buffer.narrow(0, b, b).copy_(images.flip({3}));
      x = buffer.narrow(0, 0, 2 * b);
    }
    const at::Tensor e = net.forward(x.to(device)).to(at::kFloat).cpu();
    out.plain.narrow(0, start, b).copy_(e.narrow(0, 0, b));
    if (flip) {
      out.mirror.narrow(0, start, b).copy_(e.narrow(0, b, b));
    }
  }
  if (was_training) {
    net.train();
  }
  return out;
}

RawEmbeddings embed_distributed(model::Backbone& net, int64_t n, const ImageFiller& fill,
                                comm::Communicator& comm, int64_t batch, bool flip) {
  const int64_t p = comm.size();
  const int64_t begin = n * comm.rank() / p;
  const int64_t end = n * (comm.rank() + 1) / p;
  RawEmbeddings mine = embed_raw(net, begin, end, fill, batch, flip);
  auto gather = [&](const at::Tensor& t) {
    at::Tensor all = comm::all_gather_v(comm, t.to(comm.device()).contiguous()).cpu();
    FFC_CHECK(all.size(0) == n, "gathered " + std::to_string(all.size(0)) + " embeddings for " +
                                    std::to_string(n) + " images");
    return all;
  };
  RawEmbeddings out;
  out.plain = gather(mine.plain);
  if (flip) {
    out.mirror = gather(mine.mirror);
  }
  return out;
}

Rank0Buffers::Rank0Buffers(model::Backbone& net, comm::Communicator& comm) {
  if (comm.size() == 1) {
    return;
  }
  at::NoGradGuard no_grad;
  for (const at::Tensor& b : net.buffers()) {
    buffers_.push_back(b);
    saved_.push_back(b.clone());
    at::Tensor t = b.to(comm.device()).contiguous();
    comm.broadcast(t, 0);
    buffers_.back().copy_(t);
  }
}

Rank0Buffers::~Rank0Buffers() {
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < buffers_.size(); ++i) {
    buffers_[i].copy_(saved_[i]);
  }
}

at::Tensor normalized(const RawEmbeddings& raw, bool flip) {
  return model::l2_normalize(flip ? raw.plain + raw.mirror : raw.plain);
}

double xnorm(const RawEmbeddings& raw) {
  at::Tensor norms = raw.plain.to(at::kDouble).norm(2, {1});
  if (raw.mirror.defined()) {
    norms = at::cat({norms, raw.mirror.to(at::kDouble).norm(2, {1})});
  }
  return norms.numel() == 0 ? 0.0 : norms.mean().item<double>();
}

at::Tensor embed(model::Backbone& net, const at::Tensor& images, int64_t batch, bool flip) {
  const at::Tensor host = images.to(at::kCPU, at::kFloat);
  const RawEmbeddings raw = embed_raw(
      net, 0, images.size(0),
      [&](int64_t begin, int64_t end, const at::Tensor& out) {
        out.copy_(host.narrow(0, begin, end - begin));
      },
      batch, flip);
  return normalized(raw, flip);
}

int64_t nearest_identity(const data::SyntheticSpec& spec, int64_t label,
                         const std::vector<int64_t>& candidates) {
  const std::vector<double> z = data::synthetic_latent(spec, label);
  int64_t best = -1;
  double best_d = 0;
  for (const int64_t c : candidates) {
    if (c == label) {
      continue;
    }
    const std::vector<double> w = data::synthetic_latent(spec, c);
    double d = 0;
    for (size_t l = 0; l < z.size(); ++l) {
      d += (z[l] - w[l]) * (z[l] - w[l]);
    }
    if (best < 0 || d < best_d) {
      best = c;
      best_d = d;
    }
  }
  FFC_CHECK(best >= 0, "nearest_identity: no candidate other than the label itself");
  return best;
}

SyntheticPairs heldout_pairs(const data::SyntheticSpec& spec, int64_t pairs, double hard_share) {
  FFC_CHECK(hard_share >= 0.0 && hard_share <= 1.0, "hard impostor share outside [0, 1]");
  SyntheticPairs p;
  const int64_t base = spec.num_classes;
  std::vector<int64_t> pool;
  if (hard_share > 0.0) {
    for (int64_t c = 0; c < kHardImpostorPool; ++c) {
      pool.push_back(base + 2 * pairs + c);
    }
  }
  for (int64_t k = 0; k < pairs; ++k) {
    const bool genuine = k % 2 == 0;
    p.label_a.push_back(base + k);
    p.image_a.push_back(0);
    // Impostor i = k / 2 is hard when the share's running count steps at it.
    const int64_t i = k / 2;
    const bool hard = !genuine && std::floor((static_cast<double>(i) + 1) * hard_share) >
                                      std::floor(static_cast<double>(i) * hard_share);
    if (hard) {
      p.label_b.push_back(nearest_identity(spec, base + k, pool));
      p.image_b.push_back(k);
    } else {
      // Genuine: a second image of the same identity; impostor: an identity of its own.
      p.label_b.push_back(genuine ? base + k : base + pairs + k);
      p.image_b.push_back(genuine ? 1 : 0);
    }
    p.same.push_back(genuine ? 1 : 0);
  }
  return p;
}

at::Tensor render_side(const data::SyntheticSource& source, const SyntheticPairs& pairs, int side,
                       int64_t begin, int64_t end, const InputNorm& norm) {
  const int s = source.image_size();
  const int64_t n = std::max<int64_t>(end - begin, 0);
  at::Tensor out = at::empty({n, 3, s, s}, at::kFloat);
  std::vector<uint8_t> px(static_cast<size_t>(s) * s * 3);
  std::vector<float> scratch;
  const auto& labels = side == 0 ? pairs.label_a : pairs.label_b;
  const auto& images = side == 0 ? pairs.image_a : pairs.image_b;
  for (int64_t i = 0; i < n; ++i) {
    source.render(labels[begin + i], images[begin + i], px.data(), scratch);
    normalize_pixels(px.data(), s, /*mirror=*/false, norm, out[i].data_ptr<float>());
  }
  return out;
}

void embed_pairs_distributed(model::Backbone& net, const data::SyntheticSource& source,
                             const SyntheticPairs& pairs, comm::Communicator& comm, int64_t batch,
                             bool flip, at::Tensor& emb_a, at::Tensor& emb_b) {
  const auto n = static_cast<int64_t>(pairs.same.size());
  at::Tensor* out[2] = {&emb_a, &emb_b};
  for (int side = 0; side < 2; ++side) {
    const RawEmbeddings raw = embed_distributed(
        net, n,
        [&](int64_t begin, int64_t end, const at::Tensor& images) {
          images.copy_(render_side(source, pairs, side, begin, end));
        },
        comm, batch, flip);
    *out[side] = normalized(raw, flip);
  }
}

}  // namespace ffc::eval
