#pragma once
// From configuration to data: the image source (RecordIO folders or procedural identities) and
// the batch planner of the training method.

#include <memory>

#include "common/config.h"
#include "data/image_source.h"
#include "data/sampler.h"
#include "data/synthetic.h"

namespace ffc::data {

// The procedural spec of a config (rec: synthetic; num_classes, image_size, seed, synthetic_*).
SyntheticSpec synthetic_spec(const Config& config);
// Opens config.rec: "synthetic", one dataset folder, or several separated by commas
// (concatenated, labels offset). Checks num_classes against the data when it is set.
std::shared_ptr<const ImageSource> open_dataset(const Config& config);
// The planner of config.method: ffc -> DualPlanner(loader_mode), vfc -> KPerIdentityPlanner,
// fc/pfc -> InstancePlanner.
std::shared_ptr<const BatchPlanner> make_planner(const Config& config, const ImageSource& source,
                                                 int rank, int world);

}  // namespace ffc::data
