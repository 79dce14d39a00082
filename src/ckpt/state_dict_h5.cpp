#include "ckpt/state_dict_h5.h"

// Narrow ATen headers instead of ATen/ATen.h: this file compiles in a third of the time.
#include <ATen/core/grad_mode.h>
#include <ATen/ops/empty.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>

namespace ffc::ckpt {
namespace {

h5::ElementType element_type_of(const at::Tensor& t, const std::string& name) {
  switch (t.scalar_type()) {
    case at::kFloat:
      return h5::ElementType::kFloat32;
    case at::kDouble:
      return h5::ElementType::kFloat64;
    case at::kLong:
      return h5::ElementType::kInt64;
    default:
      throw Error("tensor '" + name + "' has element type " +
                  std::string(c10::toString(t.scalar_type())) +
                  "; the HDF5 state-dict format holds float32, float64 and int64 only");
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

std::string temp_path_for(const std::string& path) {
  return path + ".tmp." + std::to_string(static_cast<long>(getpid()));
}

}  // namespace

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    s += (i ? ", " : "") + std::to_string(shape[i]);
  }
  return s + "]";
}

void write_tensors_h5(const std::string& path, const NamedTensors& tensors,
                      const Attributes& root_attributes) {
  const std::filesystem::path target(path);
  const std::filesystem::path dir =
      target.has_parent_path() ? target.parent_path() : std::filesystem::path(".");
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    throw IoError("cannot write '" + path + "': directory '" + dir.string() + "' does not exist");
  }
  const std::string tmp = temp_path_for(path);
  try {
    h5::File file = h5::File::create(tmp);
    for (const auto& [name, tensor] : tensors) {
      const h5::ElementType type = element_type_of(tensor, name);
      FFC_CHECK(!file.root().exists(name), "duplicate tensor name '" + name + "'");
      const at::Tensor host = tensor.detach().to(at::kCPU).contiguous();
      h5::Dataset ds = file.root().create_dataset(name, type, host.sizes().vec());
      ds.write(type, host.data_ptr());
      ds.close();
    }
    for (const auto& [name, value] : root_attributes) {
      h5::write_attribute(file.root().id(), name, value);
    }
    file.close();
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    throw IoError("cannot rename '" + tmp + "' to '" + path + "': " + std::strerror(err));
  }
}

NamedTensors read_tensors_h5(const std::string& path) {
  h5::File file = h5::File::open_read(path);
  NamedTensors out;
  for (const std::string& name : file.root().dataset_names()) {
    h5::Dataset ds = file.root().open_dataset(name);
    h5::ElementType type;
    try {
      type = ds.element_type();
    } catch (const FormatError& e) {
      throw FormatError(path + ": tensor '" + name + "': " + e.what());
    }
    at::Tensor t = at::empty(ds.dims(), at::TensorOptions().dtype(scalar_type_of(type)));
    ds.read(type, t.data_ptr());
    ds.close();
    out.emplace_back(name, std::move(t));
  }
  file.close();
  return out;
}

Attributes read_root_attributes_h5(const std::string& path) {
  h5::File file = h5::File::open_read(path);
  Attributes out = h5::read_attributes(file.root().id());
  file.close();
  return out;
}

void load_tensors_h5(const std::string& path, const NamedTensors& into) {
  h5::File file = h5::File::open_read(path);
  const std::vector<std::string> names = file.root().dataset_names();
  std::map<std::string, size_t> wanted;
  for (size_t i = 0; i < into.size(); ++i) {
    wanted.emplace(into[i].first, i);
  }
  for (const std::string& name : names) {
    if (wanted.count(name) == 0) {
      throw FormatError(path + ": the file holds tensor '" + name +
                        "', which the model does not have (is it a file of another network?)");
    }
  }
  // Pass 1: names, shapes and types, before anything is written.
  const std::set<std::string> present(names.begin(), names.end());
  for (const auto& [name, tensor] : into) {
    if (present.count(name) == 0) {
      throw FormatError(path + ": the file lacks tensor '" + name + "' of shape " +
                        shape_string(tensor.sizes().vec()) + " (is it a file of another network?)");
    }
    h5::Dataset ds = file.root().open_dataset(name);
    const std::vector<int64_t> dims = ds.dims();
    if (dims != tensor.sizes().vec()) {
      throw FormatError(path + ": tensor '" + name + "' has shape " + shape_string(dims) +
                        " in the file but " + shape_string(tensor.sizes().vec()) + " in the model");
    }
    const h5::ElementType file_type = ds.element_type();
    const h5::ElementType model_type = element_type_of(tensor, name);
    if (file_type != model_type) {
      throw FormatError(path + ": tensor '" + name + "' is " + h5::element_type_name(file_type) +
                        " in the file but " + h5::element_type_name(model_type) + " in the model");
    }
    ds.close();
  }
  // Pass 2: read and copy.
  at::NoGradGuard no_grad;
  for (const auto& [name, tensor] : into) {
    h5::Dataset ds = file.root().open_dataset(name);
    const h5::ElementType type = element_type_of(tensor, name);
    at::Tensor host = at::empty(tensor.sizes(), at::TensorOptions().dtype(tensor.scalar_type()));
    ds.read(type, host.data_ptr());
    ds.close();
    tensor.copy_(host);  // into the model's own storage, on its device
  }
  file.close();
}

}  // namespace ffc::ckpt
