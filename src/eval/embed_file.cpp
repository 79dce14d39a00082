#include "eval/embed_file.h"

#include <ATen/ATen.h>

#include <cstdio>
#include <exception>
#include <filesystem>

#include "comm/mpi_handle.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "data/inspect.h"
#include "data/recordio_dataset.h"
#include "eval/verification_set.h"
#include "h5/parallel.h"
#include "model/backbone.h"

namespace ffc::eval {
namespace {

namespace fs = std::filesystem;

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

EmbedInput folder_input(const std::string& path, int64_t image_size, data::ColorOrder order,
                        const InputNorm& norm) {
  data::ImageFolder listing = data::list_image_folder(path, /*allow_flat=*/true);
  EmbedInput in;
  in.kind = "folder";
  in.path = path;
  in.count = static_cast<int64_t>(listing.paths.size());
  in.has_labels = !listing.labels.empty();
  in.labels = std::make_shared<std::vector<int64_t>>(std::move(listing.labels));
  in.paths = listing.paths;
  in.description = path + ": " + std::to_string(in.count) + " JPEG files" +
                   (in.has_labels ? " of " + std::to_string(listing.identities.size()) +
                                        " identities (one sub-folder each)"
                                  : std::string(" (flat, no labels)"));
  auto decoder = std::make_shared<data::JpegDecoder>();
  auto pixels = std::make_shared<std::vector<uint8_t>>(static_cast<size_t>(image_size) *
                                                       static_cast<size_t>(image_size) * 3);
  auto paths = std::make_shared<std::vector<std::string>>(in.paths);
  const int s = static_cast<int>(image_size);
  in.fill = [path, paths, decoder, pixels, s, order, norm](int64_t begin, int64_t end,
                                                           const at::Tensor& out) {
    FFC_CHECK(out.is_contiguous(), "image buffer must be contiguous");
    for (int64_t i = begin; i < end; ++i) {
      const std::string file = path + "/" + (*paths)[static_cast<size_t>(i)];
      const std::vector<uint8_t> bytes = data::read_whole_file(file);
      decoder->decode(bytes.data(), bytes.size(), s, s, order, /*resize=*/true, pixels->data(),
                      file);
      normalize_pixels(pixels->data(), s, /*mirror=*/false, norm, out[i - begin].data_ptr<float>());
    }
  };
  return in;
}

EmbedInput recordio_input(const std::string& path, int64_t image_size, data::ColorOrder order,
                          const InputNorm& norm) {
  data::RecordDatasetOptions options;
  options.image_size = static_cast<int>(image_size);
  options.color_order = order;
  options.resize = true;
  auto dataset = std::make_shared<data::RecordDataset>(path, options);
  EmbedInput in;
  in.kind = "recordio";
  in.path = path;
  in.count = dataset->num_images();
  in.has_labels = true;
  in.labels = std::make_shared<std::vector<int64_t>>(static_cast<size_t>(in.count), -1);
  in.description = dataset->describe();
  std::shared_ptr<data::ImageReader> reader = dataset->make_reader();
  auto pixels = std::make_shared<std::vector<uint8_t>>(static_cast<size_t>(image_size) *
                                                       static_cast<size_t>(image_size) * 3);
  const int s = static_cast<int>(image_size);
  auto labels = in.labels;
  in.fill = [reader, pixels, labels, s, norm](int64_t begin, int64_t end, const at::Tensor& out) {
    FFC_CHECK(out.is_contiguous(), "image buffer must be contiguous");
    for (int64_t i = begin; i < end; ++i) {
      (*labels)[static_cast<size_t>(i)] = reader->read(i, pixels->data());
      normalize_pixels(pixels->data(), s, /*mirror=*/false, norm, out[i - begin].data_ptr<float>());
    }
  };
  in.keep_alive = dataset;
  return in;
}

EmbedInput set_input(const std::string& path, int64_t image_size, data::ColorOrder order,
                     const InputNorm& norm) {
  auto file = std::make_shared<VerificationSetFile>(path);
  EmbedInput in;
  in.kind = "set";
  in.path = path;
  in.count = file->images();
  in.description = path + ": verification set '" + file->name() + "', " +
                   std::to_string(file->pairs()) + " pairs, " + std::to_string(in.count) +
                   " images (image 2k and 2k+1 form pair k)";
  in.labels = std::make_shared<std::vector<int64_t>>();
  in.fill = set_file_filler(*file, image_size, order, norm);
  in.keep_alive = file;
  return in;
}

// Runs `work` on every rank and agrees on its success before the collective that follows: a rank
// that failed rethrows its own error, the others stop with an AgreedError.
template <typename Fn>
void agreed(comm::Communicator& comm, const char* what, Fn&& work) {
  std::exception_ptr error;
  try {
    work();
  } catch (...) {
    error = std::current_exception();
  }
  if (comm::any_rank(comm, error != nullptr)) {
    if (error) {
      std::rethrow_exception(error);
    }
    throw AgreedError(std::string("ffc embed: another rank failed while ") + what +
                      "; its error is above");
  }
}

}  // namespace

EmbedInput open_embed_input(const std::string& path, int64_t image_size, data::ColorOrder order,
                            const InputNorm& norm) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    if (fs::exists(path + "/train.rec", ec)) {
      return recordio_input(path, image_size, order, norm);
    }
    return folder_input(path, image_size, order, norm);
  }
  if (fs::is_regular_file(path, ec)) {
    if (ends_with(path, ".rec")) {
      return recordio_input(path, image_size, order, norm);
    }
    if (ends_with(path, ".h5")) {
      return set_input(path, image_size, order, norm);
    }
    throw FormatError(path +
                      ": not an input ffc embed reads; give an image folder (JPEG files, one "
                      "sub-folder per identity or flat), a RecordIO dataset folder or its "
                      "train.rec, or a verification set file (.h5, tools/bin2ffc.py)");
  }
  throw IoError(path + ": no such file or folder");
}

void write_embeddings_h5(model::Backbone& net, const EmbedInput& input, comm::Communicator& comm,
                         const std::string& out, const h5::Attributes& attrs,
                         const EmbedFileOptions& options) {
  FFC_CHECK(options.chunk >= 1, "embedding chunk must be at least 1 image");
  const int64_t n = input.count;
  const int64_t d = net.spec().embedding_size;
  const int64_t p = comm.size();
  const int64_t begin = n * comm.rank() / p;
  const int64_t end = n * (comm.rank() + 1) / p;
  // Every rank takes part in the same number of collective writes.
  const int64_t largest_block = (n + p - 1) / p;
  const int64_t rounds = (largest_block + options.chunk - 1) / options.chunk;
  const std::string partial = out + ".partial";

  h5::ParallelFile file;
  try {
    agreed(comm, "creating the output file", [&] {
      file = h5::ParallelFile::create(partial, comm::mpi_comm(comm));
      file.create_dataset("embeddings", h5::DType::kFloat32, {n, d});
      if (input.has_labels) {
        file.create_dataset("labels", h5::DType::kInt64, {n});
      }
    });
    const bool was_training = net.is_training();
    for (int64_t r = 0; r < rounds; ++r) {
      const int64_t first = std::min(begin + r * options.chunk, end);
      const int64_t count = std::min(options.chunk, end - first);
      at::Tensor rows;
      agreed(comm, "embedding its images", [&] {
        const RawEmbeddings raw =
            embed_raw(net, first, first + count, input.fill, options.batch, options.flip);
        rows = (options.flip ? raw.plain + raw.mirror : raw.plain).contiguous();
      });
      file.write_rows("embeddings", h5::DType::kFloat32, first, count, rows.data_ptr<float>());
      if (input.has_labels) {
        file.write_rows("labels", h5::DType::kInt64, first, count, input.labels->data() + first);
      }
    }
    if (was_training) {
      net.train();
    }
    file.write_attribute("format", std::string(kEmbeddingsFormat));
    file.write_attribute("format_version", kEmbeddingsFormatVersion);
    file.write_attribute("count", n);
    file.write_attribute("flip", static_cast<int64_t>(options.flip ? 1 : 0));
    for (const auto& [name, value] : attrs) {
      file.write_attribute(name, value);
    }
    file.close();
  } catch (...) {
    file = h5::ParallelFile();  // closes it
    if (comm.rank() == 0) {
      std::error_code ec;
      fs::remove(partial, ec);  // nothing half-written is left behind
    }
    throw;
  }
  agreed(comm, "finishing the output file", [&] {
    if (comm.rank() != 0) {
      return;
    }
    std::error_code ec;
    try {
      if (!input.paths.empty()) {
        h5::File f = h5::File::open_write(partial);
        f.root().write_strings("paths", input.paths);
        f.close();
      }
    } catch (...) {
      fs::remove(partial, ec);
      throw;
    }
    AtomicFile(out, partial).commit();  // removes the partial file when it fails
  });
}

}  // namespace ffc::eval
