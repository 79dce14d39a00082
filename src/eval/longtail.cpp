#include "eval/longtail.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

#include "common/error.h"
#include "common/logging.h"
#include "eval/embed.h"
#include "eval/verification_set.h"
#include "model/backbone.h"

namespace ffc::eval {

const std::vector<LongtailBucket>& longtail_buckets() {
  static const std::vector<LongtailBucket> buckets = {
      {"unseen", 0, 0},
      {"1", 1, 1},
      {"2-5", 2, 5},
      {"6-20", 6, 20},
      {">20", 21, std::numeric_limits<int64_t>::max()},
  };
  return buckets;
}

int bucket_of(int64_t training_images) {
  const auto& buckets = longtail_buckets();
  for (size_t i = 0; i < buckets.size(); ++i) {
    if (training_images >= buckets[i].min_count && training_images <= buckets[i].max_count) {
      return static_cast<int>(i);
    }
  }
  FFC_CHECK(false, "negative training count " + std::to_string(training_images));
  return 0;
}

LongtailSample sample_longtail(const data::SyntheticSource& source, int64_t per_bucket) {
  FFC_CHECK(per_bucket >= 1, "the long-tail breakdown needs at least 1 identity per bucket");
  const auto& buckets = longtail_buckets();
  LongtailSample s;
  s.population.assign(buckets.size(), 0);
  source.for_each_class_size([&](int64_t count, int64_t classes) {
    s.population[static_cast<size_t>(bucket_of(count))] += classes;
  });
  std::vector<int64_t> wanted(buckets.size());
  int64_t missing = 0;
  for (size_t b = 1; b < buckets.size(); ++b) {
    wanted[b] = std::min(per_bucket, s.population[b]);
    missing += wanted[b];
  }
  std::vector<std::vector<int64_t>> chosen(buckets.size());
  // Trained identities in label order until every bucket has its share.
  for (int64_t label = 0; label < source.num_classes() && missing > 0; ++label) {
    const int64_t count = source.class_size(label);
    const auto b = static_cast<size_t>(bucket_of(count));
    if (static_cast<int64_t>(chosen[b].size()) < wanted[b]) {
      chosen[b].push_back(label);
      --missing;
    }
  }
  // Held-out identities: labels N, N + 1, ...
  for (int64_t i = 0; i < per_bucket; ++i) {
    chosen[0].push_back(source.num_classes() + i);
  }
  for (size_t b = 0; b < buckets.size(); ++b) {
    for (int64_t label : chosen[b]) {
      s.labels.push_back(label);
      s.train_images.push_back(b == 0 ? 0 : source.class_size(label));
      s.bucket.push_back(static_cast<int>(b));
    }
  }
  return s;
}

IndexPairs longtail_pairs(const std::vector<int64_t>& identities,
                          const std::vector<int64_t>& partners) {
  IndexPairs p;
  const size_t m = identities.size();
  if (m < 2) {
    return p;
  }
  FFC_CHECK(partners.empty() || partners.size() == m, "longtail_pairs: one partner per identity");
  for (size_t t = 0; t < m; ++t) {
    const int64_t i = identities[t];
    const int64_t other =
        !partners.empty() && partners[t] >= 0 ? partners[t] : identities[(t + 1) % m];
    p.a.push_back(2 * i);
    p.b.push_back(2 * i + 1);
    p.same.push_back(1);
    p.a.push_back(2 * i);
    p.b.push_back(2 * other + 1);
    p.same.push_back(0);
  }
  return p;
}

std::vector<int64_t> longtail_hard_partners(const data::SyntheticSpec& spec,
                                            const LongtailSample& sample, double share) {
  const auto n = static_cast<int64_t>(sample.labels.size());
  std::vector<int64_t> partner(static_cast<size_t>(n), -1);
  if (share <= 0.0) {
    return partner;
  }
  std::vector<std::vector<double>> z;
  z.reserve(static_cast<size_t>(n));
  for (const int64_t label : sample.labels) {
    z.push_back(data::synthetic_latent(spec, label));
  }
  std::vector<int64_t> seen(longtail_buckets().size(), 0);
  for (int64_t i = 0; i < n; ++i) {
    const int b = sample.bucket[static_cast<size_t>(i)];
    const int64_t t = seen[static_cast<size_t>(b)]++;
    if (std::floor((static_cast<double>(t) + 1) * share) <=
        std::floor(static_cast<double>(t) * share)) {
      continue;
    }
    double best_d = 0;
    for (int64_t j = 0; j < n; ++j) {
      if (j == i || sample.bucket[static_cast<size_t>(j)] != b) {
        continue;
      }
      double d = 0;
      for (size_t l = 0; l < z[0].size(); ++l) {
        const double e = z[static_cast<size_t>(i)][l] - z[static_cast<size_t>(j)][l];
        d += e * e;
      }
      if (partner[static_cast<size_t>(i)] < 0 || d < best_d) {
        partner[static_cast<size_t>(i)] = j;
        best_d = d;
      }
    }
  }
  return partner;
}

LongtailReport evaluate_longtail(model::Backbone& net, const data::SyntheticSource& source,
                                 int64_t per_bucket, comm::Communicator& comm, int64_t batch,
                                 bool flip, const InputNorm& norm, double hard_share) {
  FFC_CHECK(net.spec().image_size == source.image_size(),
            "the network takes " + std::to_string(net.spec().image_size) +
                " pixel images but the procedural identities are rendered at " +
                std::to_string(source.image_size()));
  const LongtailSample sample = sample_longtail(source, per_bucket);
  const auto n = static_cast<int64_t>(sample.labels.size());
  const int s = source.image_size();
  std::vector<uint8_t> px(static_cast<size_t>(s) * static_cast<size_t>(s) * 3);
  std::vector<float> scratch;
  const RawEmbeddings raw = embed_distributed(
      net, 2 * n,
      [&](int64_t begin, int64_t end, const at::Tensor& out) {
        for (int64_t k = begin; k < end; ++k) {
          const auto i = static_cast<size_t>(k / 2);
          source.render(sample.labels[i], sample.train_images[i] + k % 2, px.data(), scratch);
          normalize_pixels(px.data(), s, /*mirror=*/false, norm, out[k - begin].data_ptr<float>());
        }
      },
      comm, batch, flip);
  LongtailReport report =
      score_longtail(normalized(raw, flip), sample, source.spec().seed, "longtail",
                     longtail_hard_partners(source.spec(), sample, hard_share));
  report.per_bucket = per_bucket;
  report.flip = flip;
  return report;
}

LongtailSample file_sample(const LongtailSetFile& file) {
  LongtailSample s;
  s.labels = file.labels();
  s.train_images = file.train_images();
  s.population = file.population();
  for (const int64_t count : s.train_images) {
    s.bucket.push_back(bucket_of(count));
  }
  return s;
}

LongtailReport evaluate_longtail_file(model::Backbone& net, const LongtailSetFile& file,
                                      data::ColorOrder order, comm::Communicator& comm,
                                      int64_t batch, bool flip, const InputNorm& norm) {
  const bool use_flip = flip && file.flip_allowed();
  if (use_flip != flip && comm.rank() == 0) {
    spdlog::info(
        "{}: scored without the flip test (the file says a mirrored image is another "
        "identity)",
        file.path());
  }
  const LongtailSample sample = file_sample(file);
  const RawEmbeddings raw = embed_distributed(
      net, file.images(), set_file_filler(file, net.spec().image_size, order, norm), comm, batch,
      use_flip);
  LongtailReport report =
      score_longtail(normalized(raw, use_flip), sample, file.seed(), file.name());
  std::vector<int64_t> per(longtail_buckets().size(), 0);
  for (const int b : sample.bucket) {
    report.per_bucket = std::max(report.per_bucket, ++per[static_cast<size_t>(b)]);
  }
  report.flip = use_flip;
  return report;
}

LongtailReport score_longtail(const at::Tensor& emb, const LongtailSample& sample, uint64_t seed,
                              const std::string& name, const std::vector<int64_t>& partner) {
  const auto n = static_cast<int64_t>(sample.labels.size());
  // Identification: the gallery images of every sampled identity against their probe images.
  std::vector<int64_t> gallery_rows, probe_rows;
  for (int64_t i = 0; i < n; ++i) {
    gallery_rows.push_back(2 * i);
    probe_rows.push_back(2 * i + 1);
  }
  const std::vector<int64_t> ranks =
      identification_ranks(emb.index_select(0, row_index(gallery_rows)), sample.labels,
                           emb.index_select(0, row_index(probe_rows)), sample.labels);

  LongtailReport report;
  report.name = name;
  report.gallery_identities = n;
  const auto& buckets = longtail_buckets();
  std::vector<int64_t> trained;
  IndexPairs trained_pairs;
  auto make_row = [&](const std::string& bucket, int64_t population,
                      const std::vector<int64_t>& members, const IndexPairs& pairs) {
    LongtailRow row;
    row.bucket = bucket;
    row.population = population;
    row.identities = static_cast<int64_t>(members.size());
    row.identification = summarize_identification(ranks, n, members);
    if (pairs.same.size() >= 10) {
      row.verified = true;
      row.verification = verify_rows(emb, pairs.a, pairs.b, pairs.same);
    }
    return row;
  };
  int64_t trained_population = 0;
  for (size_t b = 0; b < buckets.size(); ++b) {
    std::vector<int64_t> members;
    for (int64_t i = 0; i < n; ++i) {
      if (sample.bucket[static_cast<size_t>(i)] == static_cast<int>(b)) {
        members.push_back(i);
      }
    }
    if (members.empty()) {
      continue;
    }
    std::vector<int64_t> partners;
    if (!partner.empty()) {
      for (const int64_t i : members) {
        partners.push_back(partner[static_cast<size_t>(i)]);
      }
    }
    const IndexPairs pairs = longtail_pairs(members, partners);
    report.rows.push_back(make_row(buckets[b].name, sample.population[b], members, pairs));
    if (b > 0) {
      trained.insert(trained.end(), members.begin(), members.end());
      trained_population += sample.population[b];
      trained_pairs.a.insert(trained_pairs.a.end(), pairs.a.begin(), pairs.a.end());
      trained_pairs.b.insert(trained_pairs.b.end(), pairs.b.begin(), pairs.b.end());
      trained_pairs.same.insert(trained_pairs.same.end(), pairs.same.begin(), pairs.same.end());
    }
  }
  if (!trained.empty()) {
    // The pairs of all trained buckets in one deterministic random order, so that each of the 10
    // contiguous folds mixes the buckets.
    std::vector<size_t> order(trained_pairs.same.size());
    for (size_t i = 0; i < order.size(); ++i) {
      order[i] = i;
    }
    std::mt19937_64 rng(seed);
    std::shuffle(order.begin(), order.end(), rng);
    IndexPairs mixed;
    for (size_t i : order) {
      mixed.a.push_back(trained_pairs.a[i]);
      mixed.b.push_back(trained_pairs.b[i]);
      mixed.same.push_back(trained_pairs.same[i]);
    }
    report.rows.push_back(make_row("trained", trained_population, trained, mixed));
  }
  return report;
}

}  // namespace ffc::eval
