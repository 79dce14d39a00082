#include "data/dataset.h"

#include <glob.h>

#include <sstream>

#include "common/error.h"
#include "common/methods.h"
#include "data/recordio_dataset.h"

namespace ffc::data {

SyntheticSpec synthetic_spec(const Config& config) {
  SyntheticSpec spec;
  if (config.num_classes <= 0) {
    throw ConfigError("rec: synthetic needs num_classes (the number of procedural identities)");
  }
  spec.num_classes = config.num_classes;
  spec.min_images = config.synthetic_min_images;
  spec.max_images = config.synthetic_max_images;
  spec.power = config.synthetic_power;
  spec.difficulty = config.synthetic_difficulty;
  spec.image_size = static_cast<int>(config.image_size);
  spec.seed = static_cast<uint64_t>(config.seed);
  spec.color_order = parse_color_order(config.color_order);
  validate(spec);
  return spec;
}

std::vector<std::string> dataset_paths(const std::string& rec) {
  std::vector<std::string> paths;
  std::stringstream list(rec);
  std::string entry;
  while (std::getline(list, entry, ',')) {
    if (entry.empty()) {
      continue;
    }
    if (entry.find_first_of("*?[") == std::string::npos) {
      paths.push_back(entry);
      continue;
    }
    glob_t g{};
    const int rc = ::glob(entry.c_str(), 0, nullptr, &g);
    if (rc == GLOB_NOMATCH) {
      ::globfree(&g);
      throw ConfigError("rec: '" + entry + "' matches no dataset folder or .rec file");
    }
    if (rc != 0) {
      ::globfree(&g);
      throw IoError("rec: '" + entry + "': the pattern could not be expanded (glob error " +
                    std::to_string(rc) + ")");
    }
    for (size_t i = 0; i < g.gl_pathc; ++i) {
      paths.emplace_back(g.gl_pathv[i]);  // sorted by name
    }
    ::globfree(&g);
  }
  return paths;
}

std::shared_ptr<const ImageSource> open_dataset(const Config& config) {
  if (config.rec == "synthetic") {
    return std::make_shared<SyntheticSource>(synthetic_spec(config));
  }
  if (config.rec.empty()) {
    throw ConfigError(
        "no dataset: set rec to a dataset folder (train.rec, train.idx, property) "
        "or to synthetic");
  }
  RecordDatasetOptions options;
  options.image_size = static_cast<int>(config.image_size);
  options.color_order = parse_color_order(config.color_order);
  options.resize = config.resize;
  std::vector<std::shared_ptr<ImageSource>> parts;
  for (const std::string& path : dataset_paths(config.rec)) {
    parts.push_back(std::make_shared<RecordDataset>(path, options));
  }
  if (parts.empty()) {
    throw ConfigError("rec: '" + config.rec + "' names no dataset");
  }
  std::shared_ptr<const ImageSource> source;
  if (parts.size() == 1) {
    source = parts.front();
  } else {
    source = std::make_shared<ConcatSource>(parts);
  }
  if (config.num_classes > 0 && config.num_classes != source->num_classes()) {
    throw ConfigError("num_classes is " + std::to_string(config.num_classes) + " but " +
                      source->describe() + "; set num_classes: " +
                      std::to_string(source->num_classes()) + " or 0 (read it from the data)");
  }
  return source;
}

namespace {

PlannerOptions planner_options(const Config& config, int rank, int world) {
  PlannerOptions options;
  options.batch_size = config.batch_size;
  options.seed = static_cast<uint64_t>(config.seed);
  options.rank = rank;
  options.world = world;
  options.flip = config.flip;
  if (config.read_order == "block") {
    options.order = {config.read_block, config.read_window};
  }
  return options;
}

}  // namespace

std::shared_ptr<const BatchPlanner> make_planner(const Config& config, const ImageSource& source,
                                                 int rank, int world) {
  if (config.flip && !source.mirror_allowed()) {
    throw ConfigError("flip is true, but the dataset.json of rec '" + config.rec +
                      "' says a mirrored image is another identity (glyphs); set flip: false "
                      "(--set flip=false) to train on it");
  }
  const PlannerOptions options = planner_options(config, rank, world);
  const MethodInfo* method = find_method(config.method);
  FFC_CHECK(method != nullptr, "make_planner: unknown method '" + config.method + "'");
  switch (method->sampler) {
    case MethodSampler::kDual:
      return std::make_shared<DualPlanner>(source, options, parse_dual_mode(config.loader_mode));
    case MethodSampler::kKPerIdentity:
      return std::make_shared<KPerIdentityPlanner>(source, options,
                                                   static_cast<int>(config.images_per_identity));
    case MethodSampler::kInstance:
      break;
  }
  return std::make_shared<InstancePlanner>(source, options);
}

int64_t schedule_steps_per_epoch(const Config& config, const ImageSource& source,
                                 const BatchPlanner& planner, int rank, int world) {
  if (config.epoch_basis == "images") {
    return InstancePlanner(source, planner_options(config, rank, world)).steps_per_epoch();
  }
  return planner.steps_per_epoch();
}

}  // namespace ffc::data
