#pragma once
// JPEG decoding and encoding through TurboJPEG, into caller-provided buffers. One decoder per
// thread (a TurboJPEG handle is not thread-safe); its scratch memory is reused across images.
// Torch-free, for the sanitizer fuzz build.

#include <cstdint>
#include <string>
#include <vector>

namespace ffc::data {

// Channel order of decoded images. insightface's arcface_torch decodes RGB (MXNet imdecode); the
// FFC authors' loader decodes BGR (OpenCV). Config key color_order.
enum class ColorOrder { kRgb, kBgr };
ColorOrder parse_color_order(const std::string& name);  // "rgb" | "bgr"

class JpegDecoder {
 public:
  JpegDecoder();
  ~JpegDecoder();
  JpegDecoder(const JpegDecoder&) = delete;
  JpegDecoder& operator=(const JpegDecoder&) = delete;

  // Width and height from the JPEG header. Throws FormatError prefixed by `where` when the bytes
  // are not a readable JPEG.
  void dimensions(const uint8_t* data, size_t size, const std::string& where, int& width,
                  int& height);

  // Decodes to `height` x `width` x 3 interleaved bytes at `out`. When the image has another size:
  // with `resize` false, FormatError naming both sizes; with `resize` true, bilinear resize.
  // Corrupt data (including TurboJPEG warnings such as a premature end) is a FormatError.
  void decode(const uint8_t* data, size_t size, int width, int height, ColorOrder order,
              bool resize, uint8_t* out, const std::string& where);

 private:
  void* handle_ = nullptr;
  std::vector<uint8_t> scratch_;
};

class JpegEncoder {
 public:
  JpegEncoder();
  ~JpegEncoder();
  JpegEncoder(const JpegEncoder&) = delete;
  JpegEncoder& operator=(const JpegEncoder&) = delete;

  // Encodes height x width x 3 RGB bytes (4:2:0 chroma, as OpenCV's and MXNet's defaults).
  void encode(const uint8_t* rgb, int width, int height, int quality, std::vector<uint8_t>& out);

 private:
  void* handle_ = nullptr;
};

// Bilinear resize of an interleaved 3-channel image (pixel centres aligned, as OpenCV's
// INTER_LINEAR).
void resize_bilinear(const uint8_t* src, int src_w, int src_h, uint8_t* dst, int dst_w, int dst_h);

}  // namespace ffc::data
