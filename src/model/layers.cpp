#include "model/layers.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <mutex>

#include "common/error.h"

namespace ffc::model::detail {
namespace {

thread_local int64_t* t_flops = nullptr;

void add_flops(int64_t flops) {
  if (t_flops != nullptr) {
    *t_flops += flops;
  }
}

// torch.nn.init._calculate_fan_in_and_fan_out
std::pair<int64_t, int64_t> fans(const at::Tensor& w) {
  FFC_CHECK(w.dim() >= 2, "fan in/out needs a tensor of at least 2 dimensions");
  int64_t receptive = 1;
  for (int64_t d = 2; d < w.dim(); ++d) {
    receptive *= w.size(d);
  }
  return {w.size(1) * receptive, w.size(0) * receptive};
}

}  // namespace

FlopCounter::FlopCounter() {
  FFC_CHECK(t_flops == nullptr, "FlopCounter is not nestable");
  t_flops = &flops_;
}

FlopCounter::~FlopCounter() {
  t_flops = nullptr;
}

PreserveCpuRng::PreserveCpuRng() : generator_(at::detail::getDefaultCPUGenerator()) {
  std::lock_guard<std::mutex> lock(generator_.mutex());
  state_ = generator_.get_state();
}

PreserveCpuRng::~PreserveCpuRng() {
  std::lock_guard<std::mutex> lock(generator_.mutex());
  generator_.set_state(state_);
}

void kaiming_uniform_default(at::Tensor& w) {
  at::NoGradGuard no_grad;
  const double a = std::sqrt(5.0);
  const double gain = std::sqrt(2.0 / (1 + std::pow(a, 2)));
  const double std = gain / std::sqrt(static_cast<double>(fans(w).first));
  const double bound = std::sqrt(3.0) * std;
  w.uniform_(-bound, bound);
}

void kaiming_normal_fan_out(at::Tensor& w) {
  at::NoGradGuard no_grad;
  const double gain = std::sqrt(2.0);
  const double std = gain / std::sqrt(static_cast<double>(fans(w).second));
  w.normal_(0, std);
}

void normal_init(at::Tensor& w, double mean, double std) {
  at::NoGradGuard no_grad;
  w.normal_(mean, std);
}

void constant_init(at::Tensor& w, double value) {
  at::NoGradGuard no_grad;
  w.fill_(value);
}

Conv2d::Conv2d(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding,
               int64_t groups)
    : Layer("Conv2d"), stride_(stride), padding_(padding), groups_(groups) {
  FFC_CHECK(in % groups == 0 && out % groups == 0, "Conv2d channels must divide by groups");
  weight = register_parameter("weight", at::empty({out, in / groups, kernel, kernel}));
  kaiming_uniform_default(weight);
}

at::Tensor Conv2d::forward(const at::Tensor& x) {
  at::Tensor y =
      at::conv2d(x, weight, {}, {stride_, stride_}, {padding_, padding_}, {1, 1}, groups_);
  if (t_flops != nullptr) {
    add_flops(2 * y.numel() * (weight.numel() / weight.size(0)));
  }
  return y;
}

BatchNorm::BatchNorm(int64_t features) : Layer("BatchNorm") {
  weight = register_parameter("weight", at::ones({features}));
  bias = register_parameter("bias", at::zeros({features}));
  running_mean = register_buffer("running_mean", at::zeros({features}));
  running_var = register_buffer("running_var", at::ones({features}));
  num_batches_tracked = register_buffer("num_batches_tracked", at::zeros({}, at::kLong));
}

at::Tensor BatchNorm::forward(const at::Tensor& x) {
  const bool training = is_training();
  if (training) {
    // As PyTorch (F.batch_norm's _verify_batch_size): one value per channel has no variance.
    int64_t values = x.size(0);
    for (int64_t d = 2; d < x.dim(); ++d) {
      values *= x.size(d);
    }
    if (values <= 1) {
      throw Error(
          "BatchNorm in training mode needs more than one value per channel, got input "
          "of shape " +
          std::string(c10::str(x.sizes())) +
          "; use a batch of at least 2 images or switch the model to eval mode");
    }
    at::NoGradGuard no_grad;
    num_batches_tracked.add_(1);
  }
  return at::batch_norm(x, weight, bias, running_mean, running_var, training, 0.1, 1e-5,
                        at::globalContext().userEnabledCuDNN());
}

PReLU::PReLU(int64_t channels) : Layer("PReLU") {
  weight = register_parameter("weight", at::full({channels}, 0.25));
}

at::Tensor PReLU::forward(const at::Tensor& x) {
  return at::prelu(x, weight);
}

Linear::Linear(int64_t in, int64_t out, bool with_bias) : Layer("Linear") {
  weight = register_parameter("weight", at::empty({out, in}));
  kaiming_uniform_default(weight);
  if (with_bias) {
    bias = register_parameter("bias", at::empty({out}));
    const double bound = 1 / std::sqrt(static_cast<double>(in));
    at::NoGradGuard no_grad;
    bias.uniform_(-bound, bound);
  }
}

at::Tensor Linear::forward(const at::Tensor& x) {
  at::Tensor y = at::linear(
      x, weight, bias.defined() ? c10::optional<at::Tensor>(bias) : c10::optional<at::Tensor>());
  if (t_flops != nullptr) {
    add_flops(2 * y.numel() * weight.size(1));
  }
  return y;
}

at::Tensor Flatten::forward(const at::Tensor& x) {
  return x.reshape({x.size(0), -1});
}

void Sequence::push_back(std::shared_ptr<Layer> layer) {
  layers_.push_back(register_module(std::to_string(layers_.size()), std::move(layer)));
}

at::Tensor Sequence::forward(const at::Tensor& x) {
  at::Tensor y = x;
  for (const auto& layer : layers_) {
    y = layer->forward(y);
  }
  return y;
}

}  // namespace ffc::model::detail
