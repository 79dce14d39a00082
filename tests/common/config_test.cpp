// Config: defaults <- file <- --set, clear errors naming the key and the place, dump round trip.

#include "common/config.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "common/error.h"

namespace ffc {
namespace {

const std::string kData = std::string(FFC_SOURCE_DIR) + "/tests/common/data/";

// The ConfigError message for loading `text`, or "" when it loads.
std::string load_error(const std::string& text) {
  try {
    ConfigLoader loader;
    loader.load_string(text, "run.yaml");
    loader.finish();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

std::string set_error(const std::string& assignment) {
  try {
    ConfigLoader loader;
    loader.set(assignment);
    loader.finish();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(Config, DefaultsFollowInsightface) {
  const Config c;
  EXPECT_EQ(c.network, "r50");
  EXPECT_EQ(c.embedding_size, 512);
  EXPECT_EQ(c.batch_size, 128);
  EXPECT_DOUBLE_EQ(c.lr, 0.1);
  EXPECT_DOUBLE_EQ(c.momentum, 0.9);
  EXPECT_DOUBLE_EQ(c.weight_decay, 5e-4);
  EXPECT_EQ(c.margin_list, (std::vector<double>{1.0, 0.5, 0.0}));
  EXPECT_EQ(c.seed, 2048);
  EXPECT_EQ(c.frequent, 10);
  EXPECT_EQ(c.verbose, 2000);
}

TEST(Config, GoodFileLoads) {
  ConfigLoader loader;
  loader.load_file(kData + "good.yaml");
  const Config& c = loader.finish();
  EXPECT_EQ(c.network, "r100");
  EXPECT_EQ(c.embedding_size, 256);
  EXPECT_EQ(c.batch_size, 64);
  EXPECT_DOUBLE_EQ(c.lr, 0.05);
  EXPECT_EQ(c.margin_list, (std::vector<double>{1.0, 0.0, 0.4}));
  EXPECT_EQ(c.output, "runs/glint r100");
  EXPECT_EQ(c.seed, 7);
  EXPECT_EQ(c.num_epoch, 20);  // untouched keys keep their defaults
  EXPECT_EQ(loader.source_of("lr"), kData + "good.yaml:5");
  EXPECT_EQ(loader.source_of("num_epoch"), "default");
}

TEST(Config, OverridePrecedence) {
  ConfigLoader loader;
  loader.load_file(kData + "good.yaml");  // lr 0.05
  loader.set("lr=0.2");
  loader.set("batch_size=32");
  loader.set("lr=0.3");  // later --set wins
  loader.set("margin_list=[1.0, 0.5, 0.1]");
  const Config& c = loader.finish();
  EXPECT_DOUBLE_EQ(c.lr, 0.3);
  EXPECT_EQ(c.batch_size, 32);
  EXPECT_EQ(c.embedding_size, 256);  // from the file
  EXPECT_EQ(c.margin_list, (std::vector<double>{1.0, 0.5, 0.1}));
  EXPECT_EQ(loader.source_of("lr"), "--set");
}

TEST(Config, UnknownKeyNamesKeyPlaceAndSuggestion) {
  const std::string e = load_error("lr: 0.1\nlrr: 0.2\n");
  EXPECT_NE(e.find("run.yaml:2"), std::string::npos) << e;
  EXPECT_NE(e.find("unknown key 'lrr'"), std::string::npos) << e;
  EXPECT_NE(e.find("did you mean 'lr'"), std::string::npos) << e;
  EXPECT_NE(set_error("batchsize=3").find("did you mean 'batch_size'"), std::string::npos);
}

TEST(Config, WrongTypeNamesKeyAndWhatIsAllowed) {
  const std::string e = load_error("batch_size: abc\n");
  EXPECT_NE(e.find("run.yaml:1"), std::string::npos) << e;
  EXPECT_NE(e.find("'batch_size'"), std::string::npos) << e;
  EXPECT_NE(e.find("not an integer"), std::string::npos) << e;
  EXPECT_NE(e.find("integer in [1, 1048576]"), std::string::npos) << e;
  EXPECT_NE(load_error("batch_size: 1.5\n"), "");
  EXPECT_NE(load_error("lr: [0.1]\n").find("got a list"), std::string::npos);
  EXPECT_NE(load_error("margin_list: 0.5\n").find("expected a list"), std::string::npos);
  EXPECT_NE(load_error("margin_list: [1.0, 0.5]\n").find("2 elements"), std::string::npos);
  EXPECT_NE(load_error("method: softmax\n").find("one of fc pfc vfc ffc"), std::string::npos);
  EXPECT_NE(load_error("lr: nan\n"), "");
}

TEST(Config, OutOfRangeNamesKeyAndRange) {
  const std::string e = load_error("momentum: 1.5\n");
  EXPECT_NE(e.find("'momentum'"), std::string::npos) << e;
  EXPECT_NE(e.find("out of range"), std::string::npos) << e;
  EXPECT_NE(e.find("[0.0, 1.0)"), std::string::npos) << e;
  EXPECT_NE(load_error("lr: 0\n"), "");
  EXPECT_NE(load_error("sample_rate: 0\n"), "");
  EXPECT_EQ(load_error("sample_rate: 1\n"), "");
  EXPECT_NE(load_error("embedding_size: 0\n"), "");
  EXPECT_NE(set_error("num_threads=-1").find("out of range"), std::string::npos);
}

TEST(Config, CrossKeyCheck) {
  const std::string e = load_error("num_epoch: 5\nwarmup_epoch: 5\n");
  EXPECT_NE(e.find("warmup_epoch"), std::string::npos) << e;
  EXPECT_NE(e.find("run.yaml:2"), std::string::npos) << e;
  EXPECT_EQ(load_error("num_epoch: 5\nwarmup_epoch: 4\n"), "");
}

// Virtual FC's K images per identity: automatic, it divides any batch (the demo's 32 included);
// set by hand, a K that does not divide the batch is refused naming both keys and the fix.
TEST(Config, ImagesPerIdentityFitsTheBatch) {
  for (const auto& [batch, k] : std::vector<std::pair<int64_t, int64_t>>{
           {32, 8}, {128, 8}, {100, 10}, {30, 10}, {7, 7}, {11, 1}, {1, 1}}) {
    ConfigLoader loader;
    loader.load_string("method: vfc\nbatch_size: " + std::to_string(batch) + "\n", "run.yaml");
    EXPECT_EQ(loader.finish().images_per_identity, k) << "batch " << batch;
  }
  const std::string e = load_error("method: vfc\nbatch_size: 32\nimages_per_identity: 10\n");
  EXPECT_NE(e.find("run.yaml:3"), std::string::npos) << e;
  EXPECT_NE(e.find("must divide batch_size (32"), std::string::npos) << e;
  EXPECT_NE(e.find("set images_per_identity to a divisor"), std::string::npos) << e;
  EXPECT_EQ(load_error("method: ffc\nbatch_size: 32\nimages_per_identity: 10\n"), "");
}

TEST(Config, MalformedInput) {
  EXPECT_NE(load_error("lr: 0.1\n  bad: [\n").find("not valid YAML"), std::string::npos);
  EXPECT_NE(load_error("- lr\n- seed\n").find("mapping"), std::string::npos);
  EXPECT_NE(load_error("lr: 0.1\nlr: 0.2\n").find("appears twice"), std::string::npos);
  EXPECT_EQ(load_error(""), "");  // an empty file is all defaults
  EXPECT_NE(set_error("lr").find("expected key=value"), std::string::npos);
  try {
    ConfigLoader loader;
    loader.load_file(kData + "does-not-exist.yaml");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("does-not-exist.yaml"), std::string::npos);
  }
}

TEST(Config, DumpRoundTrip) {
  ConfigLoader loader;
  loader.set("lr=0.1");
  loader.set("weight_decay=1e-4");
  loader.set("sample_rate=0.3333333333333333");
  loader.set("output=runs/a \"quoted\" path: with colon # and hash");
  loader.set("network=mbf");
  loader.set("margin_list=[1.0, 0.0, 0.4]");
  loader.set("seed=9007199254740993");
  loader.set("num_epoch=1");
  const Config original = loader.finish();
  const std::string text = dump_config(original);

  ConfigLoader again;
  again.load_string(text, "dump.yaml");
  const Config& back = again.finish();
  EXPECT_EQ(back.output, original.output);
  EXPECT_EQ(back.sample_rate, original.sample_rate);  // bit-exact
  EXPECT_EQ(back.weight_decay, 1e-4);
  EXPECT_EQ(back.seed, 9007199254740993LL);
  EXPECT_EQ(back.margin_list, original.margin_list);
  EXPECT_TRUE(back == original);
  EXPECT_FALSE(back == Config());
  EXPECT_EQ(dump_config(back), text);
}

TEST(Config, EveryKeyIsDocumented) {
  for (const auto& k : config_keys()) {
    EXPECT_FALSE(k.doc.empty()) << k.name;
    EXPECT_FALSE(k.allowed.empty()) << k.name;
    // The default, written back as YAML, is accepted.
    EXPECT_EQ(set_error(k.name + "=" + k.default_value), "") << k.name;
  }
}

// docs/config.md carries the generated key table; it must not drift from the code.
TEST(Config, DocsTableIsCurrent) {
  std::ifstream in(std::string(FFC_SOURCE_DIR) + "/docs/config.md");
  ASSERT_TRUE(in) << "docs/config.md is missing";
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_NE(ss.str().find(config_keys_markdown()), std::string::npos)
      << "docs/config.md is out of date: run tools/update-config-doc";
}

}  // namespace
}  // namespace ffc
