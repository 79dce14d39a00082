#include "eval/network_file.h"

#include "common/error.h"
#include "h5/input_norm.h"
#include "h5/state_dict.h"
#include "model/backbone.h"
#include "model/export.h"
#include "model/state_dict.h"

namespace ffc::eval {
namespace {

const h5::AttributeValue* find(const h5::Attributes& attrs, const std::string& name) {
  for (const auto& [key, value] : attrs) {
    if (key == name) {
      return &value;
    }
  }
  return nullptr;
}

int64_t int_attribute(const h5::Attributes& attrs, const std::string& name,
                      const std::string& path) {
  const h5::AttributeValue* v = find(attrs, name);
  if (v == nullptr) {
    throw FormatError(path + ": root attribute '" + name + "' is missing");
  }
  if (const auto* i = std::get_if<int64_t>(v)) {
    return *i;
  }
  throw FormatError(path + ": root attribute '" + name + "' is not an integer");
}

std::string describe(const model::BackboneSpec& spec) {
  return spec.name + " (D " + std::to_string(spec.embedding_size) + ", " +
         std::to_string(spec.image_size) + "x" + std::to_string(spec.image_size) + ")";
}

}  // namespace

model::BackboneSpec read_network_spec_h5(const std::string& path) {
  const h5::Attributes attrs = h5::read_root_attributes(path);
  model::BackboneSpec spec;
  const h5::AttributeValue* name = find(attrs, "network");
  if (name == nullptr || std::get_if<std::string>(name) == nullptr) {
    throw FormatError(path + ": root attribute 'network' (a string) is missing");
  }
  spec.name = std::get<std::string>(*name);
  spec.embedding_size = int_attribute(attrs, "embedding_size", path);
  spec.image_size = int_attribute(attrs, "image_size", path);
  try {
    model::check_spec(spec);
  } catch (const ConfigError& e) {
    throw FormatError(path + ": the network its attributes name cannot be built: " + e.what());
  }
  return spec;
}

LoadedNetwork load_network(const NetworkSource& source) {
  const bool has_backbone = !source.backbone.empty();
  const bool has_checkpoint = !source.checkpoint.empty();
  if (has_backbone == has_checkpoint) {
    throw ConfigError(
        "give the network to evaluate as --backbone FILE.h5 (an exported backbone) or "
        "--checkpoint FILE.h5 [--net probe|gallery], one of the two");
  }
  LoadedNetwork out;
  if (has_backbone) {
    const model::BackboneSpec spec = model::read_backbone_spec_h5(source.backbone);
    out.net = model::make_backbone(spec);
    model::load_backbone_h5(*out.net, source.backbone);
    out.description = describe(spec) + " from " + source.backbone;
  } else {
    if (source.net != "probe" && source.net != "gallery") {
      throw ConfigError("--net " + source.net + ": the net of a checkpoint is probe or gallery");
    }
    const model::BackboneSpec spec = read_network_spec_h5(source.checkpoint);
    out.net = model::make_backbone(spec);
    h5::load_tensors(source.checkpoint, model::state_dict(*out.net), "/" + source.net);
    const h5::Attributes attrs = h5::read_root_attributes(source.checkpoint);
    if (const h5::AttributeValue* step = find(attrs, "step")) {
      if (const auto* i = std::get_if<int64_t>(step)) {
        out.step = *i;
      }
    }
    out.description = describe(spec) + ", " + source.net + " net of " + source.checkpoint;
  }
  const std::string& path = has_backbone ? source.backbone : source.checkpoint;
  const std::optional<InputNorm> recorded =
      h5::recorded_input_norm(h5::read_root_attributes(path), path);
  if (!source.input_norm.empty()) {
    out.input_norm = input_norm_named(source.input_norm);
    out.input_norm_note = "--input-norm " + source.input_norm;
    if (recorded && recorded->name != out.input_norm.name) {
      out.input_norm_note += ", overriding the file's " + recorded->name;
    }
  } else if (recorded) {
    out.input_norm = *recorded;
    out.input_norm_note = "recorded in the file";
  } else {
    out.input_norm = legacy_input_norm();
    out.input_norm_note =
        "the file records none (written before ffc recorded it); override with --input-norm";
  }
  out.net->eval();
  return out;
}

}  // namespace ffc::eval
