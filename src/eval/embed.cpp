#include "eval/embed.h"

#include <ATen/ATen.h>

#include "common/error.h"
#include "model/backbone.h"
#include "model/normalize.h"

namespace ffc::eval {

at::Tensor embed(model::Backbone& net, const at::Tensor& images, int64_t batch, bool flip) {
  const bool was_training = net.is_training();
  net.eval();
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> out;
  at::Device device = at::kCPU;
  for (const auto& p : net.parameters()) {
    device = p.device();
    break;
  }
  for (int64_t start = 0; start < images.size(0); start += batch) {
    const at::Tensor x =
        images.narrow(0, start, std::min(batch, images.size(0) - start)).to(device);
    at::Tensor e = net.forward(x);
    if (flip) {
      e = e + net.forward(x.flip({3}));
    }
    out.push_back(model::l2_normalize(e.to(at::kFloat)).cpu());
  }
  if (was_training) {
    net.train();
  }
  if (out.empty()) {
    return at::empty({0, net.spec().embedding_size}, at::kFloat);
  }
  return at::cat(out, 0);
}

SyntheticPairs heldout_pairs(const data::SyntheticSpec& spec, int64_t pairs) {
  SyntheticPairs p;
  const int64_t base = spec.num_classes;
  for (int64_t k = 0; k < pairs; ++k) {
    const bool genuine = k % 2 == 0;
    p.label_a.push_back(base + k);
    p.image_a.push_back(0);
    // Genuine: a second image of the same identity; impostor: an identity of its own.
    p.label_b.push_back(genuine ? base + k : base + pairs + k);
    p.image_b.push_back(genuine ? 1 : 0);
    p.same.push_back(genuine ? 1 : 0);
  }
  return p;
}

at::Tensor render_side(const data::SyntheticSource& source, const SyntheticPairs& pairs, int side,
                       int64_t begin, int64_t end) {
  const int s = source.image_size();
  const int64_t n = std::max<int64_t>(end - begin, 0);
  at::Tensor out = at::empty({n, 3, s, s}, at::kFloat);
  std::vector<uint8_t> px(static_cast<size_t>(s) * s * 3);
  std::vector<float> scratch;
  const auto& labels = side == 0 ? pairs.label_a : pairs.label_b;
  const auto& images = side == 0 ? pairs.image_a : pairs.image_b;
  for (int64_t i = 0; i < n; ++i) {
    source.render(labels[begin + i], images[begin + i], px.data(), scratch);
    const at::Tensor hwc = at::from_blob(px.data(), {s, s, 3}, at::kByte);
    out[i].copy_(((hwc.to(at::kFloat) - 127.5) / 128.0).permute({2, 0, 1}));
  }
  return out;
}

void embed_pairs_distributed(model::Backbone& net, const data::SyntheticSource& source,
                             const SyntheticPairs& pairs, comm::Communicator& comm, int64_t batch,
                             bool flip, at::Tensor& emb_a, at::Tensor& emb_b) {
  const auto n = static_cast<int64_t>(pairs.same.size());
  const int64_t p = comm.size();
  // Contiguous blocks per rank (the rank order of the gather is then the pair order).
  const int64_t begin = n * comm.rank() / p;
  const int64_t end = n * (comm.rank() + 1) / p;
  at::Tensor mine[2];
  for (int side = 0; side < 2; ++side) {
    mine[side] = embed(net, render_side(source, pairs, side, begin, end), batch, flip);
  }
  emb_a = comm::all_gather_v(comm, mine[0].contiguous());
  emb_b = comm::all_gather_v(comm, mine[1].contiguous());
  FFC_CHECK(emb_a.size(0) == n, "gathered " + std::to_string(emb_a.size(0)) + " embeddings for " +
                                    std::to_string(n) + " pairs");
}

}  // namespace ffc::eval
