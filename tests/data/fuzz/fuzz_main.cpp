// Mutation fuzzing of dataset reading: a valid procedural dataset is packed, then each case
// mutates a copy (truncation, bit flips, overwritten part lengths, bad .idx offsets, a bad
// property file) and reads everything: open, every image, the class table, verify. Every outcome
// must be a clean read or an ffc::Error whose message names the file; a crash, a sanitizer report
// or another exception fails the run.
//   recordio_fuzz WORK_DIR [CASES]

#include <sys/stat.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/random.h"
#include "data/inspect.h"
#include "data/recordio_dataset.h"
#include "data/synthetic.h"

namespace {

using Bytes = std::vector<char>;

Bytes load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), {});
}

void store(const std::string& path, const Bytes& b) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(b.data(), static_cast<std::streamsize>(b.size()));
}

// Reads everything a training job or `ffc data verify` would read. Returns the error message, or
// "" for a clean read.
std::string read_all(const std::string& dir) {
  std::string first_record_error;
  try {
    ffc::data::RecordDatasetOptions o;
    o.image_size = 16;
    ffc::data::RecordDataset ds(dir, o);
    auto reader = ds.make_reader();
    std::vector<uint8_t> px(16 * 16 * 3);
    for (int64_t i = 0; i < ds.num_images(); ++i) {
      try {
        reader->read(i, px.data());
      } catch (const ffc::Error& e) {
        // Per-record errors must name the file too; keep reading the others.
        if (std::string(e.what()).find("train.rec") == std::string::npos) {
          return std::string("UNNAMED: ") + e.what();
        }
        if (first_record_error.empty()) {
          first_record_error = e.what();
        }
      }
    }
    for (int64_t y = 0; y < ds.num_classes(); ++y) {
      const int64_t n = ds.class_size(y);
      for (int64_t j = 0; j < n; ++j) {
        (void)ds.class_image(y, j);
      }
    }
    for (const auto& bad : ffc::data::verify_dataset(ds, nullptr)) {
      (void)bad;
    }
  } catch (const ffc::Error& e) {
    return e.what();
  }
  return first_record_error;
}

bool names_a_file(const std::string& msg) {
  for (const char* f : {"train.rec", "train.idx", "property", "identity records"}) {
    if (msg.find(f) != std::string::npos) {
      return true;
    }
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: recordio_fuzz WORK_DIR [CASES]\n";
    return 2;
  }
  const std::string work = argv[1];
  const int cases = argc > 2 ? std::atoi(argv[2]) : 1200;
  const std::string good = work + "/good";
  const std::string bad = work + "/case";
  ::mkdir(work.c_str(), 0755);
  ffc::data::SyntheticSpec spec;
  spec.num_classes = 12;
  spec.max_images = 5;
  spec.image_size = 16;
  ffc::data::pack_source(ffc::data::SyntheticSource(spec), good, 90, nullptr);
  if (!read_all(good).empty()) {
    std::cerr << "fuzz: the unmutated dataset does not read: " << read_all(good) << "\n";
    return 1;
  }
  const Bytes rec = load(good + "/train.rec");
  const Bytes idx = load(good + "/train.idx");
  const Bytes prop = load(good + "/property");
  ::mkdir(bad.c_str(), 0755);

  int clean = 0;
  int rejected = 0;
  ffc::Rng rng(12345);
  for (int c = 0; c < cases; ++c) {
    Bytes r = rec;
    Bytes x = idx;
    Bytes p = prop;
    const int kind = c % 6;
    if (kind == 0) {  // truncation anywhere
      r.resize(rng.below(r.size()));
    } else if (kind == 1) {  // a few random bit flips
      for (int k = 0, n = 1 + static_cast<int>(rng.below(8)); k < n; ++k) {
        r[rng.below(r.size())] ^= static_cast<char>(1 << rng.below(8));
      }
    } else if (kind == 2) {  // a garbage length/cflag word at an aligned position
      const size_t at = (rng.below(r.size() / 4)) * 4;
      const uint32_t word = static_cast<uint32_t>(rng.next());
      std::memcpy(r.data() + at, &word, std::min<size_t>(4, r.size() - at));
    } else if (kind == 3) {  // a wrong .idx offset
      std::string text(x.begin(), x.end());
      size_t line = rng.below(20);
      size_t pos = 0;
      for (size_t i = 0; i < line && pos != std::string::npos; ++i) {
        pos = text.find('\n', pos + 1);
      }
      if (pos != std::string::npos) {
        const size_t tab = text.find('\t', pos);
        const size_t end = text.find('\n', tab);
        if (tab != std::string::npos && end != std::string::npos) {
          text.replace(tab + 1, end - tab - 1, std::to_string(rng.below(r.size() + 100)));
        }
      }
      x.assign(text.begin(), text.end());
    } else if (kind == 4) {  // random bytes overwrite a stretch of the .idx
      const size_t at = rng.below(x.size());
      for (size_t i = at; i < std::min(x.size(), at + 1 + rng.below(6)); ++i) {
        x[i] = static_cast<char>(rng.below(256));
      }
    } else {  // a damaged property file or a duplicated record header
      if (rng.below(2) == 0) {
        p.resize(rng.below(p.size()));
      } else {
        const size_t at = (rng.below(r.size() / 4)) * 4;
        std::memcpy(r.data() + at, "\x0a\x23\xd7\xce", std::min<size_t>(4, r.size() - at));
      }
    }
    store(bad + "/train.rec", r);
    store(bad + "/train.idx", x);
    store(bad + "/property", p);
    const std::string msg = read_all(bad);
    if (msg.empty()) {
      ++clean;
    } else if (msg.rfind("UNNAMED: ", 0) == 0 || !names_a_file(msg)) {
      std::cerr << "fuzz case " << c << ": an error that names no file: " << msg << "\n";
      return 1;
    } else {
      ++rejected;
    }
  }
  std::cout << "fuzz: " << cases << " mutated datasets: " << rejected
            << " rejected with an error naming the file, " << clean
            << " read cleanly (mutations that kept them valid); no crash, no sanitizer report\n";
  return 0;
}
