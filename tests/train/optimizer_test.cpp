// Our SGD equals LibTorch's torch::optim::SGD (momentum, Nesterov, weight decay); schedules.

#include "train/optimizer.h"

#include <gtest/gtest.h>
#include <torch/optim/sgd.h>

#include "train/loss_scaler.h"
#include "train/schedule.h"

namespace ffc::train {
namespace {

TEST(Sgd, EqualsTorchSgd) {
  for (bool nesterov : {false, true}) {
    for (double wd : {0.0, 5e-4}) {
      at::manual_seed(3);
      at::Tensor a = at::randn({7, 5}).set_requires_grad(true);
      at::Tensor b = a.detach().clone().set_requires_grad(true);
      at::Tensor frozen = at::ones({3});
      Sgd ours({a, frozen}, {"a", "frozen"}, SgdOptions{0.9, wd, nesterov});
      EXPECT_EQ(ours.params().size(), 1u);  // the frozen tensor is skipped
      torch::optim::SGD ref(
          {b}, torch::optim::SGDOptions(0.1).momentum(0.9).weight_decay(wd).nesterov(nesterov));
      for (int step = 0; step < 5; ++step) {
        const at::Tensor g = at::randn({7, 5});
        a.mutable_grad() = g.clone();
        b.mutable_grad() = g.clone();
        const double lr = 0.1 / (step + 1);
        static_cast<torch::optim::SGDOptions&>(ref.param_groups()[0].options()).lr(lr);
        ours.step(lr);
        ref.step();
        EXPECT_TRUE(at::allclose(a, b, 1e-6, 1e-7))
            << "nesterov " << nesterov << " wd " << wd << " step " << step;
      }
      EXPECT_EQ(ours.steps(), 5);
    }
  }
}

TEST(Sgd, ClipGradNorm) {
  at::Tensor a = at::zeros({2}).set_requires_grad(true);
  at::Tensor b = at::zeros({1}).set_requires_grad(true);
  a.mutable_grad() = at::tensor({3.0f, 0.0f});
  b.mutable_grad() = at::tensor({4.0f});
  EXPECT_NEAR(clip_grad_norm({a, b}, 10.0), 5.0, 1e-6);
  EXPECT_NEAR(a.grad()[0].item<float>(), 3.0f, 1e-6);  // under the limit: unchanged
  EXPECT_NEAR(clip_grad_norm({a, b}, 1.0), 5.0, 1e-6);
  EXPECT_NEAR(a.grad()[0].item<float>(), 0.6f, 1e-5);
  EXPECT_NEAR(b.grad()[0].item<float>(), 0.8f, 1e-5);
}

// torch.cuda.amp.GradScaler's rule: a non-finite step halves the scale and resets the count; after
// growth_interval finite steps in a row the scale doubles.
TEST(LossScaler, BacksOffOnOverflowAndGrowsAfterTheInterval) {
  LossScalerOptions o;
  o.enabled = true;
  o.init_scale = 1024;
  o.growth_interval = 3;
  LossScaler s(o);
  EXPECT_EQ(s.scale(), 1024);
  s.update(false);
  s.update(false);
  EXPECT_EQ(s.growth_tracker(), 2);
  s.update(true);  // overflow: skipped, halved, count reset
  EXPECT_EQ(s.scale(), 512);
  EXPECT_EQ(s.growth_tracker(), 0);
  EXPECT_EQ(s.skipped(), 1);
  s.update(false);
  s.update(false);
  EXPECT_EQ(s.scale(), 512);
  s.update(false);  // the third finite step in a row
  EXPECT_EQ(s.scale(), 1024);
  EXPECT_EQ(s.growth_tracker(), 0);
  s.restore(8, 2);
  EXPECT_EQ(s.scale(), 8);
  s.update(false);
  EXPECT_EQ(s.scale(), 16);
  EXPECT_FALSE(s.collapsed());
  for (int i = 0; i < 40; ++i) {
    s.update(true);
  }
  EXPECT_TRUE(s.collapsed());
  LossScaler off(LossScalerOptions{});
  EXPECT_EQ(off.scale(), 1.0);  // disabled: the loss is not scaled
  off.update(true);
  EXPECT_EQ(off.scale(), 1.0);
}

TEST(Schedule, PolyWithWarmupAndMultistep) {
  ScheduleSpec s;
  s.base_lr = 0.1;
  s.steps_per_epoch = 10;
  s.total_steps = 100;
  s.warmup_steps = 20;
  EXPECT_NEAR(learning_rate(s, 0), 0.005, 1e-12);  // (0 + 1) / 20
  EXPECT_NEAR(learning_rate(s, 19), 0.1, 1e-12);
  EXPECT_NEAR(learning_rate(s, 20), 0.1, 1e-12);
  EXPECT_NEAR(learning_rate(s, 60), 0.05, 1e-12);  // halfway through the decay
  EXPECT_NEAR(learning_rate(s, 100), 0.0, 1e-12);
  s.kind = "multistep";
  s.warmup_steps = 0;
  s.milestones_epochs = {8, 14, 17};  // the FFC authors
  EXPECT_NEAR(learning_rate(s, 79), 0.1, 1e-12);
  EXPECT_NEAR(learning_rate(s, 80), 0.01, 1e-12);
  EXPECT_NEAR(learning_rate(s, 140), 0.001, 1e-12);
  EXPECT_NEAR(learning_rate(s, 185), 0.0001, 1e-12);
}

}  // namespace
}  // namespace ffc::train
