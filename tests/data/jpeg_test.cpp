// TurboJPEG decoding: round trip, colour order, size checks, resize, corrupt input.

#include "data/jpeg.h"

#include <gtest/gtest.h>

#include <cmath>

#include "common/error.h"

namespace ffc::data {
namespace {

std::vector<uint8_t> gradient(int w, int h) {
  std::vector<uint8_t> px(static_cast<size_t>(w) * h * 3);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      uint8_t* p = &px[(static_cast<size_t>(y) * w + x) * 3];
      p[0] = static_cast<uint8_t>(x * 255 / (w - 1));  // red grows to the right
      p[1] = static_cast<uint8_t>(y * 255 / (h - 1));  // green grows downwards
      p[2] = 40;
    }
  }
  return px;
}

double mean_abs_diff(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    s += std::abs(static_cast<int>(a[i]) - static_cast<int>(b[i]));
  }
  return s / a.size();
}

TEST(Jpeg, RoundTripAndColourOrder) {
  const auto rgb = gradient(48, 32);
  JpegEncoder enc;
  std::vector<uint8_t> jpeg;
  enc.encode(rgb.data(), 48, 32, 95, jpeg);
  ASSERT_GT(jpeg.size(), 100u);
  EXPECT_EQ(jpeg[0], 0xFF);
  EXPECT_EQ(jpeg[1], 0xD8);

  JpegDecoder dec;
  int w = 0, h = 0;
  dec.dimensions(jpeg.data(), jpeg.size(), "t", w, h);
  EXPECT_EQ(w, 48);
  EXPECT_EQ(h, 32);
  // Height and width differ here; decode() checks against the expected (width, height).
  std::vector<uint8_t> out(rgb.size());
  dec.decode(jpeg.data(), jpeg.size(), 48, 32, ColorOrder::kRgb, false, out.data(), "t");
  EXPECT_LT(mean_abs_diff(out, rgb), 3.0);

  std::vector<uint8_t> bgr(rgb.size());
  dec.decode(jpeg.data(), jpeg.size(), 48, 32, ColorOrder::kBgr, false, bgr.data(), "t");
  for (size_t i = 0; i < bgr.size(); i += 3) {
    EXPECT_EQ(bgr[i], out[i + 2]);
    EXPECT_EQ(bgr[i + 2], out[i]);
  }
}

TEST(Jpeg, SizeMismatchIsAnErrorUnlessResizing) {
  const auto rgb = gradient(40, 40);
  JpegEncoder enc;
  std::vector<uint8_t> jpeg;
  enc.encode(rgb.data(), 40, 40, 95, jpeg);
  JpegDecoder dec;
  std::vector<uint8_t> out(20 * 20 * 3);
  try {
    dec.decode(jpeg.data(), jpeg.size(), 20, 20, ColorOrder::kRgb, false, out.data(), "rec 7");
    FAIL();
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("rec 7: image is 40x40"), std::string::npos) << e.what();
  }
  dec.decode(jpeg.data(), jpeg.size(), 20, 20, ColorOrder::kRgb, true, out.data(), "rec 7");
  // The resized gradient still grows to the right and downwards.
  EXPECT_LT(out[0], out[(19) * 3]);
  EXPECT_LT(out[1], out[(19 * 20) * 3 + 1]);
}

TEST(Jpeg, CorruptData) {
  const auto rgb = gradient(32, 32);
  JpegEncoder enc;
  std::vector<uint8_t> jpeg;
  enc.encode(rgb.data(), 32, 32, 90, jpeg);
  JpegDecoder dec;
  std::vector<uint8_t> out(rgb.size());
  std::vector<uint8_t> truncated(jpeg.begin(), jpeg.begin() + jpeg.size() / 2);
  EXPECT_THROW(dec.decode(truncated.data(), truncated.size(), 32, 32, ColorOrder::kRgb, false,
                          out.data(), "t"),
               FormatError);
  const uint8_t png[] = {0x89, 'P', 'N', 'G', 1, 2, 3, 4};
  try {
    dec.decode(png, sizeof(png), 32, 32, ColorOrder::kRgb, false, out.data(), "r");
    FAIL();
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("not a JPEG"), std::string::npos);
  }
  EXPECT_THROW(dec.decode(png, 0, 32, 32, ColorOrder::kRgb, false, out.data(), "r"), FormatError);
}

TEST(Jpeg, ResizeBilinearPreservesConstants) {
  std::vector<uint8_t> src(7 * 5 * 3, 77);
  std::vector<uint8_t> dst(13 * 11 * 3);
  resize_bilinear(src.data(), 7, 5, dst.data(), 13, 11);
  for (uint8_t v : dst) {
    EXPECT_EQ(v, 77);
  }
}

}  // namespace
}  // namespace ffc::data
