// Named tensors in HDF5: element types, shapes, order, attributes, strict loading, errors.

#include "h5/state_dict.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>

#include "common/error.h"
#include "h5/h5.h"
#include "support/temp_dir.h"

namespace ffc::h5 {
namespace {

using test::TempDir;

NamedTensors sample() {
  at::manual_seed(1);
  return {
      {"z.last.weight", at::randn({4, 3, 3, 3})},
      {"a.bias", at::randn({7}, at::kDouble)},
      {"layer1.0.bn1.num_batches_tracked", at::full({}, 42, at::kLong)},
      {"m.index", at::arange(6, at::kLong).view({2, 3})},
      {"scalar", at::full({}, 2.5f)},
      {"empty", at::zeros({0, 5})},
      {"transposed", at::randn({3, 5}).t()},  // not contiguous
  };
}

TEST(StateDictH5, RoundTripKeepsTypesShapesValuesAndOrder) {
  TempDir dir;
  const NamedTensors in = sample();
  h5::write_tensors(dir.file("t.h5"), in, {});
  const NamedTensors out = h5::read_tensors(dir.file("t.h5"));
  ASSERT_EQ(out.size(), in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    EXPECT_EQ(out[i].first, in[i].first);  // creation order, not name order
    EXPECT_EQ(out[i].second.scalar_type(), in[i].second.scalar_type()) << in[i].first;
    EXPECT_EQ(out[i].second.sizes(), in[i].second.sizes()) << in[i].first;
    EXPECT_TRUE(at::equal(out[i].second, in[i].second)) << in[i].first;
  }
  EXPECT_EQ(dir.entries(), 1u) << "temporary file left behind";
}

TEST(StateDictH5, KeysAreFlatDatasetNamesAtTheRoot) {
  TempDir dir;
  h5::write_tensors(dir.file("t.h5"), sample(), {});
  h5::File file = h5::File::open_read(dir.file("t.h5"));
  EXPECT_TRUE(file.root().exists("layer1.0.bn1.num_batches_tracked"));
  EXPECT_FALSE(file.root().exists("layer1"));  // no groups made of the dotted parts
  EXPECT_EQ(file.root().open_dataset("scalar").dims(), std::vector<int64_t>{});
  EXPECT_EQ(file.root().open_dataset("m.index").element_type(), h5::ElementType::kInt64);
  file.close();
}

TEST(StateDictH5, RootAttributesRoundTrip) {
  TempDir dir;
  const Attributes attrs = {{"format", std::string("ffc-backbone")},
                            {"format_version", int64_t{1}},
                            {"alpha", 0.99},
                            {"note", std::string("gr\xc3\xbc\xc3\x9f"
                                                 "e")}};
  h5::write_tensors(dir.file("a.h5"), {{"x", at::ones({1})}}, attrs);
  const Attributes got = h5::read_root_attributes(dir.file("a.h5"));
  ASSERT_EQ(got.size(), attrs.size());
  for (const auto& [name, value] : attrs) {
    bool found = false;
    for (const auto& [n, v] : got) {
      if (n == name) {
        found = true;
        EXPECT_EQ(v, value) << name << ": " << h5::to_string(v);
      }
    }
    EXPECT_TRUE(found) << name;
  }
}

TEST(StateDictH5, StrictLoadCopiesIntoExistingTensors) {
  TempDir dir;
  const NamedTensors in = sample();
  h5::write_tensors(dir.file("t.h5"), in, {});
  NamedTensors into;
  for (const auto& [name, t] : in) {
    into.emplace_back(name, at::zeros_like(t.contiguous()));
  }
  std::reverse(into.begin(), into.end());  // order does not matter, names do
  const void* storage = into[0].second.data_ptr();
  h5::load_tensors(dir.file("t.h5"), into);
  EXPECT_EQ(into[0].second.data_ptr(), storage) << "must copy into the given tensors";
  for (size_t i = 0; i < in.size(); ++i) {
    EXPECT_TRUE(at::equal(into[in.size() - 1 - i].second, in[i].second)) << in[i].first;
  }
}

void expect_load_error(const std::string& path, const NamedTensors& into,
                       const std::vector<std::string>& words) {
  const std::vector<at::Tensor> before = [&] {
    std::vector<at::Tensor> v;
    for (const auto& [n, t] : into) {
      v.push_back(t.clone());
    }
    return v;
  }();
  try {
    h5::load_tensors(path, into);
    FAIL() << "expected FormatError";
  } catch (const FormatError& e) {
    for (const auto& w : words) {
      EXPECT_NE(std::string(e.what()).find(w), std::string::npos) << w << " not in " << e.what();
    }
  }
  for (size_t i = 0; i < into.size(); ++i) {
    EXPECT_TRUE(at::equal(into[i].second, before[i])) << "changed by a failed load";
  }
}

TEST(StateDictH5, StrictLoadErrorsNameTheTensorAndLeaveTargetsAlone) {
  TempDir dir;
  const std::string path = dir.file("t.h5");
  h5::write_tensors(path, {{"a.weight", at::ones({2, 3})}, {"b.bias", at::ones({4})}}, {});
  expect_load_error(path, {{"a.weight", at::zeros({3, 2})}, {"b.bias", at::zeros({4})}},
                    {"t.h5", "'a.weight'", "[2, 3] in the file", "[3, 2] in the model"});
  expect_load_error(
      path,
      {{"a.weight", at::zeros({2, 3})}, {"b.bias", at::zeros({4})}, {"c.extra", at::zeros({1})}},
      {"lacks tensor 'c.extra'"});
  expect_load_error(path, {{"a.weight", at::zeros({2, 3})}}, {"holds tensor 'b.bias'"});
  expect_load_error(path,
                    {{"a.weight", at::zeros({2, 3}, at::kDouble)}, {"b.bias", at::zeros({4})}},
                    {"'a.weight'", "float32 in the file", "float64 in the model"});
}

TEST(StateDictH5, UnsupportedTypeFailsWithoutLeavingAFile) {
  TempDir dir;
  const std::string path = dir.file("half.h5");
  try {
    h5::write_tensors(path, {{"ok", at::ones({2})}, {"h", at::ones({2}, at::kHalf)}}, {});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'h'"), std::string::npos) << e.what();
  }
  EXPECT_EQ(dir.entries(), 0u);
}

TEST(StateDictH5, Hdf5ErrorsGoThroughTheChokePoint) {
  TempDir dir;
  h5::File file = h5::File::create(dir.file("dup.h5"));
  file.root().create_dataset("x", h5::ElementType::kFloat32, {2}).close();
  try {
    file.root().create_dataset("x", h5::ElementType::kFloat32, {2});
    FAIL() << "expected LibraryError";
  } catch (const LibraryError& e) {
    EXPECT_EQ(e.library(), Library::kHdf5);
    const std::string msg = e.what();
    EXPECT_NE(msg.find("HDF5 call `H5Dcreate2"), std::string::npos) << msg;
    EXPECT_NE(msg.find("h5.cpp:"), std::string::npos) << msg;
    EXPECT_NE(msg.find("exists"), std::string::npos) << msg;  // HDF5's own reason
  }
  file.close();
  EXPECT_THROW(h5::read_tensors(dir.file("none.h5")), IoError);
  EXPECT_THROW(h5::write_tensors(dir.file("missing/dir/x.h5"), {}, {}), IoError);
}

}  // namespace
}  // namespace ffc::h5
