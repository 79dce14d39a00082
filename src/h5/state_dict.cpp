#include "h5/state_dict.h"

// Narrow ATen headers instead of ATen/ATen.h: this file compiles in a third of the time.
#include <ATen/core/grad_mode.h>
#include <ATen/ops/empty.h>

#include <map>
#include <set>

#include "common/atomic_file.h"

namespace ffc::h5 {
namespace {

std::string normalized_group(const std::string& group) {
  if (group.empty() || group == "/") {
    return "/";
  }
  return group.front() == '/' ? group : "/" + group;
}

ElementType element_type_of(const at::Tensor& t, const std::string& name) {
  switch (t.scalar_type()) {
    case at::kFloat:
      return ElementType::kFloat32;
    case at::kDouble:
      return ElementType::kFloat64;
    case at::kLong:
      return ElementType::kInt64;
    default:
      throw Error("tensor '" + name + "' has element type " +
                  std::string(c10::toString(t.scalar_type())) +
                  "; HDF5 state dicts hold float32, float64 and int64 only");
  }
}

at::ScalarType scalar_type_of(ElementType type) {
  switch (type) {
    case ElementType::kFloat32:
      return at::kFloat;
    case ElementType::kFloat64:
      return at::kDouble;
    case ElementType::kInt64:
      return at::kLong;
    case ElementType::kUInt8:
      return at::kByte;
  }
  return at::kFloat;
}

// Opens `group` ("/" the root) of an open file; FormatError when it is missing.
Group open_group(const File& file, const std::string& g) {
  if (g != "/") {
    const htri_t exists = H5Lexists(file.root().id(), g.c_str(), H5P_DEFAULT);
    if (exists <= 0) {
      error_stack_text();  // clears the stack of a failed lookup of a missing parent
      throw FormatError(file.path() + ": no group '" + g +
                        "' (is it a checkpoint? exported backbones hold their tensors at the root: "
                        "use --backbone)");
    }
  }
  return Group(FFC_H5_CHECK(H5Gopen2(file.root().id(), g.c_str(), H5P_DEFAULT)));
}

}  // namespace

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    s += (i ? ", " : "") + std::to_string(shape[i]);
  }
  return s + "]";
}

void write_tensors(const std::string& path, const NamedTensors& tensors,
                   const Attributes& root_attributes) {
  AtomicFile target(path);
  File file = File::create(target.temp());
  for (const auto& [name, tensor] : tensors) {
    const ElementType type = element_type_of(tensor, name);
    FFC_CHECK(!file.root().exists(name), "duplicate tensor name '" + name + "'");
    const at::Tensor host = tensor.detach().to(at::kCPU).contiguous();
    Dataset ds = file.root().create_dataset(name, type, host.sizes().vec());
    ds.write(type, host.data_ptr());
    ds.close();
  }
  for (const auto& [name, value] : root_attributes) {
    write_attribute(file.root().id(), name, value);
  }
  file.close();
  target.commit();
}

bool has_group(const std::string& path, const std::string& group) {
  File file = File::open_read(path);
  const std::string g = normalized_group(group);
  bool found = g == "/";
  if (!found) {
    found = H5Lexists(file.root().id(), g.c_str(), H5P_DEFAULT) > 0;
    error_stack_text();
  }
  file.close();
  return found;
}

NamedTensors read_tensors(const std::string& path, const std::string& group) {
  const std::string g = normalized_group(group);
  File file = File::open_read(path);
  NamedTensors out;
  {
    Group from = open_group(file, g);
    for (const std::string& name : from.dataset_names()) {
      Dataset ds = from.open_dataset(name);
      ElementType type;
      try {
        type = ds.element_type();
        if (type == ElementType::kUInt8) {  // bytes (a checkpoint's texts) are not tensors
          throw FormatError(
              "dataset element type is not float32, float64 or int64 (HDF5 class 0, 1 bytes)");
        }
      } catch (const FormatError& e) {
        throw FormatError(path + ": tensor '" + name + "'" +
                          (g == "/" ? std::string() : " of group '" + g + "'") + ": " + e.what());
      }
      at::Tensor t = at::empty(ds.dims(), at::TensorOptions().dtype(scalar_type_of(type)));
      ds.read(type, t.data_ptr());
      ds.close();
      out.emplace_back(name, std::move(t));
    }
    from.close();
  }
  file.close();
  return out;
}

Attributes read_root_attributes(const std::string& path) {
  File file = File::open_read(path);
  Attributes out = read_attributes(file.root().id());
  file.close();
  return out;
}

void load_tensors(const std::string& path, const NamedTensors& into, const std::string& group) {
  const std::string g = normalized_group(group);
  // "PATH: the file holds ..." for the root, "PATH (group '/probe'): holds ..." for a group.
  const std::string where = g == "/" ? path : path + " (group '" + g + "')";
  const std::string holder = g == "/" ? ": the file" : ":";
  File file = File::open_read(path);
  {
    Group from = open_group(file, g);
    const std::vector<std::string> names = from.dataset_names();
    std::map<std::string, size_t> wanted;
    for (size_t i = 0; i < into.size(); ++i) {
      wanted.emplace(into[i].first, i);
    }
    for (const std::string& name : names) {
      if (wanted.count(name) == 0) {
        throw FormatError(where + holder + " holds tensor '" + name +
                          "', which the model does not have (is it a file of another network?)");
      }
    }
    // Pass 1: names, shapes and types, before anything is written.
    const std::set<std::string> present(names.begin(), names.end());
    for (const auto& [name, tensor] : into) {
      if (present.count(name) == 0) {
        throw FormatError(where + holder + " lacks tensor '" + name + "' of shape " +
                          shape_string(tensor.sizes().vec()) +
                          " (is it a file of another network?)");
      }
      Dataset ds = from.open_dataset(name);
      const std::vector<int64_t> dims = ds.dims();
      if (dims != tensor.sizes().vec()) {
        throw FormatError(where + ": tensor '" + name + "' has shape " + shape_string(dims) +
                          " in the file but " + shape_string(tensor.sizes().vec()) +
                          " in the model");
      }
      const ElementType file_type = ds.element_type();
      const ElementType model_type = element_type_of(tensor, name);
      if (file_type != model_type) {
        throw FormatError(where + ": tensor '" + name + "' is " + element_type_name(file_type) +
                          " in the file but " + element_type_name(model_type) + " in the model");
      }
      ds.close();
    }
    // Pass 2: read and copy.
    at::NoGradGuard no_grad;
    for (const auto& [name, tensor] : into) {
      Dataset ds = from.open_dataset(name);
      const ElementType type = element_type_of(tensor, name);
      at::Tensor host = at::empty(tensor.sizes(), at::TensorOptions().dtype(tensor.scalar_type()));
      ds.read(type, host.data_ptr());
      ds.close();
      tensor.copy_(host);  // into the model's own storage, on its device
    }
    from.close();
  }
  file.close();
}

}  // namespace ffc::h5
