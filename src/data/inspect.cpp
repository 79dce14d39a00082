#include "data/inspect.h"

#include <dirent.h>
#include <nlohmann/json.hpp>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>

#include "common/atomic_file.h"
#include "common/error.h"
#include "data/recordio.h"
#include "data/recordio_dataset.h"

namespace ffc::data {
namespace {

std::vector<std::string> list_dir(const std::string& dir, bool want_dirs) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) {
    throw IoError(dir + ": cannot open folder (" + std::strerror(errno) + ")");
  }
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name == "." || name == "..") {
      continue;
    }
    struct stat st {};
    if (::stat((dir + "/" + name).c_str(), &st) != 0) {
      continue;
    }
    if (S_ISDIR(st.st_mode) == want_dirs) {
      names.push_back(name);
    }
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

bool has_jpeg_extension(const std::string& name) {
  std::string ext = name.substr(name.find_last_of('.') + 1);
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return name.find('.') != std::string::npos && (ext == "jpg" || ext == "jpeg");
}

std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw IoError(path + ": cannot open (" + std::strerror(errno) + ")");
  }
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

void make_dir(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    throw IoError(dir + ": cannot create folder (" + std::strerror(errno) + ")");
  }
}

// Writes the files of a dataset under temporary names (common/atomic_file.h); commit() renames
// them into place, and a writer destroyed before it removes them.
class PackWriter {
 public:
  PackWriter(const std::string& out, int64_t images, int64_t classes)
      : out_(out), images_(images), classes_(classes) {
    make_dir(out);
    for (const char* name : {"train.rec", "train.idx", "property", kDatasetInfoFile}) {
      files_.push_back(std::make_unique<AtomicFile>(out_ + "/" + name, tmp(name)));
    }
    rec_ = std::make_unique<RecordWriter>(tmp("train.rec"));
    // Record 0: labels [first identity key, end key), as insightface's datasets (exact in id and
    // id2 too: float32 keys are exact only below 2^24).
    std::vector<float> range;
    const ImageRecordHeader h = key_range_header(images + 1, images + 1 + classes, range);
    build_image_record(h, range, nullptr, 0, record_);
    index_.push_back({0, rec_->write(record_.data(), record_.size())});
  }

  ~PackWriter() { rec_.reset(); }  // closed before the AtomicFiles remove what is not committed

  void add_image(int64_t label, const uint8_t* jpeg, size_t size) {
    const int64_t key = static_cast<int64_t>(index_.size());
    ImageRecordHeader h;
    h.label = static_cast<float>(label);
    h.id = static_cast<uint64_t>(key);
    h.id2 = kExactLabelBit | static_cast<uint64_t>(label);
    build_image_record(h, {}, jpeg, size, record_);
    index_.push_back({key, rec_->write(record_.data(), record_.size())});
    if (label != current_label_) {
      FFC_CHECK(label == current_label_ + 1, "pack: classes must be written in order");
      class_start_.push_back(key);
      current_label_ = label;
    }
  }

  PackReport commit(int height, int width, const DatasetInfo& info = {}) {
    FFC_CHECK(static_cast<int64_t>(index_.size()) == images_ + 1,
              "pack: wrote " + std::to_string(index_.size() - 1) + " images, announced " +
                  std::to_string(images_));
    FFC_CHECK(static_cast<int64_t>(class_start_.size()) == classes_,
              "pack: every class needs at least one image");
    class_start_.push_back(images_ + 1);
    for (int64_t y = 0; y < classes_; ++y) {
      const int64_t key = images_ + 1 + y;
      std::vector<float> range;
      const ImageRecordHeader h = key_range_header(class_start_[y], class_start_[y + 1], range);
      build_image_record(h, range, nullptr, 0, record_);
      index_.push_back({key, rec_->write(record_.data(), record_.size())});
    }
    PackReport report{images_, classes_, height, rec_->tell()};
    rec_->close();
    write_index(tmp("train.idx"), index_);
    write_text(tmp("property"), std::to_string(classes_) + "," + std::to_string(height) + "," +
                                    std::to_string(width) + "\n");
    const bool with_info = !(info == DatasetInfo{});
    if (with_info) {
      write_text(tmp(kDatasetInfoFile), dataset_info_json(info));
    } else {
      files_.back()->abandon();
      std::remove((out_ + "/" + kDatasetInfoFile).c_str());  // a stale one from an earlier pack
    }
    for (size_t i = 0; i < files_.size(); ++i) {
      if (i + 1 < files_.size() || with_info) {
        files_[i]->commit();
      }
    }
    return report;
  }

 private:
  std::string tmp(const std::string& name) const { return out_ + "/." + name + ".partial"; }

  static void write_text(const std::string& path, const std::string& text) {
    std::ofstream out(path, std::ios::trunc);
    out << text;
    out.close();
    if (!out) {
      throw IoError(path + ": write failed");
    }
  }

  std::string out_;
  int64_t images_;
  int64_t classes_;
  std::unique_ptr<RecordWriter> rec_;
  std::vector<IndexEntry> index_;
  std::vector<uint8_t> record_;
  std::vector<int64_t> class_start_;
  int64_t current_label_ = -1;
  std::vector<std::unique_ptr<AtomicFile>> files_;  // train.rec, train.idx, property, dataset.json
};

}  // namespace

DatasetStats dataset_stats(const ImageSource& source) {
  DatasetStats s;
  s.images = source.num_images();
  s.classes = source.num_classes();
  s.image_size = source.image_size();
  s.flip = source.mirror_allowed();
  std::map<int64_t, int64_t> histogram;  // images per class -> classes
  source.for_each_class_size([&](int64_t size, int64_t classes) { histogram[size] += classes; });
  int64_t seen = 0;
  int64_t total = 0;
  s.min_per_class = histogram.empty() ? 0 : histogram.begin()->first;
  s.max_per_class = histogram.empty() ? 0 : histogram.rbegin()->first;
  for (const auto& [size, classes] : histogram) {
    if (seen <= (s.classes - 1) / 2 && seen + classes > (s.classes - 1) / 2) {
      s.median_per_class = size;
    }
    seen += classes;
    total += size * classes;
    const int b = size <= 1 ? 0 : size <= 5 ? 1 : size <= 20 ? 2 : size <= 100 ? 3 : 4;
    s.buckets[b] += classes;
  }
  s.mean_per_class = s.classes > 0 ? static_cast<double>(total) / s.classes : 0.0;
  return s;
}

std::string stats_json(const DatasetStats& s, const std::string& path) {
  nlohmann::ordered_json j;
  j["path"] = path;
  j["images"] = s.images;
  j["identities"] = s.classes;
  j["image_size"] = {s.image_size, s.image_size};
  j["images_per_identity"] = {{"min", s.min_per_class},
                              {"median", s.median_per_class},
                              {"mean", s.mean_per_class},
                              {"max", s.max_per_class},
                              {"buckets",
                               {{"1", s.buckets[0]},
                                {"2-5", s.buckets[1]},
                                {"6-20", s.buckets[2]},
                                {"21-100", s.buckets[3]},
                                {">100", s.buckets[4]}}}};
  j["flip"] = s.flip;
  return j.dump(2);
}

std::vector<BadRecord> verify_dataset(const ImageSource& source,
                                      const std::function<void(int64_t, int64_t)>& progress) {
  std::vector<BadRecord> bad;
  auto reader = source.make_reader();
  const size_t s = static_cast<size_t>(source.image_size());
  std::vector<uint8_t> pixels(s * s * 3);
  const int64_t n = source.num_images();
  std::vector<int64_t> labels(n, -1);
  for (int64_t i = 0; i < n; ++i) {
    try {
      labels[i] = reader->read(i, pixels.data());
    } catch (const Error& e) {
      bad.push_back({i, e.what()});
    }
    if (progress && (i + 1) % 10000 == 0) {
      progress(i + 1, n);
    }
  }
  // The class table (identity records where present) must agree with the image labels.
  try {
    for (int64_t y = 0; y < source.num_classes(); ++y) {
      const int64_t count = source.class_size(y);
      for (int64_t j = 0; j < count; ++j) {
        const int64_t image = source.class_image(y, j);
        if (labels[image] >= 0 && labels[image] != y) {
          bad.push_back({image, "image " + std::to_string(image) + " has label " +
                                    std::to_string(labels[image]) +
                                    " but its identity record lists it under class " +
                                    std::to_string(y)});
        }
      }
    }
  } catch (const Error& e) {
    bad.push_back({-1, std::string("identity records: ") + e.what()});
  }
  if (progress) {
    progress(n, n);
  }
  return bad;
}

ImageFolder list_image_folder(const std::string& folder, bool allow_flat) {
  ImageFolder out;
  out.identities = list_dir(folder, true);
  if (out.identities.empty()) {
    for (const auto& f : list_dir(folder, false)) {
      if (has_jpeg_extension(f)) {
        out.paths.push_back(f);
      }
    }
    if (!allow_flat || out.paths.empty()) {
      throw FormatError(
          folder + ": no sub-folders" +
          (allow_flat ? std::string(" and no .jpg/.jpeg files") : std::string()) +
          "; expected one sub-folder per identity holding its JPEG files" +
          (allow_flat ? std::string(", or JPEG files directly in the folder") : std::string()));
    }
    return out;
  }
  for (size_t y = 0; y < out.identities.size(); ++y) {
    const std::string& id = out.identities[y];
    const size_t before = out.paths.size();
    for (const auto& f : list_dir(folder + "/" + id, false)) {
      if (has_jpeg_extension(f)) {
        out.paths.push_back(id + "/" + f);
        out.labels.push_back(static_cast<int64_t>(y));
      }
    }
    if (out.paths.size() == before) {
      throw FormatError(folder + "/" + id +
                        ": no .jpg/.jpeg files; every identity needs at least "
                        "one image (remove the folder or add images)");
    }
  }
  return out;
}

std::vector<uint8_t> read_whole_file(const std::string& path) {
  return read_file(path);
}

PackReport pack_folder(const std::string& folder, const std::string& out, const DatasetInfo& info) {
  const ImageFolder listing = list_image_folder(folder, /*allow_flat=*/false);
  const std::vector<std::string>& identities = listing.identities;
  const auto images = static_cast<int64_t>(listing.paths.size());
  PackWriter writer(out, images, static_cast<int64_t>(identities.size()));
  JpegDecoder decoder;
  int height = 0;
  int width = 0;
  std::string first;
  for (size_t i = 0; i < listing.paths.size(); ++i) {
    const std::string path = folder + "/" + listing.paths[i];
    const std::vector<uint8_t> bytes = read_file(path);
    int w = 0;
    int h = 0;
    decoder.dimensions(bytes.data(), bytes.size(), path, w, h);
    if (first.empty()) {
      first = path;
      width = w;
      height = h;
    } else if (w != width || h != height) {
      throw FormatError(path + ": " + std::to_string(w) + "x" + std::to_string(h) + " pixels but " +
                        first + " is " + std::to_string(width) + "x" + std::to_string(height) +
                        "; all images of a dataset must be aligned to one size");
    }
    writer.add_image(listing.labels[i], bytes.data(), bytes.size());
  }
  return writer.commit(height, width, info);
}

PackReport pack_source(const ImageSource& source, const std::string& out, int quality,
                       const std::function<void(int64_t, int64_t)>& progress) {
  PackWriter writer(out, source.num_images(), source.num_classes());
  auto reader = source.make_reader();
  JpegEncoder encoder;
  const int s = source.image_size();
  std::vector<uint8_t> pixels(static_cast<size_t>(s) * s * 3);
  std::vector<uint8_t> jpeg;
  int64_t done = 0;
  for (int64_t y = 0; y < source.num_classes(); ++y) {
    const int64_t count = source.class_size(y);
    for (int64_t j = 0; j < count; ++j) {
      const int64_t label = reader->read(source.class_image(y, j), pixels.data());
      FFC_CHECK(label == y, "pack: image of class " + std::to_string(label) + " listed under " +
                                std::to_string(y));
      encoder.encode(pixels.data(), s, s, quality, jpeg);
      writer.add_image(y, jpeg.data(), jpeg.size());
      if (progress && ++done % 10000 == 0) {
        progress(done, source.num_images());
      }
    }
  }
  return writer.commit(s, s);
}

}  // namespace ffc::data
