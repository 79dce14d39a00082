#include "data/recordio_dataset.h"

#include <nlohmann/json.hpp>
#include <sys/stat.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "common/error.h"
#include "common/logging.h"

namespace ffc::data {
namespace {

bool is_directory(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool exists(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0;
}

std::string dir_of(const std::string& p) {
  const auto slash = p.rfind('/');
  return slash == std::string::npos ? std::string(".") : p.substr(0, slash);
}

void scan_progress(uint64_t done, uint64_t total) {
  spdlog::info("indexing: {:.0f}% ({} of {} MiB)", 100.0 * done / std::max<uint64_t>(total, 1),
               done >> 20, total >> 20);
}

class RecordReader final : public ImageReader {
 public:
  explicit RecordReader(const RecordDataset& ds) : ds_(ds) {}

  int64_t read(int64_t image, uint8_t* out) override {
    const int64_t key = ds_.image_key(image);
    const uint64_t offset = ds_.offset_of_key(key);
    ds_.file().read(offset, buffer_, key);
    const std::string where = ds_.file().where(offset, key);
    const ImageRecordView rec = parse_image_record(buffer_.data(), buffer_.size(), where);
    const int64_t label = rec.class_label(where);
    if (label >= ds_.num_classes()) {
      throw FormatError(where + ": label " + std::to_string(label) + " is outside [0, " +
                        std::to_string(ds_.num_classes()) +
                        ") (num_classes from the property file); the property file or the "
                        "record is wrong");
    }
    decoder_.decode(rec.payload, rec.payload_size, ds_.image_size(), ds_.image_size(), order_,
                    resize_, out, where);
    return label;
  }

  void configure(ColorOrder order, bool resize) {
    order_ = order;
    resize_ = resize;
  }

 private:
  const RecordDataset& ds_;
  std::vector<uint8_t> buffer_;
  JpegDecoder decoder_;
  ColorOrder order_ = ColorOrder::kRgb;
  bool resize_ = false;
};

}  // namespace

DatasetProperty read_property(const std::string& dir) {
  // property: "num_classes,height,width"
  const std::string prop_path = dir + "/property";
  std::ifstream prop(prop_path);
  if (!prop) {
    throw IoError(prop_path +
                  ": missing; it holds 'num_classes,height,width' (for example 93431,112,112), "
                  "as insightface's datasets do; write it, or re-pack with `ffc pack`");
  }
  std::string line;
  std::getline(prop, line);
  long long n = 0;
  int h = 0;
  int w = 0;
  char extra = 0;
  if (std::sscanf(line.c_str(), " %lld , %d , %d %c", &n, &h, &w, &extra) != 3 || n <= 0 ||
      h <= 0 || w <= 0) {
    throw FormatError(prop_path + ": line 1 is '" + line +
                      "', expected 'num_classes,height,width' with positive integers");
  }
  return {n, h, w};
}

DatasetInfo read_dataset_info(const std::string& dir) {
  const std::string path = dir + "/" + kDatasetInfoFile;
  DatasetInfo info;
  std::ifstream in(path);
  if (!in) {
    return info;
  }
  const nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  const std::string fix =
      "; it holds {\"format\": \"ffc-dataset\", \"format_version\": 1, "
      "\"flip\": true|false} (remove it, or re-pack with `ffc pack`)";
  if (j.is_discarded() || !j.is_object()) {
    throw FormatError(path + ": not a JSON object" + fix);
  }
  if (!j.contains("format") || j["format"] != "ffc-dataset") {
    throw FormatError(path + ": key 'format' is not \"ffc-dataset\"" + fix);
  }
  if (!j.contains("format_version") || !j["format_version"].is_number_integer() ||
      j["format_version"].get<int64_t>() < 1 || j["format_version"].get<int64_t>() > 1) {
    throw FormatError(path + ": key 'format_version' must be 1 (this ffc reads version 1)" + fix);
  }
  if (j.contains("flip")) {
    if (!j["flip"].is_boolean()) {
      throw FormatError(path + ": key 'flip' must be true or false" + fix);
    }
    info.flip = j["flip"].get<bool>();
  }
  return info;
}

std::string dataset_info_json(const DatasetInfo& info) {
  nlohmann::ordered_json j;
  j["format"] = "ffc-dataset";
  j["format_version"] = 1;
  j["flip"] = info.flip;
  j["flip_means"] =
      info.flip ? "training may mirror images (flip: true)"
                : "a mirrored image is another identity: train with flip: false; evaluation "
                  "never mirrors";
  return j.dump(2) + "\n";
}

std::string dataset_folder(const std::string& path) {
  return is_directory(path) ? path : dir_of(path);
}

RecordDataset::RecordDataset(const std::string& path, const RecordDatasetOptions& options)
    : options_(options) {
  std::string dir;
  if (is_directory(path)) {
    dir = path;
    rec_path_ = path + "/train.rec";
  } else {
    rec_path_ = path;
    dir = dir_of(path);
  }
  if (!exists(rec_path_)) {
    throw IoError(rec_path_ +
                  ": not found; config key rec must name a folder holding train.rec, "
                  "train.idx and property (insightface's layout), or a .rec file");
  }
  std::string idx_path = rec_path_;
  if (idx_path.size() > 4 && idx_path.compare(idx_path.size() - 4, 4, ".rec") == 0) {
    idx_path.replace(idx_path.size() - 4, 4, ".idx");
  } else {
    idx_path += ".idx";
  }
  file_ = std::make_shared<RecordFile>(rec_path_);

  dir_ = dir;
  const DatasetProperty property = read_property(dir);
  info_ = read_dataset_info(dir);
  num_classes_ = property.num_classes;
  height_ = property.height;
  width_ = property.width;
  const std::string prop_path = dir + "/property";
  if (!options_.resize && (height_ != options_.image_size || width_ != options_.image_size)) {
    throw ConfigError(prop_path + ": images are " + std::to_string(height_) + "x" +
                      std::to_string(width_) + " but image_size is " +
                      std::to_string(options_.image_size) +
                      "; set image_size: " + std::to_string(height_) + " (or resize: true)");
  }

  // The binary index, when there is a current one: nothing per image is read or allocated.
  idx_path_ = idx_path;
  {
    std::string why;
    std::unique_ptr<MappedRecordIndex> mapped = MappedRecordIndex::open(
        record_index_path(rec_path_), stamp_of(rec_path_), stamp_of(idx_path), why);
    if (mapped && mapped->tables().num_classes != num_classes_) {
      why = record_index_path(rec_path_) + ": built for " +
            std::to_string(mapped->tables().num_classes) + " classes, property says " +
            std::to_string(num_classes_) + "; rebuild it with `ffc data index`";
      mapped.reset();
    }
    if (mapped) {
      const IndexTables& t = mapped->tables();
      first_key_ = t.first_key;
      num_entries_ = t.num_entries;
      offs_ = t.offsets;
      keys_ = t.keys;
      num_images_ = t.num_images;
      image_first_key_ = t.image_first_key;
      identity_begin_ = t.identity_begin;
      identity_end_ = t.identity_end;
      cbegin_ = t.class_begin;
      cimages_ = t.class_images;
      index_ = std::move(mapped);
      index_note_ = "binary index " + record_index_path(rec_path_);
      spdlog::debug("{}", describe());
      return;
    }
    if (!why.empty()) {
      spdlog::warn("{}; indexing {} in memory instead", why, rec_path_);
    }
  }

  // Index.
  std::vector<IndexEntry> entries;
  if (exists(idx_path)) {
    entries = read_index(idx_path);
  } else {
    spdlog::warn("{}: no index file; scanning {} once to build it in memory", idx_path, rec_path_);
    entries = scan_index(*file_, scan_progress);
  }
  if (entries.empty()) {
    throw FormatError(rec_path_ + ": the dataset is empty (no records in " +
                      (exists(idx_path) ? idx_path : rec_path_) + ")");
  }
  std::sort(entries.begin(), entries.end(),
            [](const IndexEntry& a, const IndexEntry& b) { return a.key < b.key; });
  for (size_t i = 1; i < entries.size(); ++i) {
    if (entries[i].key == entries[i - 1].key) {
      throw FormatError(idx_path + ": key " + std::to_string(entries[i].key) +
                        " appears twice; rebuild the index");
    }
  }
  first_key_ = entries.front().key;
  const bool contiguous =
      entries.back().key - first_key_ + 1 == static_cast<int64_t>(entries.size());
  offsets_.reserve(entries.size());
  for (const auto& e : entries) {
    if (e.offset >= file_->size()) {
      throw FormatError(idx_path + ": key " + std::to_string(e.key) + " points at byte " +
                        std::to_string(e.offset) + ", past the end of " + rec_path_ + " (" +
                        std::to_string(file_->size()) +
                        " bytes); the .rec is truncated or the .idx belongs to another file");
    }
    offsets_.push_back(e.offset);
    if (!contiguous) {
      sparse_keys_.push_back(e.key);
    }
  }

  num_entries_ = static_cast<int64_t>(offsets_.size());
  offs_ = offsets_.data();
  keys_ = sparse_keys_.empty() ? nullptr : sparse_keys_.data();

  // Record 0: insightface's header record, if present.
  std::vector<uint8_t> buf;
  bool header = false;
  if (first_key_ == 0) {
    file_->read(offset_of_key(0), buf, 0);
    const std::string where = file_->where(offset_of_key(0), 0);
    const ImageRecordView rec = parse_image_record(buf.data(), buf.size(), where);
    if (rec.header.flag >= 2) {
      int64_t a = 0;
      int64_t b = 0;
      rec.key_range(a, b, where);
      if (!(a >= 1 && b >= a)) {
        throw FormatError(where + ": header record labels [" + std::to_string(a) + ", " +
                          std::to_string(b) + "] are not a key range [first identity, end)");
      }
      header = true;
      image_first_key_ = 1;
      num_images_ = a - 1;
      identity_begin_ = a;
      identity_end_ = b;
      const int64_t last_key = contiguous ? entries.back().key : sparse_keys_.back();
      if (!contiguous || last_key < identity_end_ - 1 || (num_images_ > 0 && last_key < 1)) {
        throw FormatError(idx_path + ": record 0 announces images 1.." +
                          std::to_string(num_images_) + " and identity records " +
                          std::to_string(identity_begin_) + ".." +
                          std::to_string(identity_end_ - 1) +
                          " but the index does not hold all of those keys; rebuild the index");
      }
      if (identity_end_ == identity_begin_) {
        identity_begin_ = identity_end_ = -1;  // header without identity records
      } else if (identity_end_ - identity_begin_ != num_classes_) {
        throw FormatError(where + ": " + std::to_string(identity_end_ - identity_begin_) +
                          " identity records but the property file says " +
                          std::to_string(num_classes_) + " classes");
      }
    }
  }
  if (!header) {
    num_images_ = static_cast<int64_t>(entries.size());
  }
  if (num_images_ <= 0) {
    throw FormatError(rec_path_ + ": the dataset has no image records");
  }
  index_note_ = "indexed in memory from " + (exists(idx_path) ? idx_path : rec_path_);
  spdlog::debug("{}", describe());
}

std::string RecordDataset::describe() const {
  return rec_path_ + ": " + std::to_string(num_images_) + " images, " +
         std::to_string(num_classes_) + " classes, " + std::to_string(height_) + "x" +
         std::to_string(width_) + (has_identity_records() ? ", identity records" : "") +
         (info_.flip ? "" : ", no mirroring (dataset.json)") + "; " + index_note_;
}

int64_t RecordDataset::image_key(int64_t image) const {
  FFC_CHECK(image >= 0 && image < num_images_,
            "image " + std::to_string(image) + " outside [0, " + std::to_string(num_images_) + ")");
  if (image_first_key_ >= 0) {
    return image_first_key_ + image;
  }
  return keys_ == nullptr ? first_key_ + image : keys_[image];
}

uint64_t RecordDataset::offset_of_key(int64_t key) const {
  if (keys_ == nullptr) {
    FFC_CHECK(key >= first_key_ && key - first_key_ < num_entries_,
              rec_path_ + ": no record with key " + std::to_string(key) + " in the index");
    return offs_[key - first_key_];
  }
  const int64_t* it = std::lower_bound(keys_, keys_ + num_entries_, key);
  FFC_CHECK(it != keys_ + num_entries_ && *it == key,
            rec_path_ + ": no record with key " + std::to_string(key) + " in the index");
  return offs_[it - keys_];
}

int64_t RecordDataset::table_bytes() const {
  return static_cast<int64_t>(offsets_.size() * 8 + sparse_keys_.size() * 8 +
                              class_begin_.size() * 8 + class_images_.size() * 4);
}

std::unique_ptr<ImageReader> RecordDataset::make_reader() const {
  auto r = std::make_unique<RecordReader>(*this);
  r->configure(options_.color_order, options_.resize);
  return r;
}

int64_t RecordDataset::mapped_index_bytes() const {
  return index_ ? static_cast<int64_t>(index_->bytes()) : 0;
}

std::string RecordDataset::write_index() const {
  build_class_table();
  IndexTables t;
  t.num_entries = num_entries_;
  t.first_key = first_key_;
  t.offsets = offs_;
  t.keys = keys_;
  t.num_images = num_images_;
  t.image_first_key = image_first_key_;
  t.identity_begin = identity_begin_;
  t.identity_end = identity_end_;
  t.num_classes = num_classes_;
  t.class_begin = cbegin_;
  t.class_images = cimages_;
  const std::string path = record_index_path(rec_path_);
  write_record_index(path, t, stamp_of(rec_path_), stamp_of(idx_path_));
  return path;
}

void RecordDataset::build_class_table() const {
  std::call_once(class_table_once_, [this] {
    if (cbegin_ != nullptr) {
      return;  // mapped from the binary index
    }
    if (has_identity_records()) {
      build_class_table_from_identity_records();
    } else {
      build_class_table_by_scan();
    }
    cbegin_ = class_begin_.data();
    cimages_ = class_images_.empty() ? nullptr : class_images_.data();
  });
}

void RecordDataset::build_class_table_from_identity_records() const {
  class_begin_.assign(num_classes_ + 1, 0);
  std::vector<uint8_t> buf;
  int64_t expected_start = 1;
  for (int64_t y = 0; y < num_classes_; ++y) {
    const int64_t key = identity_begin_ + y;
    const uint64_t offset = offset_of_key(key);
    file_->read(offset, buf, key);
    const std::string where = file_->where(offset, key);
    const ImageRecordView rec = parse_image_record(buf.data(), buf.size(), where);
    if (rec.header.flag < 2) {
      throw FormatError(where + ": identity record without its [start, end) key range");
    }
    int64_t start = 0;
    int64_t end = 0;
    rec.key_range(start, end, where);
    if (start != expected_start || end < start || end > num_images_ + 1) {
      throw FormatError(where + ": identity " + std::to_string(y) + " covers keys [" +
                        std::to_string(start) + ", " + std::to_string(end) +
                        ") but the previous identity ended at " + std::to_string(expected_start) +
                        "; identity records must tile the images in order");
    }
    class_begin_[y] = start - image_first_key_;
    expected_start = end;
  }
  class_begin_[num_classes_] = expected_start - image_first_key_;
}

void RecordDataset::build_class_table_by_scan() const {
  spdlog::info("{}: no identity records; reading {} record headers to group images by class",
               rec_path_, num_images_);
  FFC_CHECK(num_images_ < (int64_t{1} << 31), "more than 2^31 images without identity records");
  std::vector<int32_t> label_of(num_images_);
  std::vector<int64_t> counts(num_classes_ + 1, 0);
  std::vector<uint8_t> buf;
  for (int64_t i = 0; i < num_images_; ++i) {
    const int64_t key = image_key(i);
    const uint64_t offset = offset_of_key(key);
    file_->read(offset, buf, key);
    const std::string where = file_->where(offset, key);
    const int64_t label = parse_image_record(buf.data(), buf.size(), where).class_label(where);
    if (label >= num_classes_) {
      throw FormatError(where + ": label " + std::to_string(label) + " is outside [0, " +
                        std::to_string(num_classes_) + ") (property file)");
    }
    label_of[i] = static_cast<int32_t>(label);
    ++counts[label + 1];
  }
  class_begin_.assign(num_classes_ + 1, 0);
  for (int64_t y = 0; y < num_classes_; ++y) {
    class_begin_[y + 1] = class_begin_[y] + counts[y + 1];
  }
  class_images_.assign(num_images_, 0);
  std::vector<int64_t> fill(class_begin_.begin(), class_begin_.end() - 1);
  for (int64_t i = 0; i < num_images_; ++i) {
    class_images_[fill[label_of[i]]++] = static_cast<int32_t>(i);
  }
}

int64_t RecordDataset::class_size(int64_t label) const {
  build_class_table();
  FFC_CHECK(label >= 0 && label < num_classes_, "class " + std::to_string(label) + " outside [0, " +
                                                    std::to_string(num_classes_) + ")");
  return cbegin_[label + 1] - cbegin_[label];
}

int64_t RecordDataset::class_image(int64_t label, int64_t j) const {
  const int64_t n = class_size(label);
  FFC_CHECK(j >= 0 && j < n, "image " + std::to_string(j) + " of class " + std::to_string(label) +
                                 " which has " + std::to_string(n));
  const int64_t pos = cbegin_[label] + j;
  return cimages_ == nullptr ? pos : cimages_[pos];
}

void RecordDataset::will_read(int64_t first, int64_t count) const {
  if (count <= 0 || first < 0 || first + count > num_images_) {
    return;
  }
  // The records of consecutive images are consecutive in a packed file; where they are not
  // (offsets out of order) the hint is skipped rather than made wrong.
  const uint64_t begin = offset_of_key(image_key(first));
  const int64_t next = first + count;
  const uint64_t end = next < num_images_ ? offset_of_key(image_key(next)) : file_->size();
  if (end > begin) {
    file_->will_need(begin, end);
  }
}

// ---------------------------------------------------------------- ConcatSource

class ConcatReader final : public ImageReader {
 public:
  explicit ConcatReader(const ConcatSource& src) : src_(src) {
    for (const auto& p : src.parts_) {
      readers_.push_back(p->make_reader());
    }
  }
  int64_t read(int64_t image, uint8_t* out) override {
    const auto& offs = src_.image_offsets_;
    const size_t k = std::upper_bound(offs.begin(), offs.end(), image) - offs.begin() - 1;
    return src_.class_offsets_[k] + readers_[k]->read(image - offs[k], out);
  }

 private:
  const ConcatSource& src_;
  std::vector<std::unique_ptr<ImageReader>> readers_;
};

ConcatSource::ConcatSource(std::vector<std::shared_ptr<ImageSource>> parts)
    : parts_(std::move(parts)) {
  FFC_CHECK(!parts_.empty(), "concatenation of no datasets");
  image_offsets_.push_back(0);
  class_offsets_.push_back(0);
  for (const auto& p : parts_) {
    if (p->image_size() != parts_.front()->image_size()) {
      throw ConfigError("datasets to concatenate differ in image size: " + p->describe() + " vs " +
                        parts_.front()->describe());
    }
    image_offsets_.push_back(image_offsets_.back() + p->num_images());
    class_offsets_.push_back(class_offsets_.back() + p->num_classes());
  }
}

std::string ConcatSource::describe() const {
  std::string s = std::to_string(parts_.size()) + " datasets, " + std::to_string(num_images()) +
                  " images, " + std::to_string(num_classes()) + " classes:";
  for (const auto& p : parts_) {
    s += " [" + p->describe() + "]";
  }
  return s;
}

int64_t ConcatSource::class_size(int64_t label) const {
  const size_t k = std::upper_bound(class_offsets_.begin(), class_offsets_.end(), label) -
                   class_offsets_.begin() - 1;
  return parts_[k]->class_size(label - class_offsets_[k]);
}

int64_t ConcatSource::class_image(int64_t label, int64_t j) const {
  const size_t k = std::upper_bound(class_offsets_.begin(), class_offsets_.end(), label) -
                   class_offsets_.begin() - 1;
  return image_offsets_[k] + parts_[k]->class_image(label - class_offsets_[k], j);
}

void ConcatSource::will_read(int64_t first, int64_t count) const {
  const int64_t end = first + count;
  for (size_t k = 0; k < parts_.size(); ++k) {
    const int64_t lo = std::max(first, image_offsets_[k]);
    const int64_t hi = std::min(end, image_offsets_[k + 1]);
    if (lo < hi) {
      parts_[k]->will_read(lo - image_offsets_[k], hi - lo);
    }
  }
}

std::unique_ptr<ImageReader> ConcatSource::make_reader() const {
  return std::make_unique<ConcatReader>(*this);
}

}  // namespace ffc::data
