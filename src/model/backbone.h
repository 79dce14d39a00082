#pragma once
// The backbone interface: images in, un-normalised embeddings out. Declaring a torch::nn::Module
// subclass needs <torch/nn/module.h> (about 10 s of compile time per translation unit, against
// 20 s for torch/torch.h); include model/model.h instead where forward() is not called.

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <string>

#include "model/model.h"

namespace ffc::model {

// Every network of the registry derives from Backbone. Parameters, buffers and their names are
// those of insightface's PyTorch module of the same name, registered in the same order, so the
// state dict (model/state_dict.h) has the same keys in the same order.
class Backbone : public torch::nn::Module {
 public:
  Backbone(std::string module_name, BackboneSpec spec);
  ~Backbone() override;

  const BackboneSpec& spec() const { return spec_; }

  // images: [B, 3, S, S] float32, NCHW, S = spec().image_size, on the device of the parameters
  // (normalised as insightface: pixel / 127.5 - 1). Returns [B, D] float32: insightface's
  // `features` BatchNorm1d output, NOT L2-normalised (see l2_normalize in model/normalize.h).
  // In training mode the batch must hold at least 2 images (BatchNorm statistics).
  virtual at::Tensor forward(const at::Tensor& images) = 0;

 protected:
  // Throws ffc::Error naming the expected and the actual input shape and type.
  void check_input(const at::Tensor& images) const;

  // Mixed precision around the trunk (everything before fc), in autocast_dtype(spec(), device of
  // the input): fc and features then run in float32 on the trunk output cast back to float32, as
  // insightface. CUDA and CPU autocast (the CPU supports bfloat16 only).
  class TrunkAutocast {
   public:
    TrunkAutocast(const BackboneSpec& spec, const at::Tensor& input);
    ~TrunkAutocast();
    TrunkAutocast(const TrunkAutocast&) = delete;
    TrunkAutocast& operator=(const TrunkAutocast&) = delete;
    bool active() const { return active_; }

   private:
    bool active_ = false;
    bool cuda_ = false;
    bool previous_enabled_ = false;
    int previous_dtype_ = 0;  // at::ScalarType
  };

 private:
  BackboneSpec spec_;
};

// The type the trunk runs in on `device`: float32 (no autocast), bfloat16 or float16.
//   amp_dtype auto: float16 when spec.fp16 (insightface), else bfloat16 on CUDA devices that
//                   support it (compute capability >= 8), else float32 (the CPU included);
//   float16 on the CPU: float32, with a warning logged once per process.
at::ScalarType autocast_dtype(const BackboneSpec& spec, at::Device device);

}  // namespace ffc::model
