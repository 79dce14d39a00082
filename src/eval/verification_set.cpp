#include "eval/verification_set.h"

#include <ATen/ATen.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "ckpt/h5.h"
#include "common/error.h"
#include "common/version.h"

namespace ffc::eval {
namespace h5 = ckpt::h5;

namespace {

std::string string_attribute(const h5::Attributes& attrs, const std::string& name) {
  for (const auto& [key, value] : attrs) {
    if (key == name) {
      if (const auto* s = std::get_if<std::string>(&value)) {
        return *s;
      }
    }
  }
  return "";
}

bool int_attribute(const h5::Attributes& attrs, const std::string& name, int64_t& out) {
  for (const auto& [key, value] : attrs) {
    if (key == name) {
      if (const auto* i = std::get_if<int64_t>(&value)) {
        out = *i;
        return true;
      }
    }
  }
  return false;
}

h5::Dataset create_u8(h5::Group& group, const std::string& name, int64_t n) {
  const hsize_t dims[1] = {static_cast<hsize_t>(n)};
  h5::Object space(FFC_H5_CHECK(H5Screate_simple(1, dims, nullptr)), &H5Sclose);
  h5::Dataset ds(FFC_H5_CHECK(H5Dcreate2(group.id(), name.c_str(), H5T_STD_U8LE, space.id(),
                                         H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)));
  space.close();
  return ds;
}

void check_u8(const h5::Dataset& ds, const std::string& where) {
  h5::Object type(FFC_H5_CHECK(H5Dget_type(ds.id())), &H5Tclose);
  if (FFC_H5_CHECK(H5Tget_class(type.id())) != H5T_INTEGER ||
      FFC_H5_CHECK(H5Tget_size(type.id())) != 1) {
    throw FormatError(where + " is not a uint8 dataset");
  }
}

void check_i64(const h5::Dataset& ds, const std::string& where) {
  h5::Object type(FFC_H5_CHECK(H5Dget_type(ds.id())), &H5Tclose);
  if (FFC_H5_CHECK(H5Tget_class(type.id())) != H5T_INTEGER ||
      FFC_H5_CHECK(H5Tget_size(type.id())) != 8) {
    throw FormatError(where + " is not an int64 dataset");
  }
}

// A 1-d dataset's length; FormatError if it is not 1-d.
int64_t length_of(const h5::Dataset& ds, const std::string& where) {
  const std::vector<int64_t> dims = ds.dims();
  if (dims.size() != 1) {
    throw FormatError(where + " is not one-dimensional");
  }
  return dims[0];
}

void check_consistent(const std::vector<int64_t>& offsets, size_t issame, int64_t bytes,
                      const std::string& where) {
  if (issame == 0) {
    throw FormatError(where + ": the set has no pairs");
  }
  if (offsets.size() != 2 * issame + 1) {
    throw FormatError(where + ": 'offsets' has " + std::to_string(offsets.size()) + " entries; " +
                      std::to_string(issame) + " pairs need " + std::to_string(2 * issame + 1) +
                      " (two images per pair, plus the end)");
  }
  if (offsets.front() != 0 || offsets.back() != bytes) {
    throw FormatError(where + ": 'offsets' must start at 0 and end at the size of 'images' (" +
                      std::to_string(bytes) + "), not " + std::to_string(offsets.front()) +
                      " and " + std::to_string(offsets.back()));
  }
  for (size_t i = 0; i + 1 < offsets.size(); ++i) {
    if (offsets[i + 1] <= offsets[i]) {
      throw FormatError(where + ": image " + std::to_string(i) +
                        " is empty or 'offsets' decreases there");
    }
  }
}

}  // namespace

void VerificationSet::add_image(const std::vector<uint8_t>& encoded) {
  bytes.insert(bytes.end(), encoded.begin(), encoded.end());
  offsets.push_back(static_cast<int64_t>(bytes.size()));
}

void write_verification_set(const std::string& path, const VerificationSet& set) {
  check_consistent(set.offsets, set.issame.size(), static_cast<int64_t>(set.bytes.size()),
                   "verification set '" + set.name + "'");
  const std::filesystem::path target(path);
  const std::filesystem::path dir =
      target.has_parent_path() ? target.parent_path() : std::filesystem::path(".");
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    throw IoError("cannot write '" + path + "': directory '" + dir.string() + "' does not exist");
  }
  const std::string tmp = path + ".tmp." + std::to_string(static_cast<long>(getpid()));
  try {
    h5::File file = h5::File::create(tmp);
    h5::Dataset images = create_u8(file.root(), "images", static_cast<int64_t>(set.bytes.size()));
    FFC_H5_CHECK(
        H5Dwrite(images.id(), H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, set.bytes.data()));
    images.close();
    h5::Dataset offsets = file.root().create_dataset("offsets", h5::ElementType::kInt64,
                                                     {static_cast<int64_t>(set.offsets.size())});
    offsets.write(h5::ElementType::kInt64, set.offsets.data());
    offsets.close();
    h5::Dataset issame = create_u8(file.root(), "issame", set.pairs());
    FFC_H5_CHECK(
        H5Dwrite(issame.id(), H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, set.issame.data()));
    issame.close();
    const hid_t root = file.root().id();
    h5::write_attribute(root, "format", std::string(kVerificationSetFormat));
    h5::write_attribute(root, "format_version", kVerificationSetFormatVersion);
    h5::write_attribute(root, "name", set.name);
    h5::write_attribute(root, "image_size", set.image_size);
    h5::write_attribute(root, "pairs", set.pairs());
    h5::write_attribute(root, "source", set.source);
    h5::write_attribute(root, "producer",
                        "ffc " + project_version() + " (git " + git_revision() + ")");
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

struct VerificationSetFile::Handle {
  h5::File file;
  h5::Dataset images;
};

VerificationSetFile::VerificationSetFile(const std::string& path) : path_(path) {
  h5::File file = h5::File::open_read(path);
  const h5::Attributes attrs = h5::read_attributes(file.root().id());
  const std::string format = string_attribute(attrs, "format");
  if (format != kVerificationSetFormat) {
    throw FormatError(path + ": not an ffc verification set (root attribute format is '" + format +
                      "', expected '" + kVerificationSetFormat +
                      "'); convert insightface .bin files with tools/bin2ffc.py");
  }
  int64_t version = 0;
  if (!int_attribute(attrs, "format_version", version) || version > kVerificationSetFormatVersion) {
    throw FormatError(path + ": format_version " + std::to_string(version) +
                      " is missing or newer than this ffc reads (" +
                      std::to_string(kVerificationSetFormatVersion) + ")");
  }
  name_ = string_attribute(attrs, "name");
  if (name_.empty()) {
    name_ = std::filesystem::path(path).stem().string();
  }
  int_attribute(attrs, "image_size", image_size_);
  for (const char* needed : {"images", "offsets", "issame"}) {
    if (!file.root().exists(needed)) {
      throw FormatError(path + ": dataset '" + needed + "' is missing");
    }
  }
  h5::Dataset offsets = file.root().open_dataset("offsets");
  check_i64(offsets, path + ": 'offsets'");
  offsets_.resize(static_cast<size_t>(length_of(offsets, path + ": 'offsets'")));
  if (!offsets_.empty()) {
    offsets.read(h5::ElementType::kInt64, offsets_.data());
  }
  offsets.close();
  h5::Dataset issame = file.root().open_dataset("issame");
  check_u8(issame, path + ": 'issame'");
  issame_.resize(static_cast<size_t>(length_of(issame, path + ": 'issame'")));
  if (!issame_.empty()) {
    FFC_H5_CHECK(
        H5Dread(issame.id(), H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, issame_.data()));
  }
  issame.close();
  for (uint8_t& x : issame_) {
    x = x != 0;
  }
  h5::Dataset images = file.root().open_dataset("images");
  check_u8(images, path + ": 'images'");
  check_consistent(offsets_, issame_.size(), length_of(images, path + ": 'images'"), path);
  handle_ = std::make_unique<Handle>(Handle{std::move(file), std::move(images)});
}

VerificationSetFile::~VerificationSetFile() = default;

std::vector<uint8_t> VerificationSetFile::read_bytes(int64_t begin, int64_t end) const {
  FFC_CHECK(begin >= 0 && begin <= end && end <= images(),
            path_ + ": image range [" + std::to_string(begin) + ", " + std::to_string(end) +
                ") is out of range");
  const int64_t first = offsets_[static_cast<size_t>(begin)];
  const int64_t count = offsets_[static_cast<size_t>(end)] - first;
  std::vector<uint8_t> out(static_cast<size_t>(count));
  if (count == 0) {
    return out;
  }
  const hsize_t start[1] = {static_cast<hsize_t>(first)};
  const hsize_t n[1] = {static_cast<hsize_t>(count)};
  h5::Object file_space(FFC_H5_CHECK(H5Dget_space(handle_->images.id())), &H5Sclose);
  FFC_H5_CHECK(H5Sselect_hyperslab(file_space.id(), H5S_SELECT_SET, start, nullptr, n, nullptr));
  h5::Object mem_space(FFC_H5_CHECK(H5Screate_simple(1, n, nullptr)), &H5Sclose);
  FFC_H5_CHECK(H5Dread(handle_->images.id(), H5T_NATIVE_UINT8, mem_space.id(), file_space.id(),
                       H5P_DEFAULT, out.data()));
  return out;
}

VerificationSet VerificationSetFile::read_all() const {
  VerificationSet set;
  set.name = name_;
  set.image_size = image_size_;
  set.source = path_;
  set.bytes = read_bytes(0, images());
  set.offsets = offsets_;
  set.issame = issame_;
  return set;
}

ImageFiller set_file_filler(const VerificationSetFile& file, int64_t image_size,
                            data::ColorOrder order, const InputNorm& norm) {
  auto decoder = std::make_shared<data::JpegDecoder>();
  auto pixels = std::make_shared<std::vector<uint8_t>>(static_cast<size_t>(image_size) *
                                                       static_cast<size_t>(image_size) * 3);
  const VerificationSetFile* f = &file;
  return [f, decoder, pixels, image_size, order, norm](int64_t begin, int64_t end,
                                                       const at::Tensor& out) {
    const std::vector<uint8_t> bytes = f->read_bytes(begin, end);
    const int64_t base = f->offsets()[static_cast<size_t>(begin)];
    const int s = static_cast<int>(image_size);
    for (int64_t i = begin; i < end; ++i) {
      const int64_t off = f->offsets()[static_cast<size_t>(i)] - base;
      const int64_t size = f->offsets()[static_cast<size_t>(i) + 1] - base - off;
      decoder->decode(
          bytes.data() + off, static_cast<size_t>(size), s, s, order,
          /*resize=*/true, pixels->data(),
          f->path() + ": image " + std::to_string(i) + " (pair " + std::to_string(i / 2) + ")");
      normalize_pixels(pixels->data(), s, /*mirror=*/false, norm, out[i - begin].data_ptr<float>());
    }
  };
}

VerificationSet synthetic_set(const data::SyntheticSource& source, const SyntheticPairs& pairs,
                              const std::string& name, int quality) {
  data::SyntheticSpec spec = source.spec();
  spec.color_order = data::ColorOrder::kRgb;  // JPEG files hold RGB
  const data::SyntheticSource rgb(spec);
  const int s = rgb.image_size();
  VerificationSet set;
  set.name = name;
  set.image_size = s;
  set.source = "synthetic: " + rgb.describe() + ", held-out identities";
  std::vector<uint8_t> px(static_cast<size_t>(s) * static_cast<size_t>(s) * 3);
  std::vector<float> scratch;
  std::vector<uint8_t> jpeg;
  data::JpegEncoder encoder;
  for (size_t k = 0; k < pairs.same.size(); ++k) {
    rgb.render(pairs.label_a[k], pairs.image_a[k], px.data(), scratch);
    encoder.encode(px.data(), s, s, quality, jpeg);
    set.add_image(jpeg);
    rgb.render(pairs.label_b[k], pairs.image_b[k], px.data(), scratch);
    encoder.encode(px.data(), s, s, quality, jpeg);
    set.add_image(jpeg);
    set.issame.push_back(pairs.same[k]);
  }
  return set;
}

}  // namespace ffc::eval
