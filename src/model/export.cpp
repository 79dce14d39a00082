#include "model/export.h"

#include "common/error.h"
#include "common/version.h"
#include "h5/input_norm.h"
#include "h5/state_dict.h"
#include "model/backbone.h"
#include "model/state_dict.h"

namespace ffc::model {
namespace {

int64_t int_attribute(const h5::Attributes& attrs, const std::string& name,
                      const std::string& path) {
  for (const auto& [key, value] : attrs) {
    if (key == name) {
      if (const auto* v = std::get_if<int64_t>(&value)) {
        return *v;
      }
      throw FormatError(path + ": root attribute '" + name + "' is not an integer");
    }
  }
  throw FormatError(path + ": root attribute '" + name + "' is missing");
}

std::string string_attribute(const h5::Attributes& attrs, const std::string& name,
                             const std::string& path) {
  for (const auto& [key, value] : attrs) {
    if (key == name) {
      if (const auto* v = std::get_if<std::string>(&value)) {
        return *v;
      }
      throw FormatError(path + ": root attribute '" + name + "' is not a string");
    }
  }
  throw FormatError(path + ": root attribute '" + name + "' is missing");
}

std::string describe(const BackboneSpec& spec) {
  return "network " + spec.name + ", embedding_size " + std::to_string(spec.embedding_size) +
         ", image_size " + std::to_string(spec.image_size);
}

}  // namespace

void export_backbone_h5(const Backbone& net, const InputNorm& norm, const std::string& path) {
  const BackboneSpec& spec = net.spec();
  h5::Attributes attrs = {
      {"format", std::string(kBackboneFormat)},
      {"format_version", kBackboneFormatVersion},
      {"network", spec.name},
      {"embedding_size", spec.embedding_size},
      {"image_size", spec.image_size},
      {"producer", "ffc " + project_version() + " (git " + git_revision() + ")"},
  };
  for (auto& a : h5::input_norm_attributes(norm)) {
    attrs.push_back(std::move(a));
  }
  h5::write_tensors(path, state_dict(net), attrs);
}

BackboneSpec read_backbone_spec_h5(const std::string& path) {
  const h5::Attributes attrs = h5::read_root_attributes(path);
  std::string format;
  try {
    format = string_attribute(attrs, "format", path);
  } catch (const FormatError&) {
    throw FormatError(path + ": not an ffc backbone file (no root attribute format = \"" +
                      kBackboneFormat + "\")");
  }
  if (format != kBackboneFormat) {
    throw FormatError(path + ": holds format '" + format + "', expected '" + kBackboneFormat + "'");
  }
  const int64_t version = int_attribute(attrs, "format_version", path);
  if (version > kBackboneFormatVersion) {
    throw FormatError(path + ": format_version " + std::to_string(version) +
                      " is newer than this ffc reads (" + std::to_string(kBackboneFormatVersion) +
                      "); update ffc");
  }
  BackboneSpec spec;
  spec.name = string_attribute(attrs, "network", path);
  spec.embedding_size = int_attribute(attrs, "embedding_size", path);
  spec.image_size = int_attribute(attrs, "image_size", path);
  return spec;
}

void load_backbone_h5(Backbone& net, const std::string& path) {
  const BackboneSpec file_spec = read_backbone_spec_h5(path);
  try {
    h5::load_tensors(path, state_dict(net));
  } catch (const FormatError& e) {
    throw FormatError(std::string(e.what()) + " [the file holds " + describe(file_spec) +
                      "; the model is " + describe(net.spec()) + "]");
  }
}

}  // namespace ffc::model
