#pragma once
// Evaluation as `ffc eval` and the training loop run it (docs/eval.md): verification on set files
// and on procedural held-out pairs, the long-tail breakdown, their log lines (insightface's
// "[lfw][2000] Accuracy-Flip: 0.99517+-0.00360") and JSON records. The embedding work is split
// over the ranks; every rank gets every result.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "common/config.h"
#include "data/jpeg.h"
#include "data/synthetic.h"
#include "eval/longtail.h"
#include "eval/verification.h"
#include "eval/verification_set.h"

namespace ffc::model {
class Backbone;
}

namespace ffc::eval {

struct EvalOptions {
  bool flip = true;                      // flip test; without it, the plain embeddings only
  int64_t batch = 256;                   // images per forward (twice as many rows with flip)
  InputNorm norm = legacy_input_norm();  // the network's input normalisation
  double hard_impostors = 0.0;           // procedural pairs: share of hard impostors
};

struct VerificationReport {
  std::string name;
  bool flip = true;
  VerificationResult result;  // of the flip-test embeddings with flip, else of the plain ones
  bool has_noflip = false;    // with flip, the plain embeddings are scored too
  VerificationResult noflip;
  double xnorm = 0;  // mean L2 norm of the raw embeddings (insightface's XNorm)
  double auc = 0;
  std::vector<RocPoint> roc;  // of `result`'s scores
};

// Scores pairs (rows 2k, 2k + 1) of raw embeddings of 2P images.
VerificationReport score_pairs(const std::string& name, const RawEmbeddings& raw,
                               const std::vector<uint8_t>& issame, bool flip);

VerificationReport evaluate_set_file(model::Backbone& net, const VerificationSetFile& file,
                                     data::ColorOrder order, comm::Communicator& comm,
                                     const EvalOptions& options);

// The `pairs` held-out pairs of heldout_pairs(), rendered at the source's image size.
VerificationReport evaluate_heldout(model::Backbone& net, const data::SyntheticSource& source,
                                    int64_t pairs, comm::Communicator& comm,
                                    const EvalOptions& options);

// Log lines, each starting "[name][step] ".
std::vector<std::string> report_lines(const VerificationReport& report, int64_t step);
std::vector<std::string> report_lines(const LongtailReport& report, int64_t step);

// JSON objects (docs/eval.md lists the fields).
nlohmann::ordered_json to_json(const VerificationReport& report);
nlohmann::ordered_json to_json(const LongtailReport& report);

// The file of one val_targets entry: a name ending in .h5 or holding a '/' is a path; a bare
// name N is N.h5 in the first dataset folder of `rec` (where insightface keeps N.bin), or in the
// working folder when rec is synthetic.
std::string resolve_val_target(const Config& config, const std::string& entry);

struct ValidationResults {
  std::vector<VerificationReport> verification;  // val_targets, then "heldout"
  bool has_longtail = false;
  LongtailReport longtail;                    // rec: synthetic, val_identities
  std::vector<LongtailReport> longtail_sets;  // long-tail set files of val_targets
};

// Receives one JSON record per target ({"event": "eval", "step": ..., "target": ..., ...}).
using RecordSink = std::function<void(const nlohmann::ordered_json&)>;

// The evaluation of a training run at `step`, called by every rank with the network to evaluate
// (with rank 0's buffers while it runs, Rank0Buffers):
// each file of val_targets (verification or long-tail set files, told apart by their format
// attribute; a missing file is skipped with a warning, as insightface does), and
// with rec: synthetic the val_pairs held-out pairs ("heldout") and the long-tail breakdown of
// val_identities identities per bucket ("longtail"). Logs the lines of report_lines at info level
// and passes each record to `sink`.
ValidationResults run_validation(const Config& config, model::Backbone& net,
                                 comm::Communicator& comm, int64_t step, const RecordSink& sink,
                                 const InputNorm& norm = legacy_input_norm());

}  // namespace ffc::eval
