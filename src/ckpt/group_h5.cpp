#include "ckpt/group_h5.h"

// Narrow ATen headers, as state_dict_h5.cpp.
#include <ATen/core/grad_mode.h>
#include <ATen/ops/empty.h>

#include <map>
#include <set>

namespace ffc::ckpt {
namespace {

std::string normalized_group(const std::string& group) {
  if (group.empty() || group == "/") {
    return "/";
  }
  return group.front() == '/' ? group : "/" + group;
}

h5::ElementType element_type_of(const at::Tensor& t, const std::string& where) {
  switch (t.scalar_type()) {
    case at::kFloat:
      return h5::ElementType::kFloat32;
    case at::kDouble:
      return h5::ElementType::kFloat64;
    case at::kLong:
      return h5::ElementType::kInt64;
    default:
      throw Error(where + " has element type " + std::string(c10::toString(t.scalar_type())) +
                  "; HDF5 state dicts hold float32, float64 and int64 only");
  }
}

at::ScalarType scalar_type_of(h5::ElementType type) {
  switch (type) {
    case h5::ElementType::kFloat32:
      return at::kFloat;
    case h5::ElementType::kFloat64:
      return at::kDouble;
    case h5::ElementType::kInt64:
      return at::kLong;
  }
  return at::kFloat;
}

// Opens `group` of an open file; FormatError naming the groups present when it is missing.
h5::Group open_group(const h5::File& file, const std::string& group) {
  const std::string g = normalized_group(group);
  if (g != "/") {
    const htri_t exists = H5Lexists(file.root().id(), g.c_str(), H5P_DEFAULT);
    if (exists <= 0) {
      h5::error_stack_text();  // clears the stack of a failed lookup of a missing parent
      throw FormatError(file.path() + ": no group '" + g +
                        "' (is it a checkpoint? exported backbones hold their tensors at the root: "
                        "use --backbone)");
    }
  }
  return h5::Group(FFC_H5_CHECK(H5Gopen2(file.root().id(), g.c_str(), H5P_DEFAULT)));
}

}  // namespace

bool has_group_h5(const std::string& path, const std::string& group) {
  h5::File file = h5::File::open_read(path);
  const std::string g = normalized_group(group);
  bool found = g == "/";
  if (!found) {
    found = H5Lexists(file.root().id(), g.c_str(), H5P_DEFAULT) > 0;
    h5::error_stack_text();
  }
  file.close();
  return found;
}

NamedTensors read_group_tensors_h5(const std::string& path, const std::string& group) {
  h5::File file = h5::File::open_read(path);
  NamedTensors out;
  {
    h5::Group g = open_group(file, group);
    for (const std::string& name : g.dataset_names()) {
      h5::Dataset ds = g.open_dataset(name);
      h5::ElementType type;
      try {
        type = ds.element_type();
      } catch (const FormatError& e) {
        throw FormatError(path + ": tensor '" + name + "' of group '" + normalized_group(group) +
                          "': " + e.what());
      }
      at::Tensor t = at::empty(ds.dims(), at::TensorOptions().dtype(scalar_type_of(type)));
      ds.read(type, t.data_ptr());
      ds.close();
      out.emplace_back(name, std::move(t));
    }
    g.close();
  }
  file.close();
  return out;
}

void load_group_tensors_h5(const std::string& path, const std::string& group,
                           const NamedTensors& into) {
  h5::File file = h5::File::open_read(path);
  const std::string where = path + " (group '" + normalized_group(group) + "')";
  {
    h5::Group g = open_group(file, group);
    const std::vector<std::string> names = g.dataset_names();
    std::map<std::string, size_t> wanted;
    for (size_t i = 0; i < into.size(); ++i) {
      wanted.emplace(into[i].first, i);
    }
    for (const std::string& name : names) {
      if (wanted.count(name) == 0) {
        throw FormatError(where + ": holds tensor '" + name +
                          "', which the model does not have (is it a file of another network?)");
      }
    }
    // Pass 1: names, shapes and types, before anything is written.
    const std::set<std::string> present(names.begin(), names.end());
    for (const auto& [name, tensor] : into) {
      if (present.count(name) == 0) {
        throw FormatError(where + ": lacks tensor '" + name + "' of shape " +
                          shape_string(tensor.sizes().vec()) +
                          " (is it a file of another network?)");
      }
      h5::Dataset ds = g.open_dataset(name);
      const std::vector<int64_t> dims = ds.dims();
      if (dims != tensor.sizes().vec()) {
        throw FormatError(where + ": tensor '" + name + "' has shape " + shape_string(dims) +
                          " in the file but " + shape_string(tensor.sizes().vec()) +
                          " in the model");
      }
      const h5::ElementType file_type = ds.element_type();
      const h5::ElementType model_type = element_type_of(tensor, "tensor '" + name + "'");
      if (file_type != model_type) {
        throw FormatError(where + ": tensor '" + name + "' is " + h5::element_type_name(file_type) +
                          " in the file but " + h5::element_type_name(model_type) +
                          " in the model");
      }
      ds.close();
    }
    // Pass 2: read and copy.
    at::NoGradGuard no_grad;
    for (const auto& [name, tensor] : into) {
      h5::Dataset ds = g.open_dataset(name);
      const h5::ElementType type = element_type_of(tensor, "tensor '" + name + "'");
      at::Tensor host = at::empty(tensor.sizes(), at::TensorOptions().dtype(tensor.scalar_type()));
      ds.read(type, host.data_ptr());
      ds.close();
      tensor.copy_(host);  // into the model's own storage, on its device
    }
    g.close();
  }
  file.close();
}

}  // namespace ffc::ckpt
