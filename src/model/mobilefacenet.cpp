// insightface's MobileFaceNet (arcface_torch backbones/mobilefacenet.py), module for module:
// every building block keeps its sub-modules in a Sequential named `layers`, so the state-dict
// keys are those of insightface (layers.3.layers.0.layers.1.layers.0.weight, ...).

#include <ATen/ATen.h>

#include "common/error.h"
#include "model/backbone.h"
#include "model/layers.h"
#include "model/nets.h"

namespace ffc::model::detail {
namespace {

// A block whose only child is the Sequential `layers`; with `residual`, x + layers(x).
class Block final : public Layer {
 public:
  Block(std::string type, std::shared_ptr<Sequence> layers, bool residual = false)
      : Layer(std::move(type)), residual_(residual) {
    layers_ = register_module("layers", std::move(layers));
  }
  at::Tensor forward(const at::Tensor& x) override {
    return residual_ ? x + layers_->forward(x) : layers_->forward(x);
  }

 private:
  std::shared_ptr<Sequence> layers_;
  bool residual_;
};

// ConvBlock: conv (no bias) -> BatchNorm2d -> PReLU.
std::shared_ptr<Layer> conv_block(int64_t in, int64_t out, int64_t kernel, int64_t stride,
                                  int64_t padding, int64_t groups = 1) {
  auto seq = std::make_shared<Sequence>();
  seq->push_back(std::make_shared<Conv2d>(in, out, kernel, stride, padding, groups));
  seq->push_back(std::make_shared<BatchNorm>(out));
  seq->push_back(std::make_shared<PReLU>(out));
  return std::make_shared<Block>("ConvBlock", std::move(seq));
}

// LinearBlock: conv (no bias) -> BatchNorm2d.
std::shared_ptr<Layer> linear_block(int64_t in, int64_t out, int64_t kernel, int64_t stride,
                                    int64_t padding, int64_t groups = 1) {
  auto seq = std::make_shared<Sequence>();
  seq->push_back(std::make_shared<Conv2d>(in, out, kernel, stride, padding, groups));
  seq->push_back(std::make_shared<BatchNorm>(out));
  return std::make_shared<Block>("LinearBlock", std::move(seq));
}

// DepthWise: 1x1 in -> hidden, depthwise kxk (stride), 1x1 hidden -> out (linear); the hidden
// width is insightface's `groups` argument.
std::shared_ptr<Layer> depth_wise(int64_t in, int64_t out, bool residual, int64_t stride,
                                  int64_t hidden) {
  auto seq = std::make_shared<Sequence>();
  seq->push_back(conv_block(in, hidden, 1, 1, 0));
  seq->push_back(conv_block(hidden, hidden, 3, stride, 1, hidden));
  seq->push_back(linear_block(hidden, out, 1, 1, 0));
  return std::make_shared<Block>("DepthWise", std::move(seq), residual);
}

// Residual: n residual DepthWise units c -> c, stride 1.
std::shared_ptr<Layer> residual(int64_t c, int64_t n, int64_t hidden) {
  auto seq = std::make_shared<Sequence>();
  for (int64_t i = 0; i < n; ++i) {
    seq->push_back(depth_wise(c, c, true, 1, hidden));
  }
  return std::make_shared<Block>("Residual", std::move(seq));
}

// GDC: global depthwise 7x7 conv (linear) -> flatten -> Linear(512, E, no bias) -> BatchNorm1d.
std::shared_ptr<Layer> gdc(int64_t embedding_size) {
  auto seq = std::make_shared<Sequence>();
  seq->push_back(linear_block(512, 512, 7, 1, 0, 512));
  seq->push_back(std::make_shared<Flatten>());
  seq->push_back(std::make_shared<Linear>(512, embedding_size, false));
  seq->push_back(std::make_shared<BatchNorm>(embedding_size));
  return std::make_shared<Block>("GDC", std::move(seq));
}

class MobileFaceNet final : public Backbone {
 public:
  MobileFaceNet(const BackboneSpec& spec, const MobileFaceNetShape& shape)
      : Backbone("MobileFaceNet", spec) {
    FFC_CHECK(spec.image_size == 112, "MobileFaceNet needs image_size 112");
    const int64_t s = shape.scale;
    const auto& b = shape.blocks;
    layers_ = register_module("layers", std::make_shared<Sequence>());
    layers_->push_back(conv_block(3, 64 * s, 3, 2, 1));
    if (b[0] == 1) {
      layers_->push_back(conv_block(64 * s, 64 * s, 3, 1, 1, 64));  // grouped, not depthwise
    } else {
      layers_->push_back(residual(64 * s, b[0], 128));
    }
    layers_->push_back(depth_wise(64 * s, 64 * s, false, 2, 128));
    layers_->push_back(residual(64 * s, b[1], 128));
    layers_->push_back(depth_wise(64 * s, 128 * s, false, 2, 256));
    layers_->push_back(residual(128 * s, b[2], 256));
    layers_->push_back(depth_wise(128 * s, 128 * s, false, 2, 512));
    layers_->push_back(residual(128 * s, b[3], 256));
    conv_sep_ = register_module("conv_sep", conv_block(128 * s, 512, 1, 1, 0));
    features_ = register_module("features", gdc(spec.embedding_size));

    apply([](torch::nn::Module& m) {
      if (auto* conv = dynamic_cast<Conv2d*>(&m)) {
        kaiming_normal_fan_out(conv->weight);
      } else if (auto* linear = dynamic_cast<Linear*>(&m)) {
        kaiming_normal_fan_out(linear->weight);
      }
      // BatchNorm2d weight 1, bias 0 and BatchNorm1d defaults: already so from construction.
    });
  }

  at::Tensor forward(const at::Tensor& images) override {
    check_input(images);
    at::Tensor x;
    {
      TrunkAutocast amp(spec(), images);
      x = layers_->forward(images);
      if (amp.active()) {
        x = x.to(at::kFloat);
      }
    }
    return features_->forward(conv_sep_->forward(x));
  }

 private:
  std::shared_ptr<Sequence> layers_;
  std::shared_ptr<Layer> conv_sep_, features_;
};

}  // namespace

std::shared_ptr<Backbone> make_mobilefacenet(const BackboneSpec& spec,
                                             const MobileFaceNetShape& shape) {
  return std::make_shared<MobileFaceNet>(spec, shape);
}

}  // namespace ffc::model::detail
