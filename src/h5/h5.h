#pragma once
// A small RAII layer over the HDF5 C API. Every HDF5 call goes through FFC_H5_CHECK, which turns
// a failed call into ffc::LibraryError (Library::kHdf5) through the choke point in common/error.h,
// with the text of HDF5's error stack as the reason. Handles close in their destructors (errors
// there are ignored, since destructors must not throw); close() closes explicitly and checks.
//
// Files use the serial (sec2) driver. HDF5's own printing of errors to stderr is turned off:
// errors reach the user once, as exceptions.

#include <hdf5.h>

#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "common/error.h"
#include "h5/library.h"

namespace ffc::h5 {

// The current HDF5 error stack of this thread as one line (innermost entries first), then clears
// the stack. Empty when the stack is empty.
std::string error_stack_text();

namespace detail {
// A failed HDF5 call returns a negative value (herr_t, hid_t, htri_t, hssize_t, H5T_class_t) or 0
// (functions returning size_t).
template <typename T>
constexpr bool failed(T rc) {
  if constexpr (std::is_unsigned_v<T>) {
    return rc == 0;
  } else {
    return rc < 0;
  }
}
}  // namespace detail

}  // namespace ffc::h5

// Calls an HDF5 function, throws ffc::LibraryError if it failed, else yields its return value:
//   hid_t file = FFC_H5_CHECK(H5Fopen(path, H5F_ACC_RDONLY, fapl));
#define FFC_H5_CHECK(expr)                                                                     \
  ([&]() {                                                                                     \
    const auto ffc_h5_rc_ = (expr);                                                            \
    if (::ffc::h5::detail::failed(ffc_h5_rc_)) {                                               \
      ::ffc::detail::raise_library_error(::ffc::Library::kHdf5, static_cast<long>(ffc_h5_rc_), \
                                         ::ffc::h5::error_stack_text(), #expr, __FILE__,       \
                                         __LINE__);                                            \
    }                                                                                          \
    return ffc_h5_rc_;                                                                         \
  }())

namespace ffc::h5 {

// Owns one HDF5 identifier and the function that closes it. Move-only.
class Object {
 public:
  using CloseFn = herr_t (*)(hid_t);
  Object() = default;
  Object(hid_t id, CloseFn close_fn) : id_(id), close_(close_fn) {}
  ~Object();
  Object(Object&& other) noexcept { swap(other); }
  Object& operator=(Object&& other) noexcept {
    Object(std::move(other)).swap(*this);
    return *this;
  }
  Object(const Object&) = delete;
  Object& operator=(const Object&) = delete;

  hid_t id() const { return id_; }
  bool valid() const { return id_ != H5I_INVALID_HID; }
  // Closes now and checks the result.
  void close();

 private:
  void swap(Object& other) noexcept {
    std::swap(id_, other.id_);
    std::swap(close_, other.close_);
  }
  hid_t id_ = H5I_INVALID_HID;
  CloseFn close_ = nullptr;
};

// An attribute value: 64-bit integer, double or UTF-8 string.
using AttributeValue = std::variant<int64_t, double, std::string>;
using Attributes = std::vector<std::pair<std::string, AttributeValue>>;
// "42", "0.5", "\"text\"", for messages.
std::string to_string(const AttributeValue& value);

// Attribute helpers on any object that carries attributes (file root, group, dataset).
void write_attribute(hid_t location, const std::string& name, const AttributeValue& value);
bool has_attribute(hid_t location, const std::string& name);
// Throws FormatError when the attribute is missing or of another kind.
AttributeValue read_attribute(hid_t location, const std::string& name);
Attributes read_attributes(hid_t location);  // all, in the location's iteration order

// Element types of datasets.
enum class ElementType { kFloat32, kFloat64, kInt64, kUInt8 };
const char* element_type_name(ElementType type);

class Dataset : public Object {
 public:
  Dataset() = default;
  Dataset(hid_t id) : Object(id, &H5Dclose) {}  // NOLINT: adopts an open dataset

  // dims empty: a scalar (0-dim) dataset.
  std::vector<int64_t> dims() const;
  // Throws FormatError for element types other than ElementType's.
  ElementType element_type() const;
  // Whole-dataset transfers; `data` holds product(dims) contiguous elements of `type`.
  void write(ElementType type, const void* data);
  void read(ElementType type, void* data) const;
  // Elements [first, first + count) of a 1-d dataset.
  void read_range(ElementType type, int64_t first, int64_t count, void* data) const;
};

// A group; the file root is the group "/".
class Group : public Object {
 public:
  Group() = default;
  Group(hid_t id) : Object(id, &H5Gclose) {}  // NOLINT: adopts an open group

  // Creates a dataset (contiguous layout) of the given element type and dims (empty: scalar).
  Dataset create_dataset(const std::string& name, ElementType type,
                         const std::vector<int64_t>& dims);
  Dataset open_dataset(const std::string& name) const;
  bool exists(const std::string& name) const;
  // Names of the datasets directly in this group, in creation order where the file tracks it
  // (files written by ffc do), else in name order.
  std::vector<std::string> dataset_names() const;
  // A 1-d dataset of variable-length UTF-8 strings (h5py reads it as str objects).
  void write_strings(const std::string& name, const std::vector<std::string>& values);
};

class File {
 public:
  // Creates (truncating) a file that tracks link creation order, so datasets read back in the
  // order they were written.
  static File create(const std::string& path);
  // Opens an existing file read-only. Throws IoError when the file does not exist and
  // FormatError when it is not an HDF5 file.
  static File open_read(const std::string& path);
  // Opens an existing HDF5 file for writing (serial driver); the same errors as open_read.
  static File open_write(const std::string& path);

  const std::string& path() const { return path_; }
  Group& root() { return root_; }
  const Group& root() const { return root_; }
  // Closes the root group and the file, checked. Fails if an object of the file is still open.
  void close();

 private:
  // Opens an existing HDF5 file with `flags` (H5F_ACC_RDONLY or H5F_ACC_RDWR).
  static File open(const std::string& path, unsigned flags);
  std::string path_;
  Object file_;
  Group root_;
};

}  // namespace ffc::h5
