#include "data/jpeg.h"

#include <turbojpeg.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "common/error.h"

namespace ffc::data {
namespace {

std::string first_bytes(const uint8_t* data, size_t size) {
  std::string s;
  char buf[8];
  for (size_t i = 0; i < std::min<size_t>(size, 4); ++i) {
    std::snprintf(buf, sizeof(buf), "%s%02x", i ? " " : "", data[i]);
    s += buf;
  }
  return s.empty() ? "nothing" : s;
}

std::string guess_format(const uint8_t* data, size_t size) {
  if (size >= 4 && data[0] == 0x89 && data[1] == 'P' && data[2] == 'N' && data[3] == 'G') {
    return " (a PNG)";
  }
  if (size >= 2 && data[0] == 'B' && data[1] == 'M') {
    return " (a BMP)";
  }
  return "";
}

}  // namespace

ColorOrder parse_color_order(const std::string& name) {
  if (name == "rgb") {
    return ColorOrder::kRgb;
  }
  if (name == "bgr") {
    return ColorOrder::kBgr;
  }
  throw ConfigError("color order '" + name + "' is not rgb or bgr");
}

JpegDecoder::JpegDecoder() {
  handle_ = tjInitDecompress();
  FFC_CHECK(handle_ != nullptr,
            std::string("TurboJPEG: cannot create a decompressor: ") + tjGetErrorStr2(nullptr));
}

JpegDecoder::~JpegDecoder() {
  tjDestroy(handle_);
}

void JpegDecoder::dimensions(const uint8_t* data, size_t size, const std::string& where, int& width,
                             int& height) {
  if (size < 4 || data[0] != 0xFF || data[1] != 0xD8) {
    throw FormatError(where + ": the image payload is not a JPEG (it starts with " +
                      first_bytes(data, size) + ")" + guess_format(data, size) +
                      "; ffc reads JPEG images: re-pack the dataset with `ffc pack`");
  }
  int subsamp = 0;
  int colorspace = 0;
  if (tjDecompressHeader3(handle_, data, static_cast<unsigned long>(size), &width, &height,
                          &subsamp, &colorspace) != 0) {
    throw FormatError(where + ": unreadable JPEG header (" + tjGetErrorStr2(handle_) + ")");
  }
  if (width <= 0 || height <= 0 || width > 65535 || height > 65535) {
    throw FormatError(where + ": JPEG of implausible size " + std::to_string(width) + "x" +
                      std::to_string(height));
  }
}

void JpegDecoder::decode(const uint8_t* data, size_t size, int width, int height, ColorOrder order,
                         bool resize, uint8_t* out, const std::string& where) {
  int w = 0;
  int h = 0;
  dimensions(data, size, where, w, h);
  const int pixel_format = order == ColorOrder::kRgb ? TJPF_RGB : TJPF_BGR;
  uint8_t* target = out;
  if (w != width || h != height) {
    if (!resize) {
      throw FormatError(where + ": image is " + std::to_string(w) + "x" + std::to_string(h) +
                        " but the configuration expects " + std::to_string(width) + "x" +
                        std::to_string(height) + " (image_size); align the images to that size, " +
                        "set image_size, or set resize: true");
    }
    scratch_.resize(static_cast<size_t>(w) * h * 3);
    target = scratch_.data();
  }
  const int rc = tjDecompress2(handle_, data, static_cast<unsigned long>(size), target, w, 0, h,
                               pixel_format, TJFLAG_NOREALLOC);
  if (rc != 0) {
    throw FormatError(where + ": corrupt JPEG data (" + tjGetErrorStr2(handle_) + ")");
  }
  if (target != out) {
    resize_bilinear(target, w, h, out, width, height);
  }
}

JpegEncoder::JpegEncoder() {
  handle_ = tjInitCompress();
  FFC_CHECK(handle_ != nullptr,
            std::string("TurboJPEG: cannot create a compressor: ") + tjGetErrorStr2(nullptr));
}

JpegEncoder::~JpegEncoder() {
  tjDestroy(handle_);
}

void JpegEncoder::encode(const uint8_t* rgb, int width, int height, int quality,
                         std::vector<uint8_t>& out) {
  out.resize(tjBufSize(width, height, TJSAMP_420));
  unsigned char* buf = out.data();
  unsigned long len = static_cast<unsigned long>(out.size());
  if (tjCompress2(handle_, rgb, width, 0, height, TJPF_RGB, &buf, &len, TJSAMP_420, quality,
                  TJFLAG_NOREALLOC) != 0) {
    throw Error(std::string("JPEG encoding failed: ") + tjGetErrorStr2(handle_));
  }
  out.resize(len);
}

void resize_bilinear(const uint8_t* src, int src_w, int src_h, uint8_t* dst, int dst_w, int dst_h) {
  const float sx = static_cast<float>(src_w) / dst_w;
  const float sy = static_cast<float>(src_h) / dst_h;
  for (int y = 0; y < dst_h; ++y) {
    const float fy = std::clamp((y + 0.5f) * sy - 0.5f, 0.0f, static_cast<float>(src_h - 1));
    const int y0 = static_cast<int>(fy);
    const int y1 = std::min(y0 + 1, src_h - 1);
    const float wy = fy - y0;
    for (int x = 0; x < dst_w; ++x) {
      const float fx = std::clamp((x + 0.5f) * sx - 0.5f, 0.0f, static_cast<float>(src_w - 1));
      const int x0 = static_cast<int>(fx);
      const int x1 = std::min(x0 + 1, src_w - 1);
      const float wx = fx - x0;
      for (int c = 0; c < 3; ++c) {
        const float a = src[(y0 * src_w + x0) * 3 + c];
        const float b = src[(y0 * src_w + x1) * 3 + c];
        const float d = src[(y1 * src_w + x0) * 3 + c];
        const float e = src[(y1 * src_w + x1) * 3 + c];
        const float v = (a * (1 - wx) + b * wx) * (1 - wy) + (d * (1 - wx) + e * wx) * wy;
        dst[(y * dst_w + x) * 3 + c] = static_cast<uint8_t>(std::lround(v));
      }
    }
  }
}

}  // namespace ffc::data
