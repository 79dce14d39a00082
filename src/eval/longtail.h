#pragma once
// The long-tail breakdown (docs/eval.md): how well the network verifies and identifies identities
// by the number of images they had in training, from unseen images of trained identities sampled
// per bucket of training count: 1, 2-5, 6-20, >20 (and, for comparison, identities never trained
// on, bucket "unseen"). For procedural identities the counts are known
// (SyntheticSource::class_size) and images j >= class_size were never trained on; for a dataset
// on disk a long-tail set file holds the sampled identities and their unseen images.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "common/input_norm.h"
#include "data/synthetic.h"
#include "eval/identification.h"
#include "eval/verification.h"

namespace ffc::model {
class Backbone;
}

namespace ffc::eval {

struct LongtailBucket {
  std::string name;
  int64_t min_count;  // training images, inclusive; 0 for the held-out identities
  int64_t max_count;
};
// unseen (0), 1, 2-5, 6-20, >20.
const std::vector<LongtailBucket>& longtail_buckets();
// The bucket index of a training count.
int bucket_of(int64_t training_images);

// Sampled identities. Identity i has two unseen images: its gallery image j = train_images[i] and
// its probe image j = train_images[i] + 1 (held-out identities: images 0 and 1).
struct LongtailSample {
  std::vector<int64_t> labels;
  std::vector<int64_t> train_images;
  std::vector<int> bucket;
  std::vector<int64_t> population;  // per bucket: identities of that count in the training set
};

// Up to `per_bucket` identities per bucket: trained ones in label order (labels are a keyed
// permutation of the count ranks, so label order is a random order with respect to counts),
// held-out ones N, N + 1, .... Deterministic.
LongtailSample sample_longtail(const data::SyntheticSource& source, int64_t per_bucket);

// Verification pairs of one group of sampled identities (indices into the sample), m >= 2:
// genuine (gallery i, probe i) and impostor (gallery i, probe of the next identity of the group),
// alternating. Indices are image indices: 2i gallery, 2i + 1 probe.
struct IndexPairs {
  std::vector<int64_t> a, b;
  std::vector<uint8_t> same;
};
// `partners` (optional, one per identity of the group): the impostor's probe comes from
// partners[t] instead of the next identity.
IndexPairs longtail_pairs(const std::vector<int64_t>& identities,
                          const std::vector<int64_t>& partners = {});

struct LongtailRow {
  std::string bucket;
  int64_t population = 0;
  int64_t identities = 0;
  bool verified = false;  // false when the bucket has fewer than 5 identities (10 pairs)
  VerificationResult verification;
  IdentificationResult identification;
};

struct LongtailReport {
  std::string name = "longtail";  // the target in logs and records (a long-tail file's name)
  int64_t per_bucket = 0;
  int64_t gallery_identities = 0;
  bool flip = true;
  std::vector<LongtailRow> rows;  // one per non-empty bucket, then "trained" (all trained buckets)
};

// Samples, embeds (the images split over the ranks), and scores: every rank returns the report.
// For each sampled identity: -1 (its impostor pair takes the next identity of its bucket) or, for
// `share` of each bucket's identities (spread evenly), the sample index of the identity of its
// bucket nearest in latent space (a hard impostor).
std::vector<int64_t> longtail_hard_partners(const data::SyntheticSpec& spec,
                                            const LongtailSample& sample, double share);

// hard_share: that share of each bucket's impostor pairs (spread evenly) takes the probe of the
// bucket's identity nearest in latent space (val_hard_impostors).
LongtailReport evaluate_longtail(model::Backbone& net, const data::SyntheticSource& source,
                                 int64_t per_bucket, comm::Communicator& comm, int64_t batch,
                                 bool flip, const InputNorm& norm = legacy_input_norm(),
                                 double hard_share = 0.0);

// The same breakdown from a long-tail set file (a dataset on disk, e.g. a glyph set): its
// identities and images as the file holds them, decoded in `order`; without the flip test where
// the file says so.
class LongtailSetFile;
LongtailSample file_sample(const LongtailSetFile& file);
LongtailReport evaluate_longtail_file(model::Backbone& net, const LongtailSetFile& file,
                                      data::ColorOrder order, comm::Communicator& comm,
                                      int64_t batch, bool flip,
                                      const InputNorm& norm = legacy_input_norm());

// Scores the L2-normalised embeddings of a sample (row 2i: identity i's gallery image, 2i + 1:
// its probe image): identification over all sampled gallery images, verification per bucket and
// for every trained bucket together (its pairs shuffled by `seed`).
// partner (optional, one per sampled identity): the impostor partner of identity i (an index
// into the sample, same bucket), or -1 for the next identity of its bucket.
LongtailReport score_longtail(const at::Tensor& emb, const LongtailSample& sample, uint64_t seed,
                              const std::string& name, const std::vector<int64_t>& partner = {});

}  // namespace ffc::eval
