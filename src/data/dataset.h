#pragma once
// From configuration to data: the image source (RecordIO folders or procedural identities) and
// the batch planner of the training method.

#include <memory>
#include <string>
#include <vector>

#include "common/config.h"
#include "data/image_source.h"
#include "data/sampler.h"
#include "data/synthetic.h"

namespace ffc::data {

// The procedural spec of a config (rec: synthetic; num_classes, image_size, seed, synthetic_*).
SyntheticSpec synthetic_spec(const Config& config);
// The dataset paths of config.rec (not "synthetic"): entries separated by commas, each a dataset
// folder, a .rec file, or a glob pattern (`data/part-*`) expanded in name order. Throws
// ConfigError for a pattern that matches nothing.
std::vector<std::string> dataset_paths(const std::string& rec);
// Opens config.rec: "synthetic", or the datasets of dataset_paths() (several are concatenated,
// the labels of each offset by the classes before it: shards of disjoint identities, each with
// labels from 0). Checks num_classes against the data when it is set.
std::shared_ptr<const ImageSource> open_dataset(const Config& config);
// The planner of config.method: ffc -> DualPlanner(loader_mode), vfc -> KPerIdentityPlanner,
// fc/pfc -> InstancePlanner.
std::shared_ptr<const BatchPlanner> make_planner(const Config& config, const ImageSource& source,
                                                 int rank, int world);

// Steps of one epoch of the learning-rate schedule (epoch_basis): the planner's own pass, or
// (images) one pass over the images at batch_size per rank whatever the method's loader, so
// that every method gets the same steps.
int64_t schedule_steps_per_epoch(const Config& config, const ImageSource& source,
                                 const BatchPlanner& planner, int rank, int world);

}  // namespace ffc::data
