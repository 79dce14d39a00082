// Input normalisation: the two named constants, pixels to CHW floats (with the mirror), the
// resolution of input_norm: auto, and the attributes a file records.

#include "common/input_norm.h"

#include <gtest/gtest.h>

#include <vector>

#include "common/error.h"

namespace ffc {
namespace {

TEST(InputNorm, NamedConstants) {
  EXPECT_EQ(input_norm_named("ffc").stddev, 128.0);
  EXPECT_EQ(input_norm_named("insightface").stddev, 127.5);
  EXPECT_EQ(input_norm_named("insightface").mean, 127.5);
  EXPECT_EQ(legacy_input_norm().name, "ffc");
  EXPECT_THROW(input_norm_named("imagenet"), ConfigError);
}

TEST(InputNorm, PixelsToChwWithMirror) {
  // A 2x2 image: pixel (y, x) has channels (10y + x, 100, 255).
  std::vector<uint8_t> hwc(12);
  for (int y = 0; y < 2; ++y) {
    for (int x = 0; x < 2; ++x) {
      const auto o = static_cast<size_t>(3 * (2 * y + x));
      hwc[o] = static_cast<uint8_t>(10 * y + x);
      hwc[o + 1] = 100;
      hwc[o + 2] = 255;
    }
  }
  const InputNorm ins = input_norm_named("insightface");
  std::vector<float> chw(12);
  normalize_pixels(hwc.data(), 2, false, ins, chw.data());
  EXPECT_FLOAT_EQ(chw[0], (0.0f - 127.5f) / 127.5f);
  EXPECT_FLOAT_EQ(chw[1], (1.0f - 127.5f) / 127.5f);
  EXPECT_FLOAT_EQ(chw[2], (10.0f - 127.5f) / 127.5f);
  EXPECT_FLOAT_EQ(chw[4], (100.0f - 127.5f) / 127.5f);
  EXPECT_FLOAT_EQ(chw[11], 1.0f);
  normalize_pixels(hwc.data(), 2, true, input_norm_named("ffc"), chw.data());
  EXPECT_EQ(chw[0], (1.0f - 127.5f) / 128.0f);  // mirrored: x = 0 reads x = 1
  EXPECT_EQ(chw[3], (10.0f - 127.5f) / 128.0f);
  EXPECT_EQ(chw[8], (255.0f - 127.5f) / 128.0f);
}

TEST(InputNorm, AutoTakesTheInitialBackbones) {
  EXPECT_EQ(resolve_input_norm("auto", std::nullopt).name, "ffc");
  EXPECT_EQ(resolve_input_norm("auto", input_norm_named("insightface")).name, "insightface");
  EXPECT_EQ(resolve_input_norm("ffc", input_norm_named("insightface")).name, "ffc");
}

TEST(InputNorm, RecordedAttributesAreChecked) {
  EXPECT_FALSE(input_norm_from_attributes(std::nullopt, std::nullopt, std::nullopt, "f.h5"));
  EXPECT_EQ(input_norm_from_attributes("insightface", 127.5, 127.5, "f.h5")->stddev, 127.5);
  EXPECT_EQ(input_norm_from_attributes("ffc", std::nullopt, std::nullopt, "f.h5")->stddev, 128.0);
  try {
    input_norm_from_attributes("insightface", 127.5, 128.0, "f.h5");
    FAIL() << "inconsistent attributes accepted";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("f.h5: root attribute input_std is 128"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(input_norm_from_attributes("bgr", std::nullopt, std::nullopt, "f.h5"), FormatError);
  EXPECT_THROW(input_norm_from_attributes(std::nullopt, 127.5, std::nullopt, "f.h5"), FormatError);
}

}  // namespace
}  // namespace ffc
