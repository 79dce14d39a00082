#include "common/metrics_record.h"

#include <fstream>

#include "common/error.h"
#include "common/json_get.h"

namespace ffc::metrics {

double Progress::loss() const {
  return json_number(figures, "loss", 0.0);
}

double Progress::step_ms() const {
  double total = 0;
  for (const auto& [name, ms] : phase_ms) {
    total += ms;
  }
  return total;
}

double Progress::phase(const std::string& name) const {
  for (const auto& [n, ms] : phase_ms) {
    if (n == name) {
      return ms;
    }
  }
  return 0;
}

Json to_json(const Progress& p) {
  Json rec;
  rec["step"] = p.step;
  rec["epoch"] = p.epoch;
  for (const auto& [k, v] : p.figures.items()) {
    rec[k] = v;
  }
  rec["lr"] = p.lr;
  rec["images_per_s"] = p.images_per_s;
  rec["probe_images_per_s"] = p.probe_images_per_s;
  Json ph;
  for (const auto& [name, ms] : p.phase_ms) {
    ph[name] = ms;
  }
  rec["phase_ms"] = ph;
  rec["phase_clock"] = p.phase_clock;
  rec["peak_rss_mib"] = p.peak_rss_mib;
  rec["peak_private_mib"] = p.peak_private_mib;
  rec["elapsed_s"] = p.elapsed_s;
  return rec;
}

bool is_progress(const Json& rec) {
  return rec.is_object() && rec.contains("images_per_s");
}

Progress progress_from_json(const Json& rec) {
  static const char* const kFixed[] = {
      "step",     "epoch",       "lr",           "images_per_s",     "probe_images_per_s",
      "phase_ms", "phase_clock", "peak_rss_mib", "peak_private_mib", "elapsed_s"};
  Progress p;
  p.step = static_cast<int64_t>(json_number(rec, "step", 0));
  p.epoch = static_cast<int64_t>(json_number(rec, "epoch", 0));
  p.lr = json_number(rec, "lr", 0);
  p.images_per_s = json_number(rec, "images_per_s", 0);
  p.probe_images_per_s = json_number(rec, "probe_images_per_s", 0);
  p.phase_clock = json_string(rec, "phase_clock");
  p.peak_rss_mib = json_number(rec, "peak_rss_mib", 0);
  p.peak_private_mib = json_number(rec, "peak_private_mib", 0);
  p.elapsed_s = json_number(rec, "elapsed_s", 0);
  const auto ph = rec.find("phase_ms");
  if (ph != rec.end() && ph->is_object()) {
    for (const auto& [name, ms] : ph->items()) {
      p.phase_ms.emplace_back(name, ms.is_number() ? ms.get<double>() : 0.0);
    }
  }
  for (const auto& [k, v] : rec.items()) {
    bool fixed = false;
    for (const char* f : kFixed) {
      fixed = fixed || k == f;
    }
    if (!fixed) {
      p.figures[k] = v;
    }
  }
  return p;
}

Json eval_record(int64_t step, const Json& figures) {
  Json rec;
  rec["event"] = "eval";
  rec["step"] = step;
  for (const auto& [k, v] : figures.items()) {
    rec[k] = v;
  }
  return rec;
}

void add_eval_context(Json& rec, const std::string& net, double epoch, double train_s) {
  rec["net"] = net;
  rec["epoch"] = epoch;
  rec["train_s"] = train_s;
}

bool is_eval(const Json& rec) {
  return json_string(rec, "event") == "eval";
}

std::vector<Json> read_file(const std::string& path) {
  std::vector<Json> out;
  std::ifstream in(path);
  int64_t line_no = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    if (line.empty()) {
      continue;
    }
    try {
      out.push_back(Json::parse(line));
    } catch (const nlohmann::json::exception& e) {
      throw FormatError(path + ":" + std::to_string(line_no) + ": not a JSON record (" + e.what() +
                        "); a run still writing its last line, or a damaged file");
    }
  }
  return out;
}

}  // namespace ffc::metrics
