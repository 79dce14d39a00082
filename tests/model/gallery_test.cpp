// Copies of a backbone and FFC's gallery net: independence, the buffer policy, the EMA.

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

#include "common/error.h"
#include "model/backbone.h"
#include "model/state_dict.h"

namespace ffc::model {
namespace {

std::shared_ptr<Backbone> tiny(uint64_t seed, int64_t embedding = 32) {
  BackboneSpec spec;
  spec.name = "tiny";
  spec.embedding_size = embedding;
  spec.image_size = 32;
  at::manual_seed(seed);
  return make_backbone(spec);
}

bool is_buffer(const std::string& name) {
  for (const char* suffix : {"running_mean", "running_var", "num_batches_tracked"}) {
    const std::string s(suffix);
    if (name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0) {
      return true;
    }
  }
  return false;
}

TEST(Clone, IsAnIndependentDeepCopy) {
  const auto source = tiny(1);
  source->forward(at::randn({2, 3, 32, 32}));  // running statistics away from their init
  source->eval();
  const auto copy = clone_backbone(*source);
  EXPECT_FALSE(copy->is_training());
  const NamedTensors a = state_dict(*source);
  const NamedTensors b = state_dict(*copy);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].first, b[i].first);
    EXPECT_TRUE(at::equal(a[i].second, b[i].second)) << a[i].first;
    EXPECT_NE(a[i].second.data_ptr(), b[i].second.data_ptr()) << a[i].first;
    EXPECT_EQ(a[i].second.requires_grad(), b[i].second.requires_grad()) << a[i].first;
  }
  // Changing the copy leaves the original alone, and the other way round.
  const at::Tensor original = a[0].second.clone();
  {
    at::NoGradGuard no_grad;
    b[0].second.add_(1);
  }
  EXPECT_TRUE(at::equal(a[0].second, original));
  {
    at::NoGradGuard no_grad;
    a[1].second.mul_(3);
  }
  EXPECT_FALSE(at::equal(a[1].second, b[1].second));
  const at::Tensor images = at::randn({2, 3, 32, 32});
  EXPECT_FALSE(at::equal(source->forward(images), copy->forward(images)));
}

TEST(Clone, DoesNotDrawFromTheRandomGenerator) {
  const auto source = tiny(2);
  at::manual_seed(77);
  const at::Tensor expected = at::rand({8});
  at::manual_seed(77);
  const auto copy = clone_backbone(*source);
  const auto gallery = make_gallery(*source);
  EXPECT_TRUE(at::equal(at::rand({8}), expected));
}

TEST(Gallery, CopiesParametersFrozenButNotBuffers) {
  const auto probe = tiny(3);
  probe->forward(at::randn({4, 3, 32, 32}));  // probe's buffers move away from their init
  const auto gallery = make_gallery(*probe);
  EXPECT_TRUE(gallery->is_training());
  const NamedTensors p = state_dict(*probe);
  const NamedTensors g = state_dict(*gallery);
  ASSERT_EQ(p.size(), g.size());
  int buffers = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    const std::string& name = p[i].first;
    if (is_buffer(name)) {
      ++buffers;
      if (name.find("running_mean") != std::string::npos) {
        EXPECT_TRUE(g[i].second.eq(0).all().item<bool>()) << name;
        EXPECT_FALSE(at::equal(p[i].second, g[i].second)) << name;
      } else if (name.find("running_var") != std::string::npos) {
        EXPECT_TRUE(g[i].second.eq(1).all().item<bool>()) << name;
      } else {
        EXPECT_EQ(g[i].second.item<int64_t>(), 0) << name;
        EXPECT_EQ(p[i].second.item<int64_t>(), 1) << name;
      }
    } else {
      EXPECT_TRUE(at::equal(p[i].second, g[i].second)) << name;
      EXPECT_NE(p[i].second.data_ptr(), g[i].second.data_ptr()) << name;
      EXPECT_FALSE(g[i].second.requires_grad()) << name;
    }
  }
  EXPECT_EQ(buffers, 3 * 19);  // tiny: stem, 4 blocks x (3 + downsample), bn2, features
  // In training mode BatchNorm uses the batch's statistics, so the gallery's buffers do not enter
  // its output: same parameters, same batch -> same embeddings.
  const at::Tensor images = at::randn({4, 3, 32, 32});
  EXPECT_TRUE(at::allclose(probe->forward(images), gallery->forward(images), 1e-5, 1e-6));
}

// Sets every parameter of `net` to `value` (0 for buffers stays as is).
void fill_parameters(Backbone& net, double value) {
  at::NoGradGuard no_grad;
  for (auto& t : net.parameters()) {
    t.fill_(value);
  }
}

TEST(Ema, ArithmeticOnKnownTensors) {
  const auto probe = tiny(4);
  const auto gallery = make_gallery(*probe);
  // Per parameter i: gallery starts at a_i, probe holds b_i.
  const auto gp = gallery->parameters();
  const auto pp = probe->parameters();
  {
    at::NoGradGuard no_grad;
    for (size_t i = 0; i < gp.size(); ++i) {
      gp[i].copy_(at::arange(gp[i].numel(), at::kFloat).view_as(gp[i]) * 0.01 + double(i));
      pp[i].copy_(at::full_like(pp[i], -2.0 * double(i) + 0.5));
    }
  }
  std::vector<at::Tensor> start;
  std::vector<const void*> storage;
  for (const auto& t : gp) {
    start.push_back(t.clone());
    storage.push_back(t.data_ptr());
  }
  const double alpha = 0.75;
  ema_update(*gallery, *probe, alpha);
  for (size_t i = 0; i < gp.size(); ++i) {
    const at::Tensor want = start[i] * alpha + pp[i].detach() * (1 - alpha);
    EXPECT_TRUE(at::allclose(gp[i], want, 1e-6, 1e-6)) << "parameter " << i;
    EXPECT_EQ(gp[i].data_ptr(), storage[i]) << "not in place";
    EXPECT_FALSE(gp[i].requires_grad());
    EXPECT_FALSE(gp[i].grad_fn());
  }
  // k steps towards a fixed probe: g_k = p + alpha^k (g_0 - p).
  for (int k = 2; k <= 5; ++k) {
    ema_update(*gallery, *probe, alpha);
    for (size_t i = 0; i < gp.size(); ++i) {
      const at::Tensor want = pp[i].detach() + std::pow(alpha, k) * (start[i] - pp[i].detach());
      EXPECT_TRUE(at::allclose(gp[i], want, 1e-5, 1e-5)) << "step " << k << " parameter " << i;
    }
  }
}

TEST(Ema, ExactAtTheEndsAndWhereEqual) {
  const auto probe = tiny(5);
  const auto gallery = make_gallery(*probe);
  fill_parameters(*gallery, 0.3);
  ema_update(*gallery, *probe, 1.0);  // alpha 1: the gallery does not move
  for (const auto& t : gallery->parameters()) {
    EXPECT_TRUE(t.eq(0.3f).all().item<bool>());
  }
  ema_update(*gallery, *probe, 0.0);  // alpha 0: the gallery becomes the probe
  const auto gp = gallery->parameters();
  const auto pp = probe->parameters();
  for (size_t i = 0; i < gp.size(); ++i) {
    EXPECT_TRUE(at::equal(gp[i], pp[i])) << i;
  }
  // Equal values stay bit for bit: the frozen features.weight is 1 in both and stays 1.
  for (int step = 0; step < 10; ++step) {
    ema_update(*gallery, *probe, 0.99);
  }
  for (const auto& [name, t] : state_dict(*gallery)) {
    if (name == "features.weight") {
      EXPECT_TRUE(t.eq(1).all().item<bool>());
    }
  }
}

TEST(Ema, LeavesBuffersAlone) {
  const auto probe = tiny(6);
  const auto gallery = make_gallery(*probe);
  gallery->forward(at::randn({3, 3, 32, 32}));
  probe->forward(at::randn({3, 3, 32, 32}));
  probe->forward(at::randn({3, 3, 32, 32}));
  std::vector<at::Tensor> before;
  for (const auto& t : gallery->buffers()) {
    before.push_back(t.clone());
  }
  {
    at::NoGradGuard no_grad;
    for (auto& t : probe->parameters()) {
      t.add_(1);
    }
  }
  ema_update(*gallery, *probe, 0.9);
  const auto after = gallery->buffers();
  ASSERT_EQ(after.size(), before.size());
  for (size_t i = 0; i < after.size(); ++i) {
    EXPECT_TRUE(at::equal(after[i], before[i])) << i;
  }
}

TEST(Ema, RejectsDifferentNetworks) {
  const auto a = tiny(7, 32);
  const auto b = tiny(7, 64);
  EXPECT_THROW(ema_update(*a, *b, 0.99), Error);
  EXPECT_THROW(ema_update(*a, *a, 1.5), Error);
}

}  // namespace
}  // namespace ffc::model
