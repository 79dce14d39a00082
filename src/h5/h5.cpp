#include "h5/h5.h"

#include <cstdio>
#include <filesystem>
#include <functional>

namespace ffc::h5 {
namespace {

// Turns off HDF5's printing of error stacks to stderr (our exceptions carry the text instead).
void silence_hdf5() {
  static const bool done = [] {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    return true;
  }();
  (void)done;
}

struct StackText {
  std::vector<std::string> entries;
};

herr_t collect_entry(unsigned /*n*/, const H5E_error2_t* err, void* data) {
  auto* text = static_cast<StackText*>(data);
  std::string entry = err->desc != nullptr ? err->desc : "";
  char minor[128] = {0};
  if (H5Eget_msg(err->min_num, nullptr, minor, sizeof(minor)) > 0 && entry.find(minor) == 0) {
    // The description already starts with the minor message.
  } else if (minor[0] != '\0') {
    entry = entry.empty() ? std::string(minor) : entry + " [" + minor + "]";
  }
  if (err->func_name != nullptr) {
    entry += " in " + std::string(err->func_name);
  }
  text->entries.push_back(entry);
  return 0;
}

hid_t file_type_of(ElementType type) {
  switch (type) {
    case ElementType::kFloat32:
      return H5T_IEEE_F32LE;
    case ElementType::kFloat64:
      return H5T_IEEE_F64LE;
    case ElementType::kInt64:
      return H5T_STD_I64LE;
    case ElementType::kUInt8:
      return H5T_STD_U8LE;
  }
  return H5T_IEEE_F32LE;
}

hid_t memory_type_of(ElementType type) {
  switch (type) {
    case ElementType::kFloat32:
      return H5T_NATIVE_FLOAT;
    case ElementType::kFloat64:
      return H5T_NATIVE_DOUBLE;
    case ElementType::kInt64:
      return H5T_NATIVE_INT64;
    case ElementType::kUInt8:
      return H5T_NATIVE_UINT8;
  }
  return H5T_NATIVE_FLOAT;
}

Object make_dataspace(const std::vector<int64_t>& dims) {
  if (dims.empty()) {
    return Object(FFC_H5_CHECK(H5Screate(H5S_SCALAR)), &H5Sclose);
  }
  std::vector<hsize_t> h(dims.begin(), dims.end());
  return Object(FFC_H5_CHECK(H5Screate_simple(static_cast<int>(h.size()), h.data(), nullptr)),
                &H5Sclose);
}

Object utf8_string_type() {
  Object type(FFC_H5_CHECK(H5Tcopy(H5T_C_S1)), &H5Tclose);
  FFC_H5_CHECK(H5Tset_size(type.id(), H5T_VARIABLE));
  FFC_H5_CHECK(H5Tset_cset(type.id(), H5T_CSET_UTF8));
  return type;
}

Object file_access_list() {
  Object fapl(FFC_H5_CHECK(H5Pcreate(H5P_FILE_ACCESS)), &H5Pclose);
  FFC_H5_CHECK(H5Pset_fapl_sec2(fapl.id()));
  // Closing the file fails while one of its objects is still open, instead of silently keeping
  // the file open (a missed close would otherwise surface as a truncated file).
  FFC_H5_CHECK(H5Pset_fclose_degree(fapl.id(), H5F_CLOSE_SEMI));
  // Lock, except on file systems where locking is disabled (some NFS / Lustre mounts).
  FFC_H5_CHECK(H5Pset_file_locking(fapl.id(), true, true));
  return fapl;
}

}  // namespace

std::string error_stack_text() {
  StackText text;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, &collect_entry, &text);
  H5Eclear2(H5E_DEFAULT);
  std::string out;
  // The innermost entries say what went wrong; the outer ones repeat it in general terms.
  const size_t keep = std::min<size_t>(text.entries.size(), 3);
  for (size_t i = 0; i < keep; ++i) {
    out += (i ? "; " : "") + text.entries[i];
  }
  return out;
}

Object::~Object() {
  if (valid() && close_ != nullptr) {
    close_(id_);  // Errors cannot be reported from a destructor; close() reports them.
    H5Eclear2(H5E_DEFAULT);
  }
}

void Object::close() {
  if (valid() && close_ != nullptr) {
    const hid_t id = id_;
    id_ = H5I_INVALID_HID;
    FFC_H5_CHECK(close_(id));
  }
}

std::string to_string(const AttributeValue& value) {
  if (const auto* i = std::get_if<int64_t>(&value)) {
    return std::to_string(*i);
  }
  if (const auto* d = std::get_if<double>(&value)) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%.17g", *d);
    return buf;
  }
  return "\"" + std::get<std::string>(value) + "\"";
}

void write_attribute(hid_t location, const std::string& name, const AttributeValue& value) {
  Object space(FFC_H5_CHECK(H5Screate(H5S_SCALAR)), &H5Sclose);
  if (const auto* i = std::get_if<int64_t>(&value)) {
    Object attr(FFC_H5_CHECK(H5Acreate2(location, name.c_str(), H5T_STD_I64LE, space.id(),
                                        H5P_DEFAULT, H5P_DEFAULT)),
                &H5Aclose);
    FFC_H5_CHECK(H5Awrite(attr.id(), H5T_NATIVE_INT64, i));
    attr.close();
  } else if (const auto* d = std::get_if<double>(&value)) {
    Object attr(FFC_H5_CHECK(H5Acreate2(location, name.c_str(), H5T_IEEE_F64LE, space.id(),
                                        H5P_DEFAULT, H5P_DEFAULT)),
                &H5Aclose);
    FFC_H5_CHECK(H5Awrite(attr.id(), H5T_NATIVE_DOUBLE, d));
    attr.close();
  } else {
    const std::string& s = std::get<std::string>(value);
    Object type = utf8_string_type();
    Object attr(FFC_H5_CHECK(H5Acreate2(location, name.c_str(), type.id(), space.id(), H5P_DEFAULT,
                                        H5P_DEFAULT)),
                &H5Aclose);
    const char* ptr = s.c_str();
    FFC_H5_CHECK(H5Awrite(attr.id(), type.id(), &ptr));
    attr.close();
  }
  space.close();
}

bool has_attribute(hid_t location, const std::string& name) {
  return FFC_H5_CHECK(H5Aexists(location, name.c_str())) > 0;
}

AttributeValue read_attribute(hid_t location, const std::string& name) {
  if (!has_attribute(location, name)) {
    throw FormatError("HDF5 attribute '" + name + "' is missing");
  }
  Object attr(FFC_H5_CHECK(H5Aopen(location, name.c_str(), H5P_DEFAULT)), &H5Aclose);
  Object type(FFC_H5_CHECK(H5Aget_type(attr.id())), &H5Tclose);
  Object space(FFC_H5_CHECK(H5Aget_space(attr.id())), &H5Sclose);
  if (FFC_H5_CHECK(H5Sget_simple_extent_npoints(space.id())) != 1) {
    throw FormatError("HDF5 attribute '" + name + "' is not a single value");
  }
  const H5T_class_t cls = FFC_H5_CHECK(H5Tget_class(type.id()));
  if (cls == H5T_INTEGER) {
    int64_t v = 0;
    FFC_H5_CHECK(H5Aread(attr.id(), H5T_NATIVE_INT64, &v));
    return v;
  }
  if (cls == H5T_FLOAT) {
    double v = 0;
    FFC_H5_CHECK(H5Aread(attr.id(), H5T_NATIVE_DOUBLE, &v));
    return v;
  }
  if (cls == H5T_STRING) {
    if (FFC_H5_CHECK(H5Tis_variable_str(type.id())) > 0) {
      Object mem = utf8_string_type();
      char* ptr = nullptr;
      FFC_H5_CHECK(H5Aread(attr.id(), mem.id(), &ptr));
      std::string s = ptr != nullptr ? ptr : "";
      FFC_H5_CHECK(H5free_memory(ptr));
      return s;
    }
    const size_t size = FFC_H5_CHECK(H5Tget_size(type.id()));
    std::string s(size, '\0');
    FFC_H5_CHECK(H5Aread(attr.id(), type.id(), s.data()));
    s.resize(s.find('\0') == std::string::npos ? s.size() : s.find('\0'));
    return s;
  }
  throw FormatError("HDF5 attribute '" + name +
                    "' is neither an integer, a float nor a string; ffc cannot read it");
}

namespace {
struct AttributeNames {
  std::vector<std::string> names;
};
herr_t collect_attribute(hid_t /*loc*/, const char* name, const H5A_info_t* /*info*/, void* data) {
  static_cast<AttributeNames*>(data)->names.emplace_back(name);
  return 0;
}
}  // namespace

Attributes read_attributes(hid_t location) {
  AttributeNames names;
  FFC_H5_CHECK(
      H5Aiterate2(location, H5_INDEX_NAME, H5_ITER_INC, nullptr, &collect_attribute, &names));
  Attributes out;
  for (const auto& n : names.names) {
    out.emplace_back(n, read_attribute(location, n));
  }
  return out;
}

const char* element_type_name(ElementType type) {
  switch (type) {
    case ElementType::kFloat32:
      return "float32";
    case ElementType::kFloat64:
      return "float64";
    case ElementType::kInt64:
      return "int64";
    case ElementType::kUInt8:
      return "uint8";
  }
  return "unknown";
}

std::vector<int64_t> Dataset::dims() const {
  Object space(FFC_H5_CHECK(H5Dget_space(id())), &H5Sclose);
  const int rank = FFC_H5_CHECK(H5Sget_simple_extent_ndims(space.id()));
  std::vector<hsize_t> h(static_cast<size_t>(rank));
  if (rank > 0) {
    FFC_H5_CHECK(H5Sget_simple_extent_dims(space.id(), h.data(), nullptr));
  }
  return std::vector<int64_t>(h.begin(), h.end());
}

ElementType Dataset::element_type() const {
  Object type(FFC_H5_CHECK(H5Dget_type(id())), &H5Tclose);
  const H5T_class_t cls = FFC_H5_CHECK(H5Tget_class(type.id()));
  const size_t size = FFC_H5_CHECK(H5Tget_size(type.id()));
  if (cls == H5T_FLOAT && size == 4) {
    return ElementType::kFloat32;
  }
  if (cls == H5T_FLOAT && size == 8) {
    return ElementType::kFloat64;
  }
  if (cls == H5T_INTEGER && size == 8 && FFC_H5_CHECK(H5Tget_sign(type.id())) == H5T_SGN_2) {
    return ElementType::kInt64;
  }
  if (cls == H5T_INTEGER && size == 1) {
    return ElementType::kUInt8;
  }
  throw FormatError("dataset element type is not float32, float64, int64 or uint8 (HDF5 class " +
                    std::to_string(static_cast<int>(cls)) + ", " + std::to_string(size) +
                    " bytes)");
}

void Dataset::write(ElementType type, const void* data) {
  FFC_H5_CHECK(H5Dwrite(id(), memory_type_of(type), H5S_ALL, H5S_ALL, H5P_DEFAULT, data));
}

void Dataset::read(ElementType type, void* data) const {
  FFC_H5_CHECK(H5Dread(id(), memory_type_of(type), H5S_ALL, H5S_ALL, H5P_DEFAULT, data));
}

void Dataset::read_range(ElementType type, int64_t first, int64_t count, void* data) const {
  if (count == 0) {
    return;
  }
  const hsize_t start[1] = {static_cast<hsize_t>(first)};
  const hsize_t n[1] = {static_cast<hsize_t>(count)};
  Object file_space(FFC_H5_CHECK(H5Dget_space(id())), &H5Sclose);
  FFC_H5_CHECK(H5Sselect_hyperslab(file_space.id(), H5S_SELECT_SET, start, nullptr, n, nullptr));
  Object mem_space(FFC_H5_CHECK(H5Screate_simple(1, n, nullptr)), &H5Sclose);
  FFC_H5_CHECK(
      H5Dread(id(), memory_type_of(type), mem_space.id(), file_space.id(), H5P_DEFAULT, data));
}

std::string library_version() {
  unsigned maj = 0, min = 0, rel = 0;
  H5get_libversion(&maj, &min, &rel);
  std::string out = std::to_string(maj) + "." + std::to_string(min) + "." + std::to_string(rel);
#if defined(H5_HAVE_PARALLEL)
  return out + " (parallel)";
#else
  return out + " (serial)";
#endif
}

int64_t open_file_count() {
  return static_cast<int64_t>(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_FILE));
}

void shut_down() {
  H5close();
}

Dataset Group::create_dataset(const std::string& name, ElementType type,
                              const std::vector<int64_t>& dims) {
  Object space = make_dataspace(dims);
  // Intermediate groups are never created: state-dict keys with dots stay flat names.
  Dataset ds(FFC_H5_CHECK(H5Dcreate2(id(), name.c_str(), file_type_of(type), space.id(),
                                     H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)));
  space.close();
  return ds;
}

Dataset Group::open_dataset(const std::string& name) const {
  return Dataset(FFC_H5_CHECK(H5Dopen2(id(), name.c_str(), H5P_DEFAULT)));
}

bool Group::exists(const std::string& name) const {
  return FFC_H5_CHECK(H5Lexists(id(), name.c_str(), H5P_DEFAULT)) > 0;
}

namespace {
struct LinkNames {
  std::vector<std::string> names;
};
// H5L_info_t and H5Literate name the API version the library defaults to (1.10, 1.12, 1.14).
herr_t collect_dataset(hid_t group, const char* name, const H5L_info_t* /*info*/, void* data) {
  // Errors inside an iteration callback fail the whole H5Literate call, which is checked.
  const hid_t object = H5Oopen(group, name, H5P_DEFAULT);
  if (object < 0) {
    return -1;
  }
  const H5I_type_t type = H5Iget_type(object);
  if (H5Oclose(object) < 0 || type == H5I_BADID) {
    return -1;
  }
  if (type == H5I_DATASET) {
    static_cast<LinkNames*>(data)->names.emplace_back(name);
  }
  return 0;
}
}  // namespace

std::vector<std::string> Group::dataset_names() const {
  Object gcpl(FFC_H5_CHECK(H5Gget_create_plist(id())), &H5Pclose);
  unsigned flags = 0;
  FFC_H5_CHECK(H5Pget_link_creation_order(gcpl.id(), &flags));
  const H5_index_t index =
      (flags & H5P_CRT_ORDER_INDEXED) != 0 ? H5_INDEX_CRT_ORDER : H5_INDEX_NAME;
  LinkNames names;
  FFC_H5_CHECK(H5Literate(id(), index, H5_ITER_INC, nullptr, &collect_dataset, &names));
  return names.names;
}

File File::create(const std::string& path) {
  silence_hdf5();
  Object fcpl(FFC_H5_CHECK(H5Pcreate(H5P_FILE_CREATE)), &H5Pclose);
  FFC_H5_CHECK(
      H5Pset_link_creation_order(fcpl.id(), H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED));
  Object fapl = file_access_list();
  File f;
  f.path_ = path;
  f.file_ =
      Object(FFC_H5_CHECK(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, fcpl.id(), fapl.id())), &H5Fclose);
  f.root_ = Group(FFC_H5_CHECK(H5Gopen2(f.file_.id(), "/", H5P_DEFAULT)));
  return f;
}

File File::open(const std::string& path, unsigned flags) {
  silence_hdf5();
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    throw IoError("cannot open '" + path + "': no such file");
  }
  if (FFC_H5_CHECK(H5Fis_hdf5(path.c_str())) == 0) {
    throw FormatError("'" + path + "' is not an HDF5 file");
  }
  Object fapl = file_access_list();
  File f;
  f.path_ = path;
  f.file_ = Object(FFC_H5_CHECK(H5Fopen(path.c_str(), flags, fapl.id())), &H5Fclose);
  f.root_ = Group(FFC_H5_CHECK(H5Gopen2(f.file_.id(), "/", H5P_DEFAULT)));
  return f;
}

File File::open_read(const std::string& path) {
  return open(path, H5F_ACC_RDONLY);
}

File File::open_write(const std::string& path) {
  return open(path, H5F_ACC_RDWR);
}

void Group::write_strings(const std::string& name, const std::vector<std::string>& values) {
  const Object type = utf8_string_type();
  const Object space = make_dataspace({static_cast<int64_t>(values.size())});
  Dataset d(FFC_H5_CHECK(H5Dcreate2(id(), name.c_str(), type.id(), space.id(), H5P_DEFAULT,
                                    H5P_DEFAULT, H5P_DEFAULT)));
  std::vector<const char*> pointers;
  pointers.reserve(values.size());
  for (const std::string& v : values) {
    pointers.push_back(v.c_str());
  }
  if (!values.empty()) {
    FFC_H5_CHECK(H5Dwrite(d.id(), type.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, pointers.data()));
  }
  d.close();
}

void File::close() {
  root_.close();
  file_.close();
}

}  // namespace ffc::h5
