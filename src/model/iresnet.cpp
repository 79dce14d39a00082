// insightface's IResNet (arcface_torch backbones/iresnet.py), module for module: the same
// children in the same registration order (hence the same state-dict keys and order), the same
// forward, the same initialisation, drawing from the random generator in the same order.

#include <ATen/ATen.h>

#include "common/error.h"
#include "model/backbone.h"
#include "model/layers.h"
#include "model/nets.h"

namespace ffc::model::detail {
namespace {

// bn1 -> conv1 (3x3) -> bn2 -> prelu -> conv2 (3x3, the block's stride) -> bn3, plus the
// identity or downsample(x) (1x1 conv with the stride, then BatchNorm) of the raw input.
// No activation after the addition.
class IBasicBlock final : public Layer {
 public:
  // `downsample` is built by the caller before the block, as insightface's _make_layer does
  // (it matters for the order of random draws).
  IBasicBlock(int64_t inplanes, int64_t planes, int64_t stride,
              std::shared_ptr<Sequence> downsample)
      : Layer("IBasicBlock") {
    bn1_ = register_module("bn1", std::make_shared<BatchNorm>(inplanes));
    conv1_ = register_module("conv1", std::make_shared<Conv2d>(inplanes, planes, 3, 1, 1));
    bn2_ = register_module("bn2", std::make_shared<BatchNorm>(planes));
    prelu_ = register_module("prelu", std::make_shared<PReLU>(planes));
    conv2_ = register_module("conv2", std::make_shared<Conv2d>(planes, planes, 3, stride, 1));
    bn3_ = register_module("bn3", std::make_shared<BatchNorm>(planes));
    if (downsample) {
      downsample_ = register_module("downsample", std::move(downsample));
    }
  }

  at::Tensor forward(const at::Tensor& x) override {
    at::Tensor out = bn1_->forward(x);
    out = conv1_->forward(out);
    out = bn2_->forward(out);
    out = prelu_->forward(out);
    out = conv2_->forward(out);
    out = bn3_->forward(out);
    out.add_(downsample_ ? downsample_->forward(x) : x);
    return out;
  }

 private:
  std::shared_ptr<BatchNorm> bn1_, bn2_, bn3_;
  std::shared_ptr<Conv2d> conv1_, conv2_;
  std::shared_ptr<PReLU> prelu_;
  std::shared_ptr<Sequence> downsample_;
};

class IResNet final : public Backbone {
 public:
  IResNet(const BackboneSpec& spec, const IResNetShape& shape) : Backbone("IResNet", spec) {
    FFC_CHECK(spec.image_size % 16 == 0, "IResNet needs image_size divisible by 16");
    conv1_ = register_module("conv1", std::make_shared<Conv2d>(3, shape.stem, 3, 1, 1));
    bn1_ = register_module("bn1", std::make_shared<BatchNorm>(shape.stem));
    prelu_ = register_module("prelu", std::make_shared<PReLU>(shape.stem));
    int64_t inplanes = shape.stem;
    for (size_t s = 0; s < 4; ++s) {
      stages_.push_back(register_module("layer" + std::to_string(s + 1),
                                        make_stage(inplanes, shape.widths[s], shape.blocks[s])));
    }
    bn2_ = register_module("bn2", std::make_shared<BatchNorm>(shape.widths[3]));
    const int64_t side = spec.image_size / 16;  // insightface hard-codes 7 (112 / 16)
    fc_ = register_module(
        "fc", std::make_shared<Linear>(shape.widths[3] * side * side, spec.embedding_size, true));
    features_ = register_module("features", std::make_shared<BatchNorm>(spec.embedding_size));
    constant_init(features_->weight, 1.0);
    features_->weight.set_requires_grad(false);

    apply([](torch::nn::Module& m) {
      if (auto* conv = dynamic_cast<Conv2d*>(&m)) {
        normal_init(conv->weight, 0, 0.1);
      }
      // BatchNorm2d weight 1, bias 0: already so from construction.
    });
  }

  at::Tensor forward(const at::Tensor& images) override {
    check_input(images);
    at::Tensor x;
    {
      TrunkAutocast amp(spec(), images);
      x = conv1_->forward(images);
      x = bn1_->forward(x);
      x = prelu_->forward(x);
      for (const auto& stage : stages_) {
        x = stage->forward(x);
      }
      x = bn2_->forward(x);
      x = x.flatten(1);
      if (spec().dropout > 0) {
        x = at::dropout(x, spec().dropout, is_training());
      }
      if (amp.active()) {
        x = x.to(at::kFloat);
      }
    }
    return features_->forward(fc_->forward(x));
  }

 private:
  // insightface's _make_layer with stride 2: block 0 (inplanes -> planes, stride 2, with a
  // downsample, even when inplanes == planes), then n - 1 blocks planes -> planes.
  static std::shared_ptr<Sequence> make_stage(int64_t& inplanes, int64_t planes, int64_t n) {
    auto stage = std::make_shared<Sequence>();
    auto downsample = std::make_shared<Sequence>();
    downsample->push_back(std::make_shared<Conv2d>(inplanes, planes, 1, 2, 0));
    downsample->push_back(std::make_shared<BatchNorm>(planes));
    stage->push_back(std::make_shared<IBasicBlock>(inplanes, planes, 2, std::move(downsample)));
    inplanes = planes;
    for (int64_t i = 1; i < n; ++i) {
      stage->push_back(std::make_shared<IBasicBlock>(planes, planes, 1, nullptr));
    }
    return stage;
  }

  std::shared_ptr<Conv2d> conv1_;
  std::shared_ptr<BatchNorm> bn1_, bn2_, features_;
  std::shared_ptr<PReLU> prelu_;
  std::vector<std::shared_ptr<Sequence>> stages_;
  std::shared_ptr<Linear> fc_;
};

}  // namespace

std::shared_ptr<Backbone> make_iresnet(const BackboneSpec& spec, const IResNetShape& shape) {
  return std::make_shared<IResNet>(spec, shape);
}

}  // namespace ffc::model::detail
