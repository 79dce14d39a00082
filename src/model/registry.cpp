// The registry of backbones by insightface name, copies, and FFC's gallery EMA.

#include <ATen/ATen.h>

#include "common/config.h"
#include "common/error.h"
#include "model/backbone.h"
#include "model/layers.h"
#include "model/nets.h"
#include "model/state_dict.h"

namespace ffc::model {
namespace {

enum class Family { kIResNet, kMobileFaceNet };

struct Entry {
  const char* name;
  Family family;
  detail::IResNetShape iresnet;
  detail::MobileFaceNetShape mobilefacenet;
  int64_t natural_image_size;
  const char* description;
};

const std::vector<Entry>& registry() {
  using detail::IResNetShape;
  using detail::MobileFaceNetShape;
  static const std::vector<Entry> entries = {
      {"r18",
       Family::kIResNet,
       IResNetShape{64, {64, 128, 256, 512}, {2, 2, 2, 2}},
       {},
       112,
       "IResNet-18 (insightface iresnet18): blocks 2-2-2-2, widths 64-128-256-512"},
      {"r34",
       Family::kIResNet,
       IResNetShape{64, {64, 128, 256, 512}, {3, 4, 6, 3}},
       {},
       112,
       "IResNet-34 (insightface iresnet34): blocks 3-4-6-3, widths 64-128-256-512"},
      {"r50",
       Family::kIResNet,
       IResNetShape{64, {64, 128, 256, 512}, {3, 4, 14, 3}},
       {},
       112,
       "IResNet-50 (insightface iresnet50): blocks 3-4-14-3, widths 64-128-256-512"},
      {"r100",
       Family::kIResNet,
       IResNetShape{64, {64, 128, 256, 512}, {3, 13, 30, 3}},
       {},
       112,
       "IResNet-100 (insightface iresnet100): blocks 3-13-30-3, widths 64-128-256-512"},
      {"r200",
       Family::kIResNet,
       IResNetShape{64, {64, 128, 256, 512}, {6, 26, 60, 6}},
       {},
       112,
       "IResNet-200 (insightface iresnet200): blocks 6-26-60-6, widths 64-128-256-512"},
      {"mbf",
       Family::kMobileFaceNet,
       {},
       MobileFaceNetShape{2, {1, 4, 6, 2}},
       112,
       "MobileFaceNet (insightface mbf): scale 2, blocks 1-4-6-2, GDC head; image 112 only"},
      {"mbf_large",
       Family::kMobileFaceNet,
       {},
       MobileFaceNetShape{4, {2, 8, 12, 4}},
       112,
       "MobileFaceNet large (insightface mbf_large): scale 4, blocks 2-8-12-4; image 112 only"},
      {"tiny",
       Family::kIResNet,
       IResNetShape{16, {16, 32, 64, 128}, {1, 1, 1, 1}},
       {},
       32,
       "ffc CPU net: IResNet structure, blocks 1-1-1-1, widths 16-32-64-128 (for 32x32 images)"},
      {"small",
       Family::kIResNet,
       IResNetShape{32, {32, 64, 128, 256}, {1, 2, 2, 1}},
       {},
       64,
       "ffc CPU net: IResNet structure, blocks 1-2-2-1, widths 32-64-128-256 (for 64x64 images)"},
  };
  return entries;
}

std::string known_names() {
  std::string s;
  for (const auto& e : registry()) {
    s += (s.empty() ? "" : ", ") + std::string(e.name);
  }
  return s;
}

const Entry& find_entry(const std::string& name) {
  for (const auto& e : registry()) {
    if (name == e.name) {
      return e;
    }
  }
  throw ConfigError("unknown network '" + name + "'; known networks: " + known_names());
}

// A new instance of the same network, without drawing from the random generator.
std::shared_ptr<Backbone> same_network(const Backbone& source) {
  detail::PreserveCpuRng keep;
  return make_backbone(source.spec());
}

void check_same_structure(const NamedTensors& a, const NamedTensors& b, const char* what) {
  FFC_CHECK(a.size() == b.size(), std::string(what) + ": the two nets differ in their tensors");
  for (size_t i = 0; i < a.size(); ++i) {
    FFC_CHECK(
        a[i].first == b[i].first && a[i].second.sizes() == b[i].second.sizes(),
        std::string(what) + ": tensor '" + a[i].first + "' does not match '" + b[i].first + "'");
  }
}

}  // namespace

std::vector<std::string> backbone_names() {
  std::vector<std::string> names;
  for (const auto& e : registry()) {
    names.emplace_back(e.name);
  }
  return names;
}

std::string backbone_description(const std::string& name) {
  return find_entry(name).description;
}

int64_t natural_image_size(const std::string& name) {
  return find_entry(name).natural_image_size;
}

void check_spec(const BackboneSpec& spec) {
  const Entry& e = find_entry(spec.name);
  if (spec.embedding_size < 1) {
    throw ConfigError("embedding_size must be at least 1, got " +
                      std::to_string(spec.embedding_size));
  }
  if (e.family == Family::kIResNet && (spec.image_size < 16 || spec.image_size % 16 != 0)) {
    throw ConfigError("network " + spec.name +
                      " needs image_size divisible by 16 (its four stride-2 stages end at "
                      "image_size/16 and fc takes width*(image_size/16)^2 inputs); got " +
                      std::to_string(spec.image_size));
  }
  if (e.family == Family::kMobileFaceNet && spec.image_size != 112) {
    throw ConfigError("network " + spec.name +
                      " needs image_size 112 (its GDC head is a 7x7 depthwise convolution over "
                      "the 7x7 map of a 112x112 image); got " +
                      std::to_string(spec.image_size));
  }
  if (!(spec.dropout >= 0 && spec.dropout < 1)) {
    throw ConfigError("dropout must be in [0, 1), got " + std::to_string(spec.dropout));
  }
  if (spec.dropout > 0 && e.family != Family::kIResNet) {
    throw ConfigError("network " + spec.name + " has no dropout (insightface ignores it too)");
  }
  if (spec.amp_dtype != "auto" && spec.amp_dtype != "float32" && spec.amp_dtype != "float16" &&
      spec.amp_dtype != "bfloat16") {
    throw ConfigError("amp_dtype must be auto, float32, bfloat16 or float16, got '" +
                      spec.amp_dtype + "'");
  }
}

BackboneSpec spec_from_config(const Config& config) {
  BackboneSpec spec;
  spec.name = config.network;
  spec.embedding_size = config.embedding_size;
  spec.image_size = config.image_size;
  spec.fp16 = config.fp16;
  spec.amp_dtype = config.amp_dtype;
  try {
    check_spec(spec);
  } catch (const ConfigError& e) {
    throw ConfigError(std::string("configuration (keys network, embedding_size, image_size, "
                                  "amp_dtype): ") +
                      e.what());
  }
  return spec;
}

std::shared_ptr<Backbone> make_backbone(const BackboneSpec& spec) {
  check_spec(spec);
  const Entry& e = find_entry(spec.name);
  if (e.family == Family::kIResNet) {
    return detail::make_iresnet(spec, e.iresnet);
  }
  return detail::make_mobilefacenet(spec, e.mobilefacenet);
}

std::shared_ptr<Backbone> clone_backbone(const Backbone& source) {
  std::shared_ptr<Backbone> copy = same_network(source);
  const NamedTensors from = state_dict(source);
  const NamedTensors to = state_dict(*copy);
  check_same_structure(from, to, "clone_backbone");
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < from.size(); ++i) {
    const at::Tensor& src = from[i].second;
    at::Tensor dst = to[i].second;
    // set_data keeps the parameter object (and its registration) and takes the clone's storage,
    // device and type, as Module::to() does.
    dst.set_data(src.detach().clone());
    if (dst.is_leaf()) {
      dst.set_requires_grad(src.requires_grad());
    }
  }
  copy->train(source.is_training());
  return copy;
}

std::shared_ptr<Backbone> make_gallery(const Backbone& probe) {
  std::shared_ptr<Backbone> gallery = same_network(probe);
  const NamedTensors from = state_dict(probe);
  const NamedTensors to = state_dict(*gallery);
  check_same_structure(from, to, "make_gallery");
  const NamedTensors params = named_parameters(*gallery);
  at::NoGradGuard no_grad;
  size_t p = 0;
  for (size_t i = 0; i < from.size(); ++i) {
    const at::Tensor& src = from[i].second;
    at::Tensor dst = to[i].second;
    const bool is_parameter = p < params.size() && params[p].first == to[i].first;
    if (is_parameter) {
      ++p;
      dst.set_data(src.detach().clone());
      dst.set_requires_grad(false);
    } else {
      // A buffer: keeps its initial value, on the probe's device and type.
      dst.set_data(dst.to(src.options()));
    }
  }
  gallery->train(probe.is_training());
  return gallery;
}

void ema_update(Backbone& gallery, const Backbone& probe, double alpha) {
  FFC_CHECK(alpha >= 0 && alpha <= 1, "ema_update: alpha must be in [0, 1]");
  const std::vector<at::Tensor> g = gallery.parameters();
  const std::vector<at::Tensor> p = probe.parameters();
  FFC_CHECK(g.size() == p.size() && gallery.spec().name == probe.spec().name,
            "ema_update: the gallery and probe nets are not the same network");
  at::NoGradGuard no_grad;
  const double weight = 1.0 - alpha;
  for (size_t i = 0; i < g.size(); ++i) {
    FFC_CHECK(g[i].sizes() == p[i].sizes(), "ema_update: parameter shapes differ");
    // g + (1 - alpha) * (p - g) = alpha * g + (1 - alpha) * p, in place; exact where g == p.
    g[i].lerp_(p[i], weight);
  }
}

}  // namespace ffc::model
