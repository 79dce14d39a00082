#include "eval/identification.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <limits>
#include <unordered_map>

#include "common/error.h"

namespace ffc::eval {

std::vector<int64_t> identification_ranks(const at::Tensor& gallery,
                                          const std::vector<int64_t>& gallery_ids,
                                          const at::Tensor& probes,
                                          const std::vector<int64_t>& probe_ids) {
  FFC_CHECK(gallery.dim() == 2 && probes.dim() == 2 && gallery.size(1) == probes.size(1),
            "identification: gallery and probes must be [G, D] and [Q, D] with the same D");
  FFC_CHECK(gallery.size(0) == static_cast<int64_t>(gallery_ids.size()) &&
                probes.size(0) == static_cast<int64_t>(probe_ids.size()),
            "identification: as many labels as embeddings are needed");
  // Gallery identities, numbered in order of first appearance.
  std::unordered_map<int64_t, int64_t> index;
  std::vector<int64_t> entry_identity(gallery_ids.size());
  for (size_t g = 0; g < gallery_ids.size(); ++g) {
    const auto it = index.emplace(gallery_ids[g], static_cast<int64_t>(index.size())).first;
    entry_identity[g] = it->second;
  }
  const auto identities = static_cast<int64_t>(index.size());
  std::vector<int64_t> truth(probe_ids.size());
  for (size_t q = 0; q < probe_ids.size(); ++q) {
    const auto it = index.find(probe_ids[q]);
    if (it == index.end()) {
      throw Error("identification: probe " + std::to_string(q) + " has identity " +
                  std::to_string(probe_ids[q]) +
                  ", which the gallery lacks (closed-set identification needs every probe "
                  "identity in the gallery)");
    }
    truth[q] = it->second;
  }
  const at::Tensor g = gallery.to(at::kFloat).contiguous();
  std::vector<int64_t> ranks(probe_ids.size());
  std::vector<float> best(static_cast<size_t>(identities));
  constexpr int64_t kChunk = 1024;  // probes per similarity block
  for (int64_t start = 0; start < probes.size(0); start += kChunk) {
    const int64_t n = std::min(kChunk, probes.size(0) - start);
    const at::Tensor sim =
        at::matmul(probes.narrow(0, start, n).to(at::kFloat), g.t()).contiguous();
    const float* s = sim.data_ptr<float>();
    for (int64_t i = 0; i < n; ++i) {
      std::fill(best.begin(), best.end(), -std::numeric_limits<float>::infinity());
      const float* row = s + i * g.size(0);
      for (int64_t e = 0; e < g.size(0); ++e) {
        float& b = best[static_cast<size_t>(entry_identity[static_cast<size_t>(e)])];
        b = std::max(b, row[e]);
      }
      const int64_t own = truth[static_cast<size_t>(start + i)];
      const float t = best[static_cast<size_t>(own)];
      int64_t rank = 0;
      for (int64_t k = 0; k < identities; ++k) {
        rank += k != own && best[static_cast<size_t>(k)] >= t;
      }
      ranks[static_cast<size_t>(start + i)] = rank;
    }
  }
  return ranks;
}

double top_k_accuracy(const std::vector<int64_t>& ranks, int64_t k) {
  int64_t hits = 0;
  for (int64_t r : ranks) {
    hits += r < k;
  }
  return ranks.empty() ? 0.0 : static_cast<double>(hits) / static_cast<double>(ranks.size());
}

double top_k_accuracy(const std::vector<int64_t>& ranks, int64_t k,
                      const std::vector<int64_t>& subset) {
  int64_t hits = 0;
  for (int64_t q : subset) {
    FFC_CHECK(q >= 0 && q < static_cast<int64_t>(ranks.size()), "top_k: probe out of range");
    hits += ranks[static_cast<size_t>(q)] < k;
  }
  return subset.empty() ? 0.0 : static_cast<double>(hits) / static_cast<double>(subset.size());
}

IdentificationResult summarize_identification(const std::vector<int64_t>& ranks,
                                              int64_t gallery_identities,
                                              const std::vector<int64_t>& subset) {
  IdentificationResult r;
  r.probes = static_cast<int64_t>(subset.size());
  r.gallery_identities = gallery_identities;
  r.top1 = top_k_accuracy(ranks, 1, subset);
  r.top5 = top_k_accuracy(ranks, 5, subset);
  return r;
}

}  // namespace ffc::eval
