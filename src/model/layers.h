#pragma once
// Internal to src/model: the layer primitives every backbone is built from. They register the
// same parameters and buffers, under the same names and in the same order, as PyTorch's
// nn.Conv2d (bias-free), nn.BatchNorm2d/1d, nn.PReLU and nn.Linear, and draw from the random
// generator at construction exactly as PyTorch's default initialisation does, so a seeded ffc
// backbone and a seeded insightface one consume the same random numbers in the same order.
// Conv2d and Linear add their multiply-adds to the FLOP counter of the calling thread when one
// is active (model_info's counting pass).

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace ffc::model::detail {

// Counts FLOPs (2 per multiply-add of convolutions and fully connected layers) of the forwards
// run on this thread while it is alive. Not nestable.
class FlopCounter {
 public:
  FlopCounter();
  ~FlopCounter();
  FlopCounter(const FlopCounter&) = delete;
  FlopCounter& operator=(const FlopCounter&) = delete;
  int64_t flops() const { return flops_; }

 private:
  int64_t flops_ = 0;
};

// A module with one tensor in, one tensor out.
class Layer : public torch::nn::Module {
 public:
  explicit Layer(std::string name) : torch::nn::Module(std::move(name)) {}
  virtual at::Tensor forward(const at::Tensor& x) = 0;
};

// nn.Conv2d(in, out, kernel, stride, padding, groups, bias=False): parameter "weight"
// [out, in/groups, k, k], initialised by PyTorch's default (kaiming_uniform_, a = sqrt(5)).
class Conv2d final : public Layer {
 public:
  Conv2d(int64_t in, int64_t out, int64_t kernel, int64_t stride = 1, int64_t padding = 0,
         int64_t groups = 1);
  at::Tensor forward(const at::Tensor& x) override;
  at::Tensor weight;

 private:
  int64_t stride_, padding_, groups_;
};

// nn.BatchNorm2d / nn.BatchNorm1d (eps 1e-5, momentum 0.1, affine, tracking running stats):
// "weight" (1), "bias" (0), buffers "running_mean" (0), "running_var" (1) and
// "num_batches_tracked" (0-dim int64, counts training-mode forwards).
class BatchNorm final : public Layer {
 public:
  explicit BatchNorm(int64_t features);
  at::Tensor forward(const at::Tensor& x) override;
  at::Tensor weight, bias, running_mean, running_var, num_batches_tracked;
};

// nn.PReLU(channels): "weight" [channels] = 0.25.
class PReLU final : public Layer {
 public:
  explicit PReLU(int64_t channels);
  at::Tensor forward(const at::Tensor& x) override;
  at::Tensor weight;
};

// nn.Linear(in, out, bias): "weight" [out, in] and "bias" [out], PyTorch's default init.
class Linear final : public Layer {
 public:
  Linear(int64_t in, int64_t out, bool with_bias);
  at::Tensor forward(const at::Tensor& x) override;
  at::Tensor weight, bias;
};

// x.view(B, -1) (insightface's Flatten / torch.flatten(x, 1)); no state.
class Flatten final : public Layer {
 public:
  Flatten() : Layer("Flatten") {}
  at::Tensor forward(const at::Tensor& x) override;
};

// nn.Sequential / nn.ModuleList: children named "0", "1", ... run in order.
class Sequence final : public Layer {
 public:
  Sequence() : Layer("Sequential") {}
  void push_back(std::shared_ptr<Layer> layer);
  at::Tensor forward(const at::Tensor& x) override;
  size_t size() const { return layers_.size(); }

 private:
  std::vector<std::shared_ptr<Layer>> layers_;
};

// Saves the state of LibTorch's default CPU generator and restores it on destruction: building a
// network draws from it (default initialisation), copying one or measuring one must not change
// what the caller draws next.
class PreserveCpuRng {
 public:
  PreserveCpuRng();
  ~PreserveCpuRng();
  PreserveCpuRng(const PreserveCpuRng&) = delete;
  PreserveCpuRng& operator=(const PreserveCpuRng&) = delete;

 private:
  at::Generator generator_;
  at::Tensor state_;
};

// Initialisers with PyTorch's arithmetic (torch.nn.init), in place, without autograd.
void kaiming_uniform_default(at::Tensor& w);  // kaiming_uniform_(w, a=sqrt(5))
void kaiming_normal_fan_out(at::Tensor& w);   // kaiming_normal_(w, mode='fan_out', relu)
void normal_init(at::Tensor& w, double mean, double std);
void constant_init(at::Tensor& w, double value);

}  // namespace ffc::model::detail
