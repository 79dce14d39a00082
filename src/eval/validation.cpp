#include "eval/validation.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <filesystem>

#include "common/error.h"
#include "common/logging.h"
#include "common/metrics_record.h"
#include "common/text.h"
#include "data/dataset.h"
#include "eval/embed.h"
#include "model/backbone.h"

namespace ffc::eval {
namespace {

std::string far_key(double far) {
  return fmt::format("tar@far={:.0e}", far);
}

void add_verification_fields(nlohmann::ordered_json& j, const VerificationResult& v) {
  j["pairs"] = v.pairs;
  j["positives"] = v.positives;
  j["negatives"] = v.negatives;
  j["accuracy"] = v.accuracy;
  j["accuracy_std"] = v.accuracy_std;
  j["threshold"] = v.threshold;
}

void add_tar_fields(nlohmann::ordered_json& j, const VerificationResult& v) {
  for (const auto& [far, tar] : v.tar_at_far) {
    j[far_key(far)] = tar;
  }
}

}  // namespace

VerificationReport score_pairs(const std::string& name, const RawEmbeddings& raw,
                               const std::vector<uint8_t>& issame, bool flip) {
  const auto pairs = static_cast<int64_t>(issame.size());
  FFC_CHECK(raw.plain.size(0) == 2 * pairs, "score_pairs: " + std::to_string(raw.plain.size(0)) +
                                                " embeddings for " + std::to_string(pairs) +
                                                " pairs");
  const at::Tensor even = at::arange(0, 2 * pairs, 2, at::kLong);
  const at::Tensor odd = at::arange(1, 2 * pairs, 2, at::kLong);
  VerificationReport r;
  r.name = name;
  r.flip = flip;
  const at::Tensor emb = normalized(raw, flip);
  const at::Tensor a = emb.index_select(0, even);
  const at::Tensor b = emb.index_select(0, odd);
  r.result = verify(a, b, issame);
  if (r.result.positives > 0 && r.result.negatives > 0) {
    r.roc = roc_curve(pair_scores(a, b), issame);
    r.auc = roc_auc(r.roc);
  }
  if (flip) {
    const at::Tensor plain = normalized(raw, false);
    r.has_noflip = true;
    r.noflip = verify(plain.index_select(0, even), plain.index_select(0, odd), issame);
  }
  r.xnorm = xnorm(raw);
  return r;
}

VerificationReport evaluate_set_file(model::Backbone& net, const VerificationSetFile& file,
                                     data::ColorOrder order, comm::Communicator& comm,
                                     const EvalOptions& options) {
  const int64_t s = net.spec().image_size;
  if (file.image_size() != s && comm.rank() == 0) {
    spdlog::info("{}: images of {} resized bilinearly to the network's {}x{}", file.path(),
                 file.image_size() > 0
                     ? std::to_string(file.image_size()) + "x" + std::to_string(file.image_size())
                     : std::string("mixed sizes"),
                 s, s);
  }
  // A set whose mirrored images are other identities (glyphs) is never scored with the flip test.
  const bool flip = options.flip && file.flip_allowed();
  if (flip != options.flip && comm.rank() == 0) {
    spdlog::info(
        "{}: scored without the flip test (the file says a mirrored image is another "
        "identity)",
        file.path());
  }
  const RawEmbeddings raw = embed_distributed(
      net, file.images(), set_file_filler(file, s, order, options.norm), comm, options.batch, flip);
  return score_pairs(file.name(), raw, file.issame(), flip);
}

VerificationReport evaluate_heldout(model::Backbone& net, const data::SyntheticSource& source,
                                    int64_t pairs, comm::Communicator& comm,
                                    const EvalOptions& options) {
  FFC_CHECK(net.spec().image_size == source.image_size(),
            "the network takes " + std::to_string(net.spec().image_size) +
                " pixel images but the procedural identities are rendered at " +
                std::to_string(source.image_size()) + "; set image_size to the network's");
  const SyntheticPairs p = heldout_pairs(source.spec(), pairs, options.hard_impostors);
  const int s = source.image_size();
  std::vector<uint8_t> px(static_cast<size_t>(s) * static_cast<size_t>(s) * 3);
  std::vector<float> scratch;
  const RawEmbeddings raw = embed_distributed(
      net, 2 * pairs,
      [&](int64_t begin, int64_t end, const at::Tensor& out) {
        for (int64_t i = begin; i < end; ++i) {
          const auto k = static_cast<size_t>(i / 2);
          const bool a = i % 2 == 0;
          source.render(a ? p.label_a[k] : p.label_b[k], a ? p.image_a[k] : p.image_b[k], px.data(),
                        scratch);
          normalize_pixels(px.data(), s, /*mirror=*/false, options.norm,
                           out[i - begin].data_ptr<float>());
        }
      },
      comm, options.batch, options.flip);
  return score_pairs("heldout", raw, p.same, options.flip);
}

std::vector<std::string> report_lines(const VerificationReport& r, int64_t step) {
  const std::string tag = fmt::format("[{}][{}] ", r.name, step);
  std::vector<std::string> out;
  out.push_back(tag + fmt::format("Pairs: {} ({} genuine, {} impostor)", r.result.pairs,
                                  r.result.positives, r.result.negatives));
  out.push_back(tag + fmt::format("XNorm: {:f}", r.xnorm));
  if (r.has_noflip) {
    out.push_back(
        tag + fmt::format("Accuracy: {:1.5f}+-{:1.5f}", r.noflip.accuracy, r.noflip.accuracy_std));
  }
  out.push_back(tag + fmt::format("{}: {:1.5f}+-{:1.5f}", r.flip ? "Accuracy-Flip" : "Accuracy",
                                  r.result.accuracy, r.result.accuracy_std));
  for (const auto& [far, tar] : r.result.tar_at_far) {
    out.push_back(tag + fmt::format("TAR@FAR={:.0e}: {:1.5f}", far, tar));
  }
  return out;
}

std::vector<std::string> report_lines(const LongtailReport& r, int64_t step) {
  const std::string tag = fmt::format("[{}][{}] ", r.name, step);
  std::vector<std::string> out;
  out.push_back(tag + fmt::format("{:<8} {:>11} {:>7} {:>19} {:>13} {:>7} {:>7}", "bucket",
                                  "trained ids", "sampled", r.flip ? "accuracy-flip" : "accuracy",
                                  "TAR@FAR=1e-02", "top-1", "top-5"));
  for (const LongtailRow& row : r.rows) {
    std::string acc = "-", tar = "-";
    if (row.verified) {
      acc =
          fmt::format("{:1.5f}+-{:1.5f}", row.verification.accuracy, row.verification.accuracy_std);
      for (const auto& [far, t] : row.verification.tar_at_far) {
        if (far == 1e-2) {
          tar = fmt::format("{:1.5f}", t);
        }
      }
    }
    out.push_back(tag + fmt::format("{:<8} {:>11} {:>7} {:>19} {:>13} {:>7.5f} {:>7.5f}",
                                    row.bucket,
                                    row.bucket == "unseen" ? "-" : grouped(row.population),
                                    grouped(row.identities), acc, tar, row.identification.top1,
                                    row.identification.top5));
  }
  out.push_back(tag + fmt::format("gallery: one unseen image of each of the {} identities; "
                                  "probes: another unseen image of each",
                                  grouped(r.gallery_identities)));
  return out;
}

nlohmann::ordered_json to_json(const VerificationReport& r) {
  nlohmann::ordered_json j;
  j["target"] = r.name;
  j["flip"] = r.flip;
  add_verification_fields(j, r.result);
  if (r.has_noflip) {
    j["accuracy_noflip"] = r.noflip.accuracy;
    j["accuracy_noflip_std"] = r.noflip.accuracy_std;
  }
  j["xnorm"] = r.xnorm;
  j["auc"] = r.auc;
  add_tar_fields(j, r.result);
  return j;
}

nlohmann::ordered_json to_json(const LongtailReport& r) {
  nlohmann::ordered_json j;
  j["target"] = r.name;
  j["flip"] = r.flip;
  j["per_bucket"] = r.per_bucket;
  j["gallery_identities"] = r.gallery_identities;
  nlohmann::ordered_json rows = nlohmann::ordered_json::array();
  for (const LongtailRow& row : r.rows) {
    nlohmann::ordered_json b;
    b["bucket"] = row.bucket;
    b["trained_identities"] = row.population;
    b["identities"] = row.identities;
    if (row.verified) {
      add_verification_fields(b, row.verification);
      add_tar_fields(b, row.verification);
    }
    b["top1"] = row.identification.top1;
    b["top5"] = row.identification.top5;
    rows.push_back(b);
  }
  j["buckets"] = rows;
  return j;
}

std::string resolve_val_target(const Config& config, const std::string& entry) {
  const bool is_path = entry.find('/') != std::string::npos ||
                       (entry.size() > 3 && entry.compare(entry.size() - 3, 3, ".h5") == 0);
  if (is_path) {
    return entry;
  }
  if (config.rec.empty() || config.rec == "synthetic") {
    return entry + ".h5";
  }
  const std::string folder = config.rec.substr(0, config.rec.find(','));
  return folder + "/" + entry + ".h5";
}

ValidationResults run_validation(const Config& config, model::Backbone& net,
                                 comm::Communicator& comm, int64_t step, const RecordSink& sink,
                                 const InputNorm& norm) {
  EvalOptions options;
  options.norm = norm;
  options.flip = true;
  options.batch = 128;
  options.hard_impostors = config.val_hard_impostors;
  const Rank0Buffers same_network(net, comm);
  ValidationResults results;
  auto emit = [&](const std::vector<std::string>& lines, nlohmann::ordered_json fields) {
    for (const std::string& line : lines) {
      spdlog::info("{}", line);
    }
    const nlohmann::ordered_json rec = metrics::eval_record(step, fields);
    if (sink) {
      sink(rec);
    }
  };
  const data::ColorOrder order = data::parse_color_order(config.color_order);
  for (const std::string& entry : config.val_targets) {
    const std::string path = resolve_val_target(config, entry);
    std::error_code ec;
    const bool missing = !std::filesystem::is_regular_file(path, ec);
    if (comm::any_rank(comm, missing)) {
      if (comm.rank() == 0) {
        spdlog::warn(
            "val_targets: {}: no such file on some rank; skipped ({} converts "
            "insightface's .bin files)",
            path, "tools/bin2ffc.py");
      }
      continue;
    }
    if (set_file_format(path) == kLongtailSetFormat) {
      const LongtailSetFile file(path);
      results.longtail_sets.push_back(evaluate_longtail_file(net, file, order, comm, options.batch,
                                                             options.flip, options.norm));
      emit(report_lines(results.longtail_sets.back(), step), to_json(results.longtail_sets.back()));
      continue;
    }
    const VerificationSetFile file(path);
    results.verification.push_back(evaluate_set_file(net, file, order, comm, options));
    emit(report_lines(results.verification.back(), step), to_json(results.verification.back()));
  }
  if (config.rec == "synthetic") {
    const data::SyntheticSource source(data::synthetic_spec(config));
    if (config.val_pairs >= 10) {
      results.verification.push_back(
          evaluate_heldout(net, source, config.val_pairs, comm, options));
      emit(report_lines(results.verification.back(), step), to_json(results.verification.back()));
    } else if (config.val_pairs > 0 && comm.rank() == 0) {
      spdlog::warn("val_pairs: {} pairs are too few for 10 folds; the held-out pairs are skipped",
                   config.val_pairs);
    }
    if (config.val_identities > 0) {
      results.longtail = evaluate_longtail(net, source, config.val_identities, comm, options.batch,
                                           options.flip, options.norm, options.hard_impostors);
      results.has_longtail = true;
      emit(report_lines(results.longtail, step), to_json(results.longtail));
    }
  }
  return results;
}

}  // namespace ffc::eval
