#pragma once
// Embeddings for evaluation: the backbone in eval mode (BatchNorm running statistics), no
// gradient, in batches; with flip, embedding(image) + embedding(mirrored image) before the L2
// normalisation, as insightface's verification does.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "comm/communicator.h"
#include "common/input_norm.h"
#include "data/synthetic.h"

namespace ffc::model {
class Backbone;
}

namespace ffc::eval {

// Raw embeddings (the backbone's output, not normalised) of a set of images and, with the flip
// test, of their mirror images. Float32 on the CPU.
struct RawEmbeddings {
  at::Tensor plain;   // [n, D]
  at::Tensor mirror;  // [n, D]; undefined without flip
};

// Writes images [begin, end) of an image set into `out` ([end - begin, 3, S, S] float32 on the
// CPU, preallocated, contiguous), normalised as the network was trained (normalize_pixels), CHW.
using ImageFiller = std::function<void(int64_t begin, int64_t end, const at::Tensor& out)>;

// Embeds images [begin, end) in batches of `batch` (one forward of 2 * batch rows with flip:
// the images and their mirrors), in eval mode without gradient; restores the train/eval mode.
RawEmbeddings embed_raw(model::Backbone& net, int64_t begin, int64_t end, const ImageFiller& fill,
                        int64_t batch, bool flip);

// Images [0, n) split over the ranks in contiguous blocks (rank r embeds [n*r/P, n*(r+1)/P)) and
// gathered: every rank returns the embeddings of all n images, in order. The network must be the
// same on every rank, buffers included (see Rank0Buffers).
RawEmbeddings embed_distributed(model::Backbone& net, int64_t n, const ImageFiller& fill,
                                comm::Communicator& comm, int64_t batch, bool flip);

// Data-parallel ranks share parameters but not buffers: each rank's BatchNorm running statistics
// come from its own batches. While alive, this makes every rank's buffers rank 0's (as PyTorch's
// DDP does before each forward, and as a checkpoint written by rank 0 holds them), so that a
// distributed evaluation embeds every image with one network; the rank's own buffers are put back
// when it dies. Nothing happens on a single rank.
class Rank0Buffers {
 public:
  Rank0Buffers(model::Backbone& net, comm::Communicator& comm);
  ~Rank0Buffers();
  Rank0Buffers(const Rank0Buffers&) = delete;
  Rank0Buffers& operator=(const Rank0Buffers&) = delete;

 private:
  std::vector<at::Tensor> buffers_;
  std::vector<at::Tensor> saved_;
};

// L2-normalised rows: plain, or with `flip` plain + mirror (insightface's flip test).
at::Tensor normalized(const RawEmbeddings& raw, bool flip);

// insightface's XNorm: the mean L2 norm of every raw embedding (plain and mirror).
double xnorm(const RawEmbeddings& raw);

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
// hard_share in [0, 1]: that share of the impostor pairs (spread evenly over them) is hard: the
// second identity is, instead, the nearest in latent space (what the images share) to the first
// among kHardImpostorPool other held-out identities (N + 2·pairs ...), and its image is image k.
inline constexpr int64_t kHardImpostorPool = 256;
SyntheticPairs heldout_pairs(const data::SyntheticSpec& spec, int64_t pairs,
                             double hard_share = 0.0);
// The label among `candidates` whose latent is nearest (Euclidean) to that of `label`, itself
// left out.
int64_t nearest_identity(const data::SyntheticSpec& spec, int64_t label,
                         const std::vector<int64_t>& candidates);

// Renders and normalises the images of pairs [begin, end) of one side (0: a, 1: b).
at::Tensor render_side(const data::SyntheticSource& source, const SyntheticPairs& pairs, int side,
                       int64_t begin, int64_t end, const InputNorm& norm = legacy_input_norm());

// Verification of a network on held-out procedural identities, the embedding work split over the
// ranks (pair k on rank k mod P) and gathered: every rank returns the same embeddings of all pairs
// (a: [pairs, D], b: [pairs, D]).
void embed_pairs_distributed(model::Backbone& net, const data::SyntheticSource& source,
                             const SyntheticPairs& pairs, comm::Communicator& comm, int64_t batch,
                             bool flip, at::Tensor& emb_a, at::Tensor& emb_b);

}  // namespace ffc::eval
