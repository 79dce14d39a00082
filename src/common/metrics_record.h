#pragma once
// The records of metrics.jsonl, one JSON object per line, in one place: the trainer writes them
// through these functions (train/trainer.cpp, eval/validation.cpp) and the benchmarks read them
// back through them (bench/). Two kinds:
//   progress  every `frequent` steps: step, epoch, the step's figures (loss first, then the
//             method's and the trainer's), lr, images_per_s, probe_images_per_s, phase_ms (per
//             phase, ms per step), phase_clock, peak_rss_mib, peak_private_mib, elapsed_s;
//   eval      "event": "eval", step, the target's figures ("target": heldout, longtail or a
//             verification set's name), then net, epoch (fractional) and train_s (seconds of
//             training so far, evaluations left out).
// docs/training.md ("metrics.jsonl") describes the fields for users.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace ffc::metrics {

using Json = nlohmann::ordered_json;

struct Progress {
  int64_t step = 0;               // steps done (1-based: the record after step s says s + 1)
  int64_t epoch = 0;              // the epoch the step is in (0-based)
  Json figures = Json::object();  // loss, then the method's and the trainer's figures
  double lr = 0;
  double images_per_s = 0;                               // probe and gallery images, all ranks
  double probe_images_per_s = 0;                         // probe images, all ranks
  std::vector<std::pair<std::string, double>> phase_ms;  // per phase, ms per step
  std::string phase_clock;                               // host, synchronised or device
  double peak_rss_mib = 0;                               // the largest of any rank so far
  double peak_private_mib = 0;
  double elapsed_s = 0;  // since the run started, evaluations included

  double loss() const;
  double step_ms() const;                       // the phases' sum
  double phase(const std::string& name) const;  // 0 when absent
};

Json to_json(const Progress& p);
// Whether `rec` is a progress record (it has images_per_s), and its fields.
bool is_progress(const Json& rec);
Progress progress_from_json(const Json& rec);

// The eval record's head and tail around the target's figures.
Json eval_record(int64_t step, const Json& figures);
void add_eval_context(Json& rec, const std::string& net, double epoch, double train_s);
bool is_eval(const Json& rec);

// The records of a metrics.jsonl (none if it does not exist). Throws FormatError naming the file
// and the line for a line that is not JSON.
std::vector<Json> read_file(const std::string& path);

}  // namespace ffc::metrics
