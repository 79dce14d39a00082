// `ffc model list | info | export`: the backbones of the registry, their size and cost, and a
// freshly initialised backbone as an HDF5 file for PyTorch (docs/models.md).

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <iostream>

#include "apps/commands.h"
#include "common/error.h"
#include "common/threads.h"
#include "model/export.h"
#include "model/info.h"
#include "model/model.h"

namespace ffc::app {
namespace {

model::BackboneSpec spec_of(const ModelCommand& cmd) {
  model::BackboneSpec spec;
  spec.name = cmd.network;
  spec.embedding_size = cmd.embedding_size;
  spec.image_size = cmd.image_size > 0 ? cmd.image_size : model::natural_image_size(cmd.network);
  model::check_spec(spec);
  return spec;
}

// 43590848 -> "43,590,848"
std::string grouped(int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) {
      out += ',';
    }
    out += digits[i];
  }
  return n < 0 ? "-" + out : out;
}

std::string fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, v);
  return buf;
}

}  // namespace

int run_model_list(const ModelCommand& /*cmd*/) {
  for (const std::string& name : model::backbone_names()) {
    char line[64];
    std::snprintf(line, sizeof(line), "%-10s %4lld  ", name.c_str(),
                  static_cast<long long>(model::natural_image_size(name)));
    std::cout << line << model::backbone_description(name) << "\n";
  }
  return kExitOk;
}

int run_model_info(const ModelCommand& cmd) {
  const model::BackboneSpec spec = spec_of(cmd);
  at::set_num_threads(choose_num_threads(0, 1).threads);
  const model::ModelInfo info = model::model_info(spec);
  const double gflops = static_cast<double>(info.flops_per_image) / 1e9;
  const double mib = static_cast<double>(info.activation_bytes_per_image) / (1024.0 * 1024.0);
  if (cmd.json) {
    const nlohmann::json j = {
        {"network", spec.name},
        {"embedding_size", spec.embedding_size},
        {"image_size", spec.image_size},
        {"parameters", info.parameters},
        {"trainable_parameters", info.trainable_parameters},
        {"buffer_elements", info.buffer_elements},
        {"state_dict_entries", info.state_dict_entries},
        {"flops_per_image", info.flops_per_image},
        {"gflops_per_image", gflops},
        {"activation_bytes_per_image", info.activation_bytes_per_image},
        {"activation_mib_per_image", mib},
    };
    std::cout << j.dump(2) << "\n";
    return kExitOk;
  }
  std::cout << "network                   " << spec.name << ": "
            << model::backbone_description(spec.name) << "\n"
            << "embedding_size            " << spec.embedding_size << "\n"
            << "image_size                " << spec.image_size << "\n"
            << "parameters                " << grouped(info.parameters) << "\n"
            << "trainable parameters      " << grouped(info.trainable_parameters) << "\n"
            << "buffers                   " << grouped(info.buffer_elements) << " elements; "
            << info.state_dict_entries << " state-dict entries\n"
            << "GFLOPs per image          " << fixed(gflops, 4)
            << " (forward; 2 per multiply-add of conv and fc layers)\n"
            << "activation MiB per image  " << fixed(mib, 2)
            << " (float32 tensors a training forward keeps for backward)\n";
  return kExitOk;
}

int run_model_export(const ModelCommand& cmd) {
  const model::BackboneSpec spec = spec_of(cmd);
  at::manual_seed(static_cast<uint64_t>(cmd.seed));
  const auto net = model::make_backbone(spec);
  model::export_backbone_h5(*net, input_norm_named(cmd.input_norm), cmd.out);
  std::cout << "wrote " << cmd.out << ": network " << spec.name << ", embedding_size "
            << spec.embedding_size << ", image_size " << spec.image_size << ", seed " << cmd.seed
            << " (freshly initialised)\n";
  return kExitOk;
}

}  // namespace ffc::app
