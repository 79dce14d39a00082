#pragma once
// A dataset as the samplers and the loader see it: images 0 .. num_images()-1, classes
// 0 .. num_classes()-1, square images of image_size() pixels. Implemented by RecordIO datasets
// (recordio_dataset.h), procedural identities (synthetic.h) and their concatenation.
// Torch-free.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace ffc::data {

// Fetches pixels; one per loader thread (holds decoder state and scratch buffers, so reading
// allocates nothing once the buffers have grown to the largest record).
class ImageReader {
 public:
  virtual ~ImageReader() = default;
  // Writes image_size x image_size x 3 bytes (interleaved, the source's colour order) to `out`
  // and returns the image's class label. Throws FormatError naming the file, record and byte
  // offset for bad data.
  virtual int64_t read(int64_t image, uint8_t* out) = 0;
};

class ImageSource {
 public:
  virtual ~ImageSource() = default;
  // One line for logs: "train.rec: 5179510 images, 93431 classes, 112x112".
  virtual std::string describe() const = 0;
  virtual int64_t num_images() const = 0;
  virtual int64_t num_classes() const = 0;
  virtual int image_size() const = 0;
  // The images of class `label`: their number, and the global index of the j-th.
  virtual int64_t class_size(int64_t label) const = 0;
  virtual int64_t class_image(int64_t label, int64_t j) const = 0;
  virtual std::unique_ptr<ImageReader> make_reader() const = 0;
  // A hint: images [first, first + count) will be read soon. File-backed sources start fetching
  // their bytes in large reads (block-shuffled reading, sampler.h); the default does nothing.
  virtual void will_read(int64_t /*first*/, int64_t /*count*/) const {}
  // Drops the source's file pages from the page cache, so that the next reads come from the
  // storage (`ffc data read --cold`); a no-op for procedural sources.
  virtual void drop_cached() const {}
  // False where a mirrored image is another identity (a glyph set's dataset.json says so): the
  // trainer then refuses flip: true.
  virtual bool mirror_allowed() const { return true; }
  // Bytes the set occupies in storage (0 for procedural sources).
  virtual int64_t stored_bytes() const { return 0; }
  // Calls fn(images_per_class, number_of_classes) over a partition of the classes (the default
  // visits every class; procedural sources visit their runs of equal counts).
  virtual void for_each_class_size(const std::function<void(int64_t, int64_t)>& fn) const {
    for (int64_t y = 0; y < num_classes(); ++y) {
      fn(class_size(y), 1);
    }
  }
};

}  // namespace ffc::data
