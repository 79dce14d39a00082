#pragma once
// Closed-set 1:N identification on a gallery/probe split (docs/eval.md): every probe is compared
// with every gallery entry by cosine similarity; an identity scores the best of its gallery
// entries; the probe's rank is the number of other identities scoring at least as high as its own
// (ties count against the probe). Top-k accuracy is the share of probes with rank < k.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace ffc::eval {

// gallery [G, D] and probes [Q, D]: L2-normalised rows (float32 or float64, CPU); gallery_ids [G]
// and probe_ids [Q] identity labels. Every probe identity must be in the gallery (closed set);
// otherwise throws naming the probe. Returns the rank of each probe (0: identified first).
std::vector<int64_t> identification_ranks(const at::Tensor& gallery,
                                          const std::vector<int64_t>& gallery_ids,
                                          const at::Tensor& probes,
                                          const std::vector<int64_t>& probe_ids);

// Share of `ranks` below k, over all probes, or over the probes whose indices are in `subset`
// (0 for an empty subset).
double top_k_accuracy(const std::vector<int64_t>& ranks, int64_t k);
double top_k_accuracy(const std::vector<int64_t>& ranks, int64_t k,
                      const std::vector<int64_t>& subset);

struct IdentificationResult {
  int64_t probes = 0;
  int64_t gallery_identities = 0;
  double top1 = 0;
  double top5 = 0;
};

// top-1 and top-5 over the probes of `subset` (their indices into `ranks`); gallery_identities
// is passed through.
IdentificationResult summarize_identification(const std::vector<int64_t>& ranks,
                                              int64_t gallery_identities,
                                              const std::vector<int64_t>& subset);

}  // namespace ffc::eval
