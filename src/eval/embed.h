#pragma once
// Embeddings for evaluation: the backbone in eval mode (BatchNorm running statistics), no
// gradient, in batches; with flip, embedding(image) + embedding(mirrored image) before the L2
// normalisation, as insightface's verification does.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "comm/communicator.h"
#include "data/synthetic.h"

namespace ffc::model {
class Backbone;
}

namespace ffc::eval {

// images [n, 3, S, S], normalised as in training. Returns [n, D] L2-normalised, float32, on the
// CPU. Restores the network's train/eval mode.
at::Tensor embed(model::Backbone& net, const at::Tensor& images, int64_t batch, bool flip);

// Verification pairs of procedural identities never trained on (labels >= num_classes, held
// out). Pair k: genuine when k is even (images 0 and 1 of identity N + k), impostor when odd
// (identity N + k against identity N + pairs + k).
struct SyntheticPairs {
  std::vector<int64_t> label_a, image_a, label_b, image_b;
  std::vector<uint8_t> same;
};
SyntheticPairs heldout_pairs(const data::SyntheticSpec& spec, int64_t pairs);

// Renders and normalises the images of pairs [begin, end) of one side (0: a, 1: b).
at::Tensor render_side(const data::SyntheticSource& source, const SyntheticPairs& pairs, int side,
                       int64_t begin, int64_t end);

// Verification of a network on held-out procedural identities, the embedding work split over the
// ranks (pair k on rank k mod P) and gathered: every rank returns the same embeddings of all pairs
// (a: [pairs, D], b: [pairs, D]).
void embed_pairs_distributed(model::Backbone& net, const data::SyntheticSource& source,
                             const SyntheticPairs& pairs, comm::Communicator& comm, int64_t batch,
                             bool flip, at::Tensor& emb_a, at::Tensor& emb_b);

}  // namespace ffc::eval
