// Backbones: structure against insightface's state dicts, parameter counts, initialisation,
// forward shapes and determinism, errors, model info.

#include "model/backbone.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <fstream>
#include <sstream>

#include "common/config.h"
#include "common/error.h"
#include "model/info.h"
#include "model/normalize.h"
#include "model/state_dict.h"

namespace ffc::model {
namespace {

BackboneSpec make_spec(const std::string& name, int64_t embedding = 512, int64_t image = 112) {
  BackboneSpec spec;
  spec.name = name;
  spec.embedding_size = embedding;
  spec.image_size = image;
  return spec;
}

std::string shape_of(const at::Tensor& t) {
  std::string s = "[";
  for (int64_t d = 0; d < t.dim(); ++d) {
    s += (d ? ", " : "") + std::to_string(t.size(d));
  }
  return s + "]";
}

// tests/model/data/<file>: "key<TAB>[shape]" per line, in state-dict order.
std::vector<std::pair<std::string, std::string>> read_listing(const std::string& file) {
  std::ifstream in(std::string(FFC_SOURCE_DIR) + "/tests/model/data/" + file);
  EXPECT_TRUE(in.good()) << file;
  std::vector<std::pair<std::string, std::string>> out;
  std::string line;
  while (std::getline(in, line)) {
    const auto tab = line.find('\t');
    if (line.empty() || tab == std::string::npos) {
      continue;
    }
    out.emplace_back(line.substr(0, tab), line.substr(tab + 1));
  }
  return out;
}

void expect_state_dict_matches(const std::string& network, const std::string& listing_file) {
  at::manual_seed(0);
  const auto net = make_backbone(make_spec(network));
  const NamedTensors sd = state_dict(*net);
  const auto listing = read_listing(listing_file);
  ASSERT_EQ(sd.size(), listing.size()) << network;
  for (size_t i = 0; i < sd.size(); ++i) {
    EXPECT_EQ(sd[i].first, listing[i].first) << network << " entry " << i;
    EXPECT_EQ(shape_of(sd[i].second), listing[i].second) << sd[i].first;
    const bool counter = sd[i].first.size() > 19 &&
                         sd[i].first.substr(sd[i].first.size() - 19) == "num_batches_tracked";
    EXPECT_EQ(sd[i].second.scalar_type(), counter ? at::kLong : at::kFloat) << sd[i].first;
  }
}

TEST(Backbone, StateDictOfR18IsInsightfaces) {
  expect_state_dict_matches("r18", "iresnet18_state_dict.txt");
}

TEST(Backbone, StateDictOfR50IsInsightfaces) {
  expect_state_dict_matches("r50", "iresnet50_state_dict.txt");
}

TEST(Backbone, StateDictOfMbfIsInsightfaces) {
  expect_state_dict_matches("mbf", "mobilefacenet_state_dict.txt");
}

int64_t count(const std::vector<at::Tensor>& tensors, bool trainable_only) {
  int64_t n = 0;
  for (const auto& t : tensors) {
    n += (!trainable_only || t.requires_grad()) ? t.numel() : 0;
  }
  return n;
}

TEST(Backbone, ParameterCountsAreInsightfaces) {
  // insightface's iresnet*/get_mbf at num_features 512 (sum of p.numel() over parameters()).
  const std::vector<std::pair<std::string, int64_t>> expected = {
      {"r18", 24025600},   {"r34", 34139328}, {"r50", 43590848},      {"r100", 65156160},
      {"r200", 118833920}, {"mbf", 2059520},  {"mbf_large", 6314880},
  };
  for (const auto& [name, params] : expected) {
    const auto net = make_backbone(make_spec(name));
    const auto p = net->parameters();
    EXPECT_EQ(count(p, false), params) << name;
    // IResNet's features.weight (512) is frozen; MobileFaceNet has nothing frozen.
    EXPECT_EQ(count(p, true), params - (name.rfind("mbf", 0) == 0 ? 0 : 512)) << name;
  }
}

TEST(Backbone, IResNetImageSizeChangesOnlyFc) {
  const auto at112 = state_dict(*make_backbone(make_spec("r18", 256, 112)));
  const auto at64 = state_dict(*make_backbone(make_spec("r18", 256, 64)));
  ASSERT_EQ(at112.size(), at64.size());
  for (size_t i = 0; i < at112.size(); ++i) {
    if (at112[i].first == "fc.weight") {
      EXPECT_EQ(shape_of(at112[i].second), "[256, 25088]");  // 512 * 7 * 7
      EXPECT_EQ(shape_of(at64[i].second), "[256, 8192]");    // 512 * 4 * 4
    } else {
      EXPECT_EQ(shape_of(at112[i].second), shape_of(at64[i].second)) << at112[i].first;
    }
  }
}

const at::Tensor& find(const NamedTensors& sd, const std::string& name) {
  for (const auto& [key, t] : sd) {
    if (key == name) {
      return t;
    }
  }
  throw std::runtime_error("no tensor " + name);
}

TEST(Backbone, IResNetInitialisationIsInsightfaces) {
  at::manual_seed(1);
  const auto net = make_backbone(make_spec("r18"));
  const NamedTensors sd = state_dict(*net);
  for (const auto& [name, t] : sd) {
    const bool conv = t.dim() == 4;
    if (conv) {  // Normal(0, 0.1)
      EXPECT_NEAR(t.std().item<double>(), 0.1, t.numel() > 10000 ? 0.002 : 0.02) << name;
      EXPECT_NEAR(t.mean().item<double>(), 0.0, 0.01) << name;
    }
  }
  EXPECT_TRUE(find(sd, "layer2.0.bn2.weight").eq(1).all().item<bool>());
  EXPECT_TRUE(find(sd, "layer2.0.bn2.bias").eq(0).all().item<bool>());
  EXPECT_TRUE(find(sd, "layer2.0.bn2.running_mean").eq(0).all().item<bool>());
  EXPECT_TRUE(find(sd, "layer2.0.bn2.running_var").eq(1).all().item<bool>());
  EXPECT_EQ(find(sd, "layer2.0.bn2.num_batches_tracked").item<int64_t>(), 0);
  EXPECT_TRUE(find(sd, "layer3.1.prelu.weight").eq(0.25).all().item<bool>());
  EXPECT_TRUE(find(sd, "features.weight").eq(1).all().item<bool>());
  EXPECT_FALSE(find(sd, "features.weight").requires_grad());
  EXPECT_TRUE(find(sd, "features.bias").eq(0).all().item<bool>());
  // fc: PyTorch's default, U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
  const double bound = 1 / std::sqrt(25088.0);
  const at::Tensor& fc = find(sd, "fc.weight");
  EXPECT_LE(fc.abs().max().item<double>(), bound);
  EXPECT_NEAR(fc.abs().max().item<double>(), bound, bound * 1e-3);
  EXPECT_LE(find(sd, "fc.bias").abs().max().item<double>(), bound);
}

TEST(Backbone, MobileFaceNetInitialisationIsInsightfaces) {
  at::manual_seed(2);
  const NamedTensors sd = state_dict(*make_backbone(make_spec("mbf")));
  // kaiming_normal_(fan_out, relu): std = sqrt(2 / (out_channels * kh * kw)).
  const at::Tensor& w = find(sd, "layers.5.layers.0.layers.0.layers.0.weight");  // [256,256,1,1]
  EXPECT_NEAR(w.std().item<double>(), std::sqrt(2.0 / 256), 0.002);
  const at::Tensor& lin = find(sd, "features.layers.2.weight");  // Linear [512, 512]
  EXPECT_NEAR(lin.std().item<double>(), std::sqrt(2.0 / 512), 0.002);
  EXPECT_TRUE(find(sd, "features.layers.3.weight").eq(1).all().item<bool>());
  EXPECT_TRUE(find(sd, "features.layers.3.weight").requires_grad());
}

TEST(Backbone, OutputShapes) {
  struct Case {
    std::string name;
    int64_t embedding, image;
  };
  for (const Case& c : std::vector<Case>{{"tiny", 512, 32},
                                         {"tiny", 64, 64},
                                         {"small", 128, 64},
                                         {"small", 512, 32},
                                         {"r18", 512, 112},
                                         {"mbf", 256, 112}}) {
    at::manual_seed(3);
    const auto net = make_backbone(make_spec(c.name, c.embedding, c.image));
    const at::Tensor images = at::randn({2, 3, c.image, c.image});
    const at::Tensor train_out = net->forward(images);
    EXPECT_EQ(shape_of(train_out), "[2, " + std::to_string(c.embedding) + "]") << c.name;
    EXPECT_EQ(train_out.scalar_type(), at::kFloat);
    EXPECT_TRUE(train_out.requires_grad());
    net->eval();
    at::NoGradGuard no_grad;
    const at::Tensor eval_out = net->forward(images.slice(0, 0, 1));
    EXPECT_EQ(shape_of(eval_out), "[1, " + std::to_string(c.embedding) + "]") << c.name;
    EXPECT_TRUE(at::isfinite(eval_out).all().item<bool>());
  }
}

TEST(Backbone, EmbeddingsAreNotNormalisedButL2NormaliseMakesThemUnit) {
  at::manual_seed(4);
  const auto net = make_backbone(make_spec("tiny", 128, 32));
  const at::Tensor emb = net->forward(at::randn({4, 3, 32, 32}));
  const at::Tensor norms = emb.norm(2, {1});
  EXPECT_GT((norms - 1).abs().max().item<double>(), 0.1);  // raw BN1d output, as insightface
  const at::Tensor unit = l2_normalize(emb);
  EXPECT_TRUE(at::allclose(unit.norm(2, {1}), at::ones({4}), 1e-5, 1e-6));
}

TEST(Backbone, L2NormaliseOnKnownValues) {
  const at::Tensor x = at::tensor({3.0f, 4.0f, 0.0f, 0.0f, -1.0f, 0.0f}).view({3, 2});
  const at::Tensor y = l2_normalize(x);
  const at::Tensor want = at::tensor({0.6f, 0.8f, 0.0f, 0.0f, -1.0f, 0.0f}).view({3, 2});
  EXPECT_TRUE(at::allclose(y, want, 1e-6, 1e-7));  // the zero row stays zero (eps)
}

TEST(Backbone, ForwardIsDeterministicForASeed) {
  for (const std::string name : {"tiny", "r18"}) {
    const int64_t image = name == "tiny" ? 32 : 112;
    auto run = [&](uint64_t seed) {
      at::manual_seed(seed);
      const auto net = make_backbone(make_spec(name, 512, image));
      const at::Tensor images = at::randn({2, 3, image, image});
      return std::make_pair(state_dict(*net), net->forward(images).detach());
    };
    const auto a = run(11);
    const auto b = run(11);
    const auto c = run(12);
    ASSERT_EQ(a.first.size(), b.first.size());
    for (size_t i = 0; i < a.first.size(); ++i) {
      EXPECT_TRUE(at::equal(a.first[i].second, b.first[i].second)) << a.first[i].first;
    }
    EXPECT_TRUE(at::equal(a.second, b.second)) << name;
    EXPECT_FALSE(at::equal(a.second, c.second)) << name;
  }
}

TEST(Backbone, TrainingForwardUpdatesRunningStatisticsEvalDoesNot) {
  at::manual_seed(5);
  const auto net = make_backbone(make_spec("tiny", 32, 32));
  const NamedTensors sd = state_dict(*net);
  const at::Tensor& mean = find(sd, "layer1.0.bn1.running_mean");
  const at::Tensor& count = find(sd, "layer1.0.bn1.num_batches_tracked");
  net->forward(at::randn({3, 3, 32, 32}));
  EXPECT_EQ(count.item<int64_t>(), 1);
  EXPECT_GT(mean.abs().max().item<double>(), 0.0);
  const at::Tensor before = mean.clone();
  net->eval();
  net->forward(at::randn({3, 3, 32, 32}));
  EXPECT_EQ(count.item<int64_t>(), 1);
  EXPECT_TRUE(at::equal(mean, before));
}

TEST(Backbone, TrainingModeNeedsTwoImages) {
  const auto net = make_backbone(make_spec("tiny", 32, 32));
  try {
    net->forward(at::randn({1, 3, 32, 32}));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("at least 2 images"), std::string::npos) << e.what();
  }
}

TEST(Backbone, WrongInputShapeIsAClearError) {
  const auto net = make_backbone(make_spec("tiny", 32, 32));
  try {
    net->forward(at::randn({2, 3, 64, 64}));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("[B, 3, 32, 32]"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[2, 3, 64, 64]"), std::string::npos) << msg;
  }
}

TEST(Backbone, Fp16IsIgnoredOnTheCpu) {
  BackboneSpec spec = make_spec("tiny", 64, 32);
  at::manual_seed(6);
  const auto plain = make_backbone(spec);
  spec.fp16 = true;
  at::manual_seed(6);
  const auto mixed = make_backbone(spec);
  const at::Tensor images = at::randn({2, 3, 32, 32});
  const at::Tensor a = plain->forward(images);
  const at::Tensor b = mixed->forward(images);
  EXPECT_EQ(b.scalar_type(), at::kFloat);
  EXPECT_TRUE(at::equal(a, b));
}

TEST(Backbone, DropoutBeforeFcInTrainingOnly) {
  BackboneSpec spec = make_spec("tiny", 64, 32);
  spec.dropout = 0.5;
  at::manual_seed(7);
  const auto net = make_backbone(spec);
  const at::Tensor images = at::randn({4, 3, 32, 32});
  at::manual_seed(8);
  const at::Tensor a = net->forward(images);
  at::manual_seed(9);
  const at::Tensor b = net->forward(images);
  EXPECT_FALSE(at::allclose(a, b));  // different dropout masks
  net->eval();
  EXPECT_TRUE(at::equal(net->forward(images), net->forward(images)));
}

TEST(Backbone, UnknownNetworkListsTheKnownOnes) {
  try {
    make_backbone(make_spec("r51"));
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    const std::string msg = e.what();
    for (const char* word : {"'r51'", "r18", "r50", "r200", "mbf", "tiny", "small"}) {
      EXPECT_NE(msg.find(word), std::string::npos) << msg;
    }
  }
  const auto names = backbone_names();
  EXPECT_EQ(names.front(), "r18");
  EXPECT_EQ(names.size(), 9u);
}

TEST(Backbone, BadSpecsAreConfigErrors) {
  EXPECT_THROW(make_backbone(make_spec("r18", 512, 100)), ConfigError);  // not a multiple of 16
  EXPECT_THROW(make_backbone(make_spec("mbf", 512, 64)), ConfigError);   // GDC needs 7x7
  EXPECT_THROW(make_backbone(make_spec("tiny", 0, 32)), ConfigError);
  BackboneSpec spec = make_spec("mbf");
  spec.dropout = 0.2;
  EXPECT_THROW(make_backbone(spec), ConfigError);
  spec = make_spec("r18");
  spec.amp_dtype = "float8";
  EXPECT_THROW(make_backbone(spec), ConfigError);
}

TEST(Backbone, SpecFromConfig) {
  Config config;
  config.network = "small";
  config.embedding_size = 128;
  config.image_size = 64;
  config.fp16 = true;
  config.amp_dtype = "bfloat16";
  const BackboneSpec spec = spec_from_config(config);
  EXPECT_EQ(spec.name, "small");
  EXPECT_EQ(spec.embedding_size, 128);
  EXPECT_EQ(spec.image_size, 64);
  EXPECT_TRUE(spec.fp16);
  EXPECT_EQ(spec.amp_dtype, "bfloat16");
  EXPECT_EQ(spec.dropout, 0.0);
  config.network = "resnet50";
  EXPECT_THROW(spec_from_config(config), ConfigError);
}

// FLOPs of an IResNet by hand: 2 per multiply-add of every conv and of fc.
int64_t iresnet_flops(int64_t image, int64_t stem, std::array<int64_t, 4> widths,
                      std::array<int64_t, 4> blocks, int64_t embedding) {
  int64_t side = image;
  int64_t flops = 2 * 3 * 9 * stem * side * side;
  int64_t in = stem;
  for (size_t s = 0; s < 4; ++s) {
    const int64_t c = widths[s];
    const int64_t out_side = side / 2;
    flops += 2 * 9 * in * c * side * side;         // block 0 conv1 (stride 1)
    flops += 2 * 9 * c * c * out_side * out_side;  // block 0 conv2 (stride 2)
    flops += 2 * in * c * out_side * out_side;     // downsample 1x1
    flops += (blocks[s] - 1) * 2 * (2 * 9 * c * c * out_side * out_side);
    in = c;
    side = out_side;
  }
  return flops + 2 * widths[3] * side * side * embedding;  // fc
}

TEST(Backbone, ModelInfoCountsFlopsParametersAndMemory) {
  at::manual_seed(21);
  const at::Tensor before = at::rand({4});
  at::manual_seed(21);
  const ModelInfo tiny = model_info(make_spec("tiny", 512, 32));
  EXPECT_TRUE(at::equal(at::rand({4}), before)) << "model_info changed the random sequence";
  EXPECT_EQ(tiny.flops_per_image, iresnet_flops(32, 16, {16, 32, 64, 128}, {1, 1, 1, 1}, 512));
  const auto net = make_backbone(make_spec("tiny", 512, 32));
  EXPECT_EQ(tiny.parameters, count(net->parameters(), false));
  EXPECT_EQ(tiny.trainable_parameters, tiny.parameters - 512);
  EXPECT_EQ(tiny.state_dict_entries, static_cast<int64_t>(state_dict(*net).size()));
  // At least the stem's conv, BN and PReLU outputs (16 x 32 x 32 float32 each) are kept.
  EXPECT_GT(tiny.activation_bytes_per_image, 3 * 16 * 32 * 32 * 4);
  EXPECT_LT(tiny.activation_bytes_per_image, 64 << 20);

  const ModelInfo small = model_info(make_spec("small", 512, 64));
  EXPECT_EQ(small.flops_per_image, iresnet_flops(64, 32, {32, 64, 128, 256}, {1, 2, 2, 1}, 512));
  EXPECT_GT(small.activation_bytes_per_image, tiny.activation_bytes_per_image);
}

}  // namespace
}  // namespace ffc::model
