#include "eval/verification_set.h"

#include <ATen/ATen.h>

#include <cstdio>
#include <filesystem>
#include <functional>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/version.h"
#include "h5/h5.h"

namespace ffc::eval {

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

void write_u8(h5::Group& group, const std::string& name, const std::vector<uint8_t>& v) {
  h5::Dataset ds =
      group.create_dataset(name, h5::ElementType::kUInt8, {static_cast<int64_t>(v.size())});
  ds.write(h5::ElementType::kUInt8, v.data());
  ds.close();
}

void check_type(const h5::Dataset& ds, h5::ElementType want, const std::string& where) {
  bool ok = false;
  try {
    ok = ds.element_type() == want;
  } catch (const FormatError&) {
  }
  if (!ok) {
    throw FormatError(where + " is not " + (want == h5::ElementType::kUInt8 ? "a " : "an ") +
                      h5::element_type_name(want) + " dataset");
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

void check_offsets(const std::vector<int64_t>& offsets, int64_t expected_images, int64_t bytes,
                   const std::string& why, const std::string& where) {
  if (static_cast<int64_t>(offsets.size()) != expected_images + 1) {
    throw FormatError(where + ": 'offsets' has " + std::to_string(offsets.size()) + " entries; " +
                      why);
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

void check_consistent(const std::vector<int64_t>& offsets, size_t issame, int64_t bytes,
                      const std::string& where) {
  if (issame == 0) {
    throw FormatError(where + ": the set has no pairs");
  }
  check_offsets(offsets, static_cast<int64_t>(2 * issame), bytes,
                std::to_string(issame) + " pairs need " + std::to_string(2 * issame + 1) +
                    " (two images per pair, plus the end)",
                where);
}

}  // namespace

void VerificationSet::add_image(const std::vector<uint8_t>& encoded) {
  bytes.insert(bytes.end(), encoded.begin(), encoded.end());
  offsets.push_back(static_cast<int64_t>(bytes.size()));
}

void LongtailSet::add_image(const std::vector<uint8_t>& encoded) {
  bytes.insert(bytes.end(), encoded.begin(), encoded.end());
  offsets.push_back(static_cast<int64_t>(bytes.size()));
}

namespace {

// The common part of every set file writer: `images` and `offsets`, then the caller's datasets,
// the root attributes (format, format_version, name, image_size, the caller's, source, producer,
// flip = 0 where set), written to a temporary file in the same folder and renamed into place.
struct SetFileHeader {
  const char* format;
  int64_t version;
  std::string name;
  int64_t image_size;
  std::string source;
  bool flip;
};

void write_set_file(const std::string& path, const SetFileHeader& header,
                    const std::vector<uint8_t>& bytes, const std::vector<int64_t>& offsets_in,
                    const std::function<void(h5::Group&)>& datasets,
                    const std::function<void(hid_t)>& attributes) {
  AtomicFile target(path);
  h5::File file = h5::File::create(target.temp());
  write_u8(file.root(), "images", bytes);
  h5::Dataset offsets = file.root().create_dataset("offsets", h5::ElementType::kInt64,
                                                   {static_cast<int64_t>(offsets_in.size())});
  offsets.write(h5::ElementType::kInt64, offsets_in.data());
  offsets.close();
  datasets(file.root());
  const hid_t root = file.root().id();
  h5::write_attribute(root, "format", std::string(header.format));
  h5::write_attribute(root, "format_version", header.version);
  h5::write_attribute(root, "name", header.name);
  h5::write_attribute(root, "image_size", header.image_size);
  attributes(root);
  h5::write_attribute(root, "source", header.source);
  h5::write_attribute(root, "producer",
                      "ffc " + project_version() + " (git " + git_revision() + ")");
  if (!header.flip) {
    h5::write_attribute(root, "flip", int64_t{0});
  }
  file.close();
  target.commit();
}

void write_i64(h5::Group& group, const std::string& name, const std::vector<int64_t>& values) {
  h5::Dataset ds =
      group.create_dataset(name, h5::ElementType::kInt64, {static_cast<int64_t>(values.size())});
  ds.write(h5::ElementType::kInt64, values.data());
  ds.close();
}

}  // namespace

void write_verification_set(const std::string& path, const VerificationSet& set) {
  check_consistent(set.offsets, set.issame.size(), static_cast<int64_t>(set.bytes.size()),
                   "verification set '" + set.name + "'");
  write_set_file(
      path,
      {kVerificationSetFormat, kVerificationSetFormatVersion, set.name, set.image_size, set.source,
       set.flip},
      set.bytes, set.offsets, [&](h5::Group& root) { write_u8(root, "issame", set.issame); },
      [&](hid_t root) { h5::write_attribute(root, "pairs", set.pairs()); });
}

void write_longtail_set(const std::string& path, const LongtailSet& set) {
  const auto m = static_cast<int64_t>(set.labels.size());
  FFC_CHECK(static_cast<int64_t>(set.train_images.size()) == m && set.population.size() == 5 &&
                static_cast<int64_t>(set.offsets.size()) == 2 * m + 1,
            "long-tail set '" + set.name +
                "': one count per identity, 5 population entries, two images per identity");
  check_offsets(set.offsets, 2 * m, static_cast<int64_t>(set.bytes.size()),
                "two images per identity", "long-tail set '" + set.name + "'");
  write_set_file(
      path,
      {kLongtailSetFormat, kLongtailSetFormatVersion, set.name, set.image_size, set.source,
       set.flip},
      set.bytes, set.offsets,
      [&](h5::Group& root) {
        write_i64(root, "labels", set.labels);
        write_i64(root, "train_images", set.train_images);
        write_i64(root, "population", set.population);
      },
      [&](hid_t root) {
        h5::write_attribute(root, "identities", m);
        h5::write_attribute(root, "seed", static_cast<int64_t>(set.seed));
      });
}

struct SetFile::Handle {
  h5::File file;
  h5::Dataset images;
};

SetFile::SetFile(const std::string& path, const char* format, int64_t version,
                 const std::string& hint)
    : path_(path) {
  h5::File file = h5::File::open_read(path);
  const h5::Attributes attrs = h5::read_attributes(file.root().id());
  const std::string found = string_attribute(attrs, "format");
  if (found != format) {
    throw FormatError(
        path + ": not an ffc " +
        (std::string(format) == kVerificationSetFormat ? "verification" : "long-tail") +
        " set (root attribute format is '" + found + "', expected '" + format + "'); " + hint);
  }
  int64_t v = 0;
  if (!ffc::eval::int_attribute(attrs, "format_version", v) || v > version) {
    throw FormatError(path + ": format_version " + std::to_string(v) +
                      " is missing or newer than this ffc reads (" + std::to_string(version) + ")");
  }
  name_ = string_attribute(attrs, "name");
  if (name_.empty()) {
    name_ = std::filesystem::path(path).stem().string();
  }
  ffc::eval::int_attribute(attrs, "image_size", image_size_);
  int64_t flip = 1;
  ffc::eval::int_attribute(attrs, "flip", flip);
  flip_allowed_ = flip != 0;
  for (const char* needed : {"images", "offsets"}) {
    if (!file.root().exists(needed)) {
      throw FormatError(path + ": dataset '" + needed + "' is missing");
    }
  }
  h5::Dataset images = file.root().open_dataset("images");
  check_type(images, h5::ElementType::kUInt8, path + ": 'images'");
  handle_ = std::make_unique<Handle>(Handle{std::move(file), std::move(images)});
  offsets_ = read_int64("offsets");
}

SetFile::~SetFile() = default;

std::string SetFile::image_note(int64_t image) const {
  return "image " + std::to_string(image);
}

std::vector<int64_t> SetFile::read_int64(const std::string& dataset) const {
  if (!handle_->file.root().exists(dataset)) {
    throw FormatError(path_ + ": dataset '" + dataset + "' is missing");
  }
  h5::Dataset ds = handle_->file.root().open_dataset(dataset);
  const std::string where = path_ + ": '" + dataset + "'";
  check_type(ds, h5::ElementType::kInt64, where);
  std::vector<int64_t> out(static_cast<size_t>(length_of(ds, where)));
  if (!out.empty()) {
    ds.read(h5::ElementType::kInt64, out.data());
  }
  return out;
}

std::vector<uint8_t> SetFile::read_uint8(const std::string& dataset) const {
  if (!handle_->file.root().exists(dataset)) {
    throw FormatError(path_ + ": dataset '" + dataset + "' is missing");
  }
  h5::Dataset ds = handle_->file.root().open_dataset(dataset);
  const std::string where = path_ + ": '" + dataset + "'";
  check_type(ds, h5::ElementType::kUInt8, where);
  std::vector<uint8_t> out(static_cast<size_t>(length_of(ds, where)));
  if (!out.empty()) {
    ds.read(h5::ElementType::kUInt8, out.data());
  }
  return out;
}

int64_t SetFile::int_attribute(const std::string& name, int64_t fallback) const {
  int64_t v = fallback;
  ffc::eval::int_attribute(h5::read_attributes(handle_->file.root().id()), name, v);
  return v;
}

void SetFile::check_images(int64_t expected, const std::string& why) const {
  check_offsets(offsets_, expected, length_of(handle_->images, path_ + ": 'images'"), why, path_);
}

std::vector<uint8_t> SetFile::read_bytes(int64_t begin, int64_t end) const {
  FFC_CHECK(begin >= 0 && begin <= end && end <= images(),
            path_ + ": image range [" + std::to_string(begin) + ", " + std::to_string(end) +
                ") is out of range");
  const int64_t first = offsets_[static_cast<size_t>(begin)];
  const int64_t count = offsets_[static_cast<size_t>(end)] - first;
  std::vector<uint8_t> out(static_cast<size_t>(count));
  handle_->images.read_range(h5::ElementType::kUInt8, first, count, out.data());
  return out;
}

std::string set_file_format(const std::string& path) {
  h5::File file = h5::File::open_read(path);
  return string_attribute(h5::read_attributes(file.root().id()), "format");
}

VerificationSetFile::VerificationSetFile(const std::string& path)
    : SetFile(path, kVerificationSetFormat, kVerificationSetFormatVersion,
              "convert insightface .bin files with tools/bin2ffc.py") {
  issame_ = read_uint8("issame");
  for (uint8_t& x : issame_) {
    x = x != 0;
  }
  if (issame_.empty()) {
    throw FormatError(path + ": the set has no pairs");
  }
  check_images(2 * pairs(), std::to_string(pairs()) + " pairs need " +
                                std::to_string(2 * pairs() + 1) +
                                " (two images per pair, plus the end)");
}

std::string VerificationSetFile::image_note(int64_t image) const {
  return "image " + std::to_string(image) + " (pair " + std::to_string(image / 2) + ")";
}

VerificationSet VerificationSetFile::read_all() const {
  VerificationSet set;
  set.name = name();
  set.image_size = image_size();
  set.source = path();
  set.flip = flip_allowed();
  set.bytes = read_bytes(0, images());
  set.offsets = offsets();
  set.issame = issame_;
  return set;
}

LongtailSetFile::LongtailSetFile(const std::string& path)
    : SetFile(path, kLongtailSetFormat, kLongtailSetFormatVersion,
              "tools/ffc_glyphs.py writes one beside a glyph set (tools/ffc_longtail.py)") {
  labels_ = read_int64("labels");
  train_images_ = read_int64("train_images");
  population_ = read_int64("population");
  seed_ = static_cast<uint64_t>(int_attribute("seed", 0));
  const auto m = static_cast<int64_t>(labels_.size());
  if (m < 2) {
    throw FormatError(path + ": 'labels' holds " + std::to_string(m) +
                      " identities; the breakdown needs at least 2");
  }
  if (static_cast<int64_t>(train_images_.size()) != m) {
    throw FormatError(path + ": 'train_images' has " + std::to_string(train_images_.size()) +
                      " entries for " + std::to_string(m) + " identities in 'labels'");
  }
  if (population_.size() != 5) {
    throw FormatError(path + ": 'population' has " + std::to_string(population_.size()) +
                      " entries, expected 5 (unseen, 1, 2-5, 6-20, >20)");
  }
  for (int64_t k = 0; k < m; ++k) {
    if (train_images_[static_cast<size_t>(k)] < 0) {
      throw FormatError(path + ": 'train_images'[" + std::to_string(k) + "] is negative");
    }
  }
  check_images(2 * m, std::to_string(m) + " identities need " + std::to_string(2 * m + 1) +
                          " (a gallery and a probe image each, plus the end)");
}

std::string LongtailSetFile::image_note(int64_t image) const {
  return "image " + std::to_string(image) + " (identity " + std::to_string(image / 2) + ", " +
         (image % 2 == 0 ? "gallery" : "probe") + ")";
}

ImageFiller set_file_filler(const SetFile& file, int64_t image_size, data::ColorOrder order,
                            const InputNorm& norm) {
  auto decoder = std::make_shared<data::JpegDecoder>();
  auto pixels = std::make_shared<std::vector<uint8_t>>(static_cast<size_t>(image_size) *
                                                       static_cast<size_t>(image_size) * 3);
  const SetFile* f = &file;
  return [f, decoder, pixels, image_size, order, norm](int64_t begin, int64_t end,
                                                       const at::Tensor& out) {
    const std::vector<uint8_t> bytes = f->read_bytes(begin, end);
    const int64_t base = f->offsets()[static_cast<size_t>(begin)];
    const int s = static_cast<int>(image_size);
    for (int64_t i = begin; i < end; ++i) {
      const int64_t off = f->offsets()[static_cast<size_t>(i)] - base;
      const int64_t size = f->offsets()[static_cast<size_t>(i) + 1] - base - off;
      decoder->decode(bytes.data() + off, static_cast<size_t>(size), s, s, order,
                      /*resize=*/true, pixels->data(), f->path() + ": " + f->image_note(i));
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
