#pragma once
// Procedural long-tailed identities: N classes (up to 10^8 and beyond) whose images are rendered
// on the fly, deterministically from (seed, class, image index). No files, and O(max_images)
// memory whatever N is (docs/data.md).
//
// Counts. Class ranks r = 0..N-1 get counts from a truncated power law with exponent `power`:
// the fraction of classes with at least k images falls as k^-power between min_images and
// max_images; rank r gets the quantile at (r + 0.5) / N, so counts fall with r and each count
// value owns one contiguous run of ranks. Runs and their image offsets are tabulated once (one
// entry per count value), so image -> (class, j) and (class, j) -> image are O(log max_images).
// Labels are the ranks through a keyed permutation, so label order says nothing about counts.
//
// Pixels. A class is a latent vector z (latent_dim normals from the seed and the label); an image
// is z plus per-image jitter, rendered through a fixed random basis of smooth separable patterns
// (shared by all classes), then shifted, scaled, lit, contrasted, noised and partly occluded by
// per-image nuisances. `difficulty` in [0, 1] scales jitter and nuisances. Classes >= N (held
// out, never trained on) and images j >= class_size (unseen images of trained classes) render
// the same way; evaluation draws its pairs from them.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/random.h"
#include "data/image_source.h"
#include "data/jpeg.h"

namespace ffc::data {

struct SyntheticSpec {
  int64_t num_classes = 10000;
  int64_t min_images = 1;
  int64_t max_images = 100;
  double power = 1.5;
  double difficulty = 0.5;
  int image_size = 32;
  int latent_dim = 16;
  uint64_t seed = 2048;
  ColorOrder color_order = ColorOrder::kRgb;
};

// Throws ConfigError for an impossible spec (names the field and the allowed range).
void validate(const SyntheticSpec& spec);

// The latent vector of class `label` (latent_dim values; any label, held-out ones included): what
// its images share. Close latents make similar-looking identities (hard impostors).
std::vector<double> synthetic_latent(const SyntheticSpec& spec, int64_t label);

class SyntheticSource final : public ImageSource {
 public:
  explicit SyntheticSource(const SyntheticSpec& spec);

  std::string describe() const override;
  int64_t num_images() const override { return num_images_; }
  int64_t num_classes() const override { return spec_.num_classes; }
  int image_size() const override { return spec_.image_size; }
  int64_t class_size(int64_t label) const override;
  int64_t class_image(int64_t label, int64_t j) const override;
  std::unique_ptr<ImageReader> make_reader() const override;
  void for_each_class_size(const std::function<void(int64_t, int64_t)>& fn) const override;

  // Class and index within the class of global image `image`.
  void locate(int64_t image, int64_t& label, int64_t& j) const;
  // Renders image j of class `label` (any label < num_classes + held-out range, any j >= 0).
  void render(int64_t label, int64_t j, uint8_t* out, std::vector<float>& scratch) const;
  const SyntheticSpec& spec() const { return spec_; }
  // Bytes of tables this source keeps (independent of num_classes).
  int64_t table_bytes() const;

 private:
  struct Run {
    int64_t count;        // images per class in this run
    int64_t first_rank;   // ranks [first_rank, next run's first_rank)
    int64_t first_image;  // global index of the first image of the run
  };
  int64_t count_of_rank(int64_t rank) const;
  const Run& run_of_rank(int64_t rank) const;

  SyntheticSpec spec_;
  KeyedPermutation labels_;  // rank -> label
  std::vector<Run> runs_;    // by first_rank ascending (count descending)
  int64_t num_images_ = 0;
  // The fixed basis, shared by all classes: frequencies, phases, centres, widths per latent
  // dimension and axis, and a 3 x latent_dim colour mixing matrix.
  std::vector<float> basis_;
  std::vector<float> colour_mix_;
};

}  // namespace ffc::data
