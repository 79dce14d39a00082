// `ffc data stat|verify PATH` and `ffc pack`: inspect, check and build datasets.

#include <chrono>
#include <iostream>

#include "apps/commands.h"
#include "common/error.h"
#include "common/logging.h"
#include "data/dataset.h"
#include "data/inspect.h"
#include "data/loader.h"
#include "data/recordio_dataset.h"
#include "data/sampler.h"

namespace ffc::app {
namespace {

// PATH is a dataset folder (or train.rec), or "synthetic" (procedural, from the config).
std::shared_ptr<const data::ImageSource> open_path(const std::string& path, Config config) {
  config.rec = path;
  if (path != "synthetic") {
    config.num_classes = 0;  // read from the property file
    // The set as it is: its image size from its (first) property file, not the config's.
    const std::vector<std::string> paths = data::dataset_paths(path);
    if (!paths.empty()) {
      config.image_size = data::read_property(data::dataset_folder(paths.front())).height;
    }
  }
  return data::open_dataset(config);
}

void log_progress(int64_t done, int64_t total) {
  spdlog::info("{} / {} images ({:.0f}%)", done, total, 100.0 * done / std::max<int64_t>(total, 1));
}

}  // namespace

int run_data_stat(const DataCommand& cmd) {
  const Config config = resolve_config(cmd.config);
  const auto source = open_path(cmd.path, config);
  std::cout << data::stats_json(data::dataset_stats(*source), cmd.path) << "\n";
  return 0;
}

int run_data_verify(const DataCommand& cmd) {
  const Config config = resolve_config(cmd.config);
  const auto source = open_path(cmd.path, config);
  spdlog::info("verifying {}", source->describe());
  const auto bad = data::verify_dataset(*source, log_progress);
  for (const auto& b : bad) {
    std::cout << "bad: image " << b.image << ": " << b.reason << "\n";
  }
  std::cout << "verified " << source->num_images() << " images: " << bad.size() << " bad\n";
  return bad.empty() ? 0 : kExitFailure;
}

int run_data_read(const DataCommand& cmd) {
  if (cmd.steps < 1) {
    throw ConfigError("ffc data read: --steps must be at least 1");
  }
  const Config config = resolve_config(cmd.config);
  const auto source = open_path(cmd.path, config);
  // The planner of the configured method (ffc: the dual loader, so the identity sampler too).
  const auto planner = data::make_planner(config, *source, 0, 1);
  int64_t per_step = 0;
  for (const int64_t rows : planner->view_rows()) {
    per_step += rows;
  }
  data::LoaderOptions lo;
  lo.threads = static_cast<int>(config.num_workers);
  lo.prefetch = static_cast<int>(config.prefetch);
  if (cmd.cold) {
    source->drop_cached();
  }
  const std::string order = config.read_order == "block"
                                ? "block (" + std::to_string(config.read_block) + " records x " +
                                      std::to_string(config.read_window) + " per window)"
                                : std::string("random");
  spdlog::info("reading {} batches of {} images ({} loader) from {}, order {}, {} worker(s){}",
               cmd.steps, per_step, config.method, source->describe(), order, config.num_workers,
               cmd.cold ? ", cold page cache" : "");
  const auto t0 = std::chrono::steady_clock::now();
  if (cmd.plan_only) {
    std::vector<std::vector<data::Sample>> views;
    int64_t sum = 0;  // keeps the plans observable
    for (int64_t s = 0; s < cmd.steps; ++s) {
      planner->plan(s, views);
      sum += views[0][0].image;
    }
    spdlog::debug("plan checksum {}", sum);
  } else {
    data::Loader loader(source, planner, lo);
    for (int64_t s = 0; s < cmd.steps; ++s) {
      loader.get(s);
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double images = static_cast<double>(cmd.steps * per_step);
  if (cmd.plan_only) {
    std::cout << "planned " << static_cast<int64_t>(images) << " images in "
              << fmt::format("{:.2f}", secs) << " s: " << fmt::format("{:.0f}", images / secs)
              << " images/s; " << config.method << " loader, read_order " << order << "\n";
    return 0;
  }
  const double mib = images * static_cast<double>(source->stored_bytes()) /
                     static_cast<double>(source->num_images()) / (1024.0 * 1024.0);
  std::cout << "read " << static_cast<int64_t>(images) << " images in "
            << fmt::format("{:.2f}", secs) << " s: " << fmt::format("{:.0f}", images / secs)
            << " images/s, " << fmt::format("{:.1f}", mib / secs) << " MiB/s; " << config.method
            << " loader, read_order " << order << ", " << config.num_workers << " worker(s)"
            << (cmd.cold ? ", cold page cache" : "") << "\n";
  return 0;
}

// Builds (or checks) the binary index of one dataset; returns whether it is good.
static bool index_one(const std::string& path, bool check) {
  data::RecordDatasetOptions options;
  options.image_size = data::read_property(data::dataset_folder(path)).height;
  options.resize = true;
  const data::RecordDataset ds(path, options);
  const std::string index = data::record_index_path(ds.file().path());
  if (!check) {
    ds.write_index();
    std::cout << "wrote " << index << ": " << ds.num_images() << " images, " << ds.num_classes()
              << " classes, " << data::stamp_of(index).size << " bytes\n";
    return true;
  }
  std::string why;
  const auto mapped = data::MappedRecordIndex::open(index, data::stamp_of(ds.file().path()),
                                                    data::stamp_of(ds.idx_path()), why);
  if (mapped) {
    why = mapped->check_sections();
  } else if (why.empty()) {
    why = index + ": missing; build it with `ffc data index " + path + "`";
  }
  std::cout << (why.empty() ? index + ": ok, " + std::to_string(mapped->bytes()) + " bytes" : why)
            << "\n";
  return why.empty();
}

int run_data_index(const DataCommand& cmd) {
  bool good = true;
  for (const std::string& path : data::dataset_paths(cmd.path)) {
    good = index_one(path, cmd.check) && good;
  }
  return good ? kExitOk : kExitFailure;
}

int run_pack(const PackCommand& cmd) {
  if (cmd.from_folder.empty() == !cmd.synthetic) {
    throw ConfigError("ffc pack needs exactly one of --from-folder DIR and --synthetic");
  }
  data::PackReport report;
  data::DatasetInfo info;
  info.flip = !cmd.no_flip;
  if (cmd.synthetic) {
    if (cmd.no_flip) {
      throw ConfigError(
          "ffc pack --no-flip is for folders of images that mirroring changes "
          "(glyphs); procedural identities may be mirrored");
    }
    Config config = resolve_config(cmd.config);
    data::SyntheticSpec spec = data::synthetic_spec(config);
    spec.color_order = data::ColorOrder::kRgb;  // JPEG stores RGB
    const data::SyntheticSource source(spec);
    spdlog::info("packing {}", source.describe());
    report = data::pack_source(source, cmd.out, cmd.quality, log_progress);
  } else {
    report = data::pack_folder(cmd.from_folder, cmd.out, info);
  }
  std::cout << "packed " << report.images << " images of " << report.classes << " identities ("
            << report.image_size << "x" << report.image_size << ", " << report.bytes
            << " bytes) into " << cmd.out << "/train.rec, train.idx, property"
            << (info.flip ? "" : ", dataset.json (flip: false)") << "\n";
  index_one(cmd.out, /*check=*/false);  // the binary index every rank maps
  return 0;
}

}  // namespace ffc::app
