#include "data/synthetic.h"

#include <algorithm>
#include <cmath>

#include "common/error.h"

namespace ffc::data {
namespace {

constexpr double kTwoPi = 6.283185307179586;
// Stream tags of the hash, so that different uses of (seed, label, j) never collide.
enum Stream : uint64_t { kLabels = 1, kBasis, kLatent, kJitter, kNuisance, kNoise };

// tanh through a [3/2] Pade approximant, exact at 0 and saturating at |x| = 3 (error < 2%):
// deterministic and several times cheaper than std::tanh.
float fast_tanh(float x) {
  if (x >= 3.0f) {
    return 1.0f;
  }
  if (x <= -3.0f) {
    return -1.0f;
  }
  const float x2 = x * x;
  return x * (27.0f + x2) / (27.0f + 9.0f * x2);
}

class SyntheticReader final : public ImageReader {
 public:
  explicit SyntheticReader(const SyntheticSource& source) : source_(source) {}
  int64_t read(int64_t image, uint8_t* out) override {
    int64_t label = 0;
    int64_t j = 0;
    source_.locate(image, label, j);
    source_.render(label, j, out, scratch_);
    return label;
  }

 private:
  const SyntheticSource& source_;
  std::vector<float> scratch_;
};

}  // namespace

void validate(const SyntheticSpec& s) {
  auto fail = [](const std::string& what) { throw ConfigError("synthetic data: " + what); };
  if (s.num_classes < 1) {
    fail("num_classes must be >= 1");
  }
  if (s.min_images < 1 || s.max_images < s.min_images || s.max_images > 1000000) {
    fail("need 1 <= synthetic_min_images <= synthetic_max_images <= 1000000, got " +
         std::to_string(s.min_images) + " and " + std::to_string(s.max_images));
  }
  if (!(s.power > 0.0 && s.power <= 10.0)) {
    fail("synthetic_power must be in (0, 10]");
  }
  if (!(s.difficulty >= 0.0 && s.difficulty <= 1.0)) {
    fail("synthetic_difficulty must be in [0, 1]");
  }
  if (s.image_size < 8 || s.image_size > 1024) {
    fail("image_size must be in [8, 1024]");
  }
  if (s.latent_dim < 1 || s.latent_dim > 256) {
    fail("latent_dim must be in [1, 256]");
  }
}

SyntheticSource::SyntheticSource(const SyntheticSpec& spec)
    : spec_(spec),
      labels_(static_cast<uint64_t>(std::max<int64_t>(spec.num_classes, 1)),
              mix({spec.seed, kLabels})) {
  validate(spec_);
  // Runs of equal counts: counts fall with rank, so each run ends where the count first drops.
  const int64_t n = spec_.num_classes;
  int64_t rank = 0;
  int64_t image = 0;
  while (rank < n) {
    const int64_t c = count_of_rank(rank);
    int64_t lo = rank + 1;
    int64_t hi = n;  // first rank with a smaller count lies in [lo, hi]
    while (lo < hi) {
      const int64_t mid = lo + (hi - lo) / 2;
      if (count_of_rank(mid) < c) {
        hi = mid;
      } else {
        lo = mid + 1;
      }
    }
    runs_.push_back({c, rank, image});
    image += c * (lo - rank);
    rank = lo;
  }
  num_images_ = image;

  const int dims = spec_.latent_dim;
  basis_.resize(static_cast<size_t>(dims) * 2 * 4);
  Rng rng(mix({spec_.seed, kBasis}));
  for (int l = 0; l < dims; ++l) {
    for (int axis = 0; axis < 2; ++axis) {
      float* b = &basis_[(l * 2 + axis) * 4];
      b[0] = static_cast<float>(0.5 + 2.5 * rng.uniform());    // cycles per image
      b[1] = static_cast<float>(kTwoPi * rng.uniform());       // phase
      b[2] = static_cast<float>(0.2 + 0.6 * rng.uniform());    // envelope centre
      b[3] = static_cast<float>(0.15 + 0.35 * rng.uniform());  // envelope width
    }
  }
  colour_mix_.resize(static_cast<size_t>(3) * dims);
  for (auto& m : colour_mix_) {
    m = static_cast<float>(rng.normal() / std::sqrt(static_cast<double>(dims)) * 2.0);
  }
}

std::string SyntheticSource::describe() const {
  return "synthetic: " + std::to_string(num_images_) + " images, " +
         std::to_string(spec_.num_classes) + " classes (" + std::to_string(spec_.min_images) + "-" +
         std::to_string(spec_.max_images) + " images per class, power " +
         std::to_string(spec_.power).substr(0, 4) + "), " + std::to_string(spec_.image_size) + "x" +
         std::to_string(spec_.image_size) + ", difficulty " +
         std::to_string(spec_.difficulty).substr(0, 4);
}

int64_t SyntheticSource::count_of_rank(int64_t rank) const {
  const double m = static_cast<double>(spec_.min_images);
  const double big_m = static_cast<double>(spec_.max_images);
  if (spec_.min_images == spec_.max_images) {
    return spec_.min_images;
  }
  const double a = spec_.power;
  const double u = (static_cast<double>(rank) + 0.5) / static_cast<double>(spec_.num_classes);
  const double lo = std::pow(big_m, -a);
  const double x = std::pow(u * (std::pow(m, -a) - lo) + lo, -1.0 / a);
  return std::clamp<int64_t>(static_cast<int64_t>(std::floor(x)), spec_.min_images,
                             spec_.max_images);
}

const SyntheticSource::Run& SyntheticSource::run_of_rank(int64_t rank) const {
  auto it = std::upper_bound(runs_.begin(), runs_.end(), rank,
                             [](int64_t r, const Run& run) { return r < run.first_rank; });
  return *(it - 1);
}

int64_t SyntheticSource::class_size(int64_t label) const {
  FFC_CHECK(
      label >= 0 && label < spec_.num_classes,
      "class " + std::to_string(label) + " outside [0, " + std::to_string(spec_.num_classes) + ")");
  return run_of_rank(static_cast<int64_t>(labels_.inverse(static_cast<uint64_t>(label)))).count;
}

int64_t SyntheticSource::class_image(int64_t label, int64_t j) const {
  FFC_CHECK(
      label >= 0 && label < spec_.num_classes,
      "class " + std::to_string(label) + " outside [0, " + std::to_string(spec_.num_classes) + ")");
  const auto rank = static_cast<int64_t>(labels_.inverse(static_cast<uint64_t>(label)));
  const Run& run = run_of_rank(rank);
  FFC_CHECK(j >= 0 && j < run.count, "image " + std::to_string(j) + " of class " +
                                         std::to_string(label) + " which has " +
                                         std::to_string(run.count));
  return run.first_image + (rank - run.first_rank) * run.count + j;
}

void SyntheticSource::locate(int64_t image, int64_t& label, int64_t& j) const {
  FFC_CHECK(image >= 0 && image < num_images_,
            "image " + std::to_string(image) + " outside [0, " + std::to_string(num_images_) + ")");
  auto it = std::upper_bound(runs_.begin(), runs_.end(), image,
                             [](int64_t g, const Run& run) { return g < run.first_image; });
  const Run& run = *(it - 1);
  const int64_t k = image - run.first_image;
  const int64_t rank = run.first_rank + k / run.count;
  j = k % run.count;
  label = static_cast<int64_t>(labels_.forward(static_cast<uint64_t>(rank)));
}

int64_t SyntheticSource::table_bytes() const {
  return static_cast<int64_t>(runs_.size() * sizeof(Run) +
                              (basis_.size() + colour_mix_.size()) * sizeof(float));
}

void SyntheticSource::for_each_class_size(const std::function<void(int64_t, int64_t)>& fn) const {
  for (size_t i = 0; i < runs_.size(); ++i) {
    const int64_t end = i + 1 < runs_.size() ? runs_[i + 1].first_rank : spec_.num_classes;
    fn(runs_[i].count, end - runs_[i].first_rank);
  }
}

std::vector<double> synthetic_latent(const SyntheticSpec& spec, int64_t label) {
  std::vector<double> z(static_cast<size_t>(spec.latent_dim));
  const auto ulabel = static_cast<uint64_t>(label);
  for (int l = 0; l < spec.latent_dim; ++l) {
    const auto ul = static_cast<uint64_t>(l);
    z[static_cast<size_t>(l)] = normal01(mix({spec.seed, kLatent, ulabel, ul, 0}),
                                         mix({spec.seed, kLatent, ulabel, ul, 1}));
  }
  return z;
}

std::unique_ptr<ImageReader> SyntheticSource::make_reader() const {
  return std::make_unique<SyntheticReader>(*this);
}

void SyntheticSource::render(int64_t label, int64_t j, uint8_t* out,
                             std::vector<float>& scratch) const {
  const int size = spec_.image_size;
  const int dims = spec_.latent_dim;
  const float d = static_cast<float>(spec_.difficulty);
  const auto ulabel = static_cast<uint64_t>(label);
  const auto uj = static_cast<uint64_t>(j);

  scratch.resize(static_cast<size_t>(dims) * size * 2 + 3 * static_cast<size_t>(dims) +
                 3 * static_cast<size_t>(size));
  float* ux = scratch.data();                           // [dims][size]
  float* vy = ux + static_cast<size_t>(dims) * size;    // [dims][size]
  float* coef = vy + static_cast<size_t>(dims) * size;  // [3][dims]
  float* acc = coef + 3 * static_cast<size_t>(dims);    // [3][size], one image row

  // Per-image nuisances.
  Rng nuisance(mix({spec_.seed, kNuisance, ulabel, uj}));
  const float dx = static_cast<float>((nuisance.uniform() * 2 - 1) * 0.08 * d * size);
  const float dy = static_cast<float>((nuisance.uniform() * 2 - 1) * 0.08 * d * size);
  const float scale = static_cast<float>(1.0 + (nuisance.uniform() * 2 - 1) * 0.12 * d);
  const float brightness = static_cast<float>((nuisance.uniform() * 2 - 1) * 30.0 * d);
  const float contrast = static_cast<float>(1.0 + (nuisance.uniform() * 2 - 1) * 0.3 * d);
  const float noise = 10.0f * d;
  const bool occlude = nuisance.uniform() < 0.4 * d;
  const int occ_w = static_cast<int>((0.2 + 0.2 * nuisance.uniform()) * size);
  const int occ_h = static_cast<int>((0.2 + 0.2 * nuisance.uniform()) * size);
  const int occ_x = static_cast<int>(nuisance.uniform() * (size - occ_w));
  const int occ_y = static_cast<int>(nuisance.uniform() * (size - occ_h));
  const auto occ_value = static_cast<float>(nuisance.uniform() * 255.0);

  // Class latent plus per-image jitter, mixed into the three channels.
  for (int l = 0; l < dims; ++l) {
    const auto ul = static_cast<uint64_t>(l);
    const double z = normal01(mix({spec_.seed, kLatent, ulabel, ul, 0}),
                              mix({spec_.seed, kLatent, ulabel, ul, 1})) +
                     0.35 * d *
                         normal01(mix({spec_.seed, kJitter, ulabel, uj, ul, 0}),
                                  mix({spec_.seed, kJitter, ulabel, uj, ul, 1}));
    for (int c = 0; c < 3; ++c) {
      coef[c * dims + l] = static_cast<float>(z) * colour_mix_[c * dims + l];
    }
  }

  // The separable basis sampled at the shifted and scaled pixel centres.
  const float half = 0.5f * size;
  for (int l = 0; l < dims; ++l) {
    for (int axis = 0; axis < 2; ++axis) {
      const float* b = &basis_[(l * 2 + axis) * 4];
      float* dst = (axis == 0 ? ux : vy) + static_cast<size_t>(l) * size;
      const float shift = axis == 0 ? dx : dy;
      for (int p = 0; p < size; ++p) {
        const float t = ((p + 0.5f - half - shift) / scale + half) / size;
        const float e = (t - b[2]) / b[3];
        dst[p] = std::cos(static_cast<float>(kTwoPi) * b[0] * t + b[1]) * std::exp(-0.5f * e * e);
      }
    }
  }

  Rng pixel_noise(mix({spec_.seed, kNoise, ulabel, uj}));
  const bool bgr = spec_.color_order == ColorOrder::kBgr;
  for (int y = 0; y < size; ++y) {
    // acc[c][x] = sum_l coef[c][l] * vy[l][y] * ux[l][x]: x innermost, so it vectorises.
    for (int c = 0; c < 3; ++c) {
      float* a = acc + static_cast<size_t>(c) * size;
      std::fill(a, a + size, 0.0f);
      for (int l = 0; l < dims; ++l) {
        const float w = coef[c * dims + l] * vy[static_cast<size_t>(l) * size + y];
        const float* u = ux + static_cast<size_t>(l) * size;
        for (int x = 0; x < size; ++x) {
          a[x] += w * u[x];
        }
      }
    }
    const bool row_occluded = occlude && y >= occ_y && y < occ_y + occ_h;
    for (int x = 0; x < size; ++x) {
      uint8_t* px = out + (static_cast<size_t>(y) * size + x) * 3;
      const bool occluded = row_occluded && x >= occ_x && x < occ_x + occ_w;
      // One hash gives the noise of the pixel's three channels (three 21-bit uniforms each
      // folded into a triangular variate).
      const uint64_t h = noise > 0.0f ? pixel_noise.next() : 0;
      for (int c = 0; c < 3; ++c) {
        float v;
        if (occluded) {
          v = occ_value;
        } else {
          v = 128.0f + 90.0f * fast_tanh(acc[static_cast<size_t>(c) * size + x]);
          v = (v - 128.0f) * contrast + 128.0f + brightness;
        }
        if (noise > 0.0f) {
          const auto bits = static_cast<uint32_t>((h >> (21 * c)) & 0x1fffff);
          // Sum of two uniforms from the halves of 21 bits, centred: triangular on (-1, 1),
          // variance 1/6; scaled to unit variance.
          const float u1 = static_cast<float>(bits & 0x3ff) * (1.0f / 1024.0f);
          const float u2 = static_cast<float>(bits >> 10) * (1.0f / 2048.0f);
          v += noise * (u1 + u2 - 1.0f) * 2.449489743f;
        }
        px[bgr ? 2 - c : c] = static_cast<uint8_t>(std::clamp(std::lround(v), 0L, 255L));
      }
    }
  }
}

}  // namespace ffc::data
