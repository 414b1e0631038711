// The config: YAML + --set overrides into typed structs, and the errors a user sees.
#include <gtest/gtest.h>

#include <fstream>

#include "core/config.h"
#include "core/error.h"
#include "core/files.h"
#include "tests/test_util.h"

namespace chart {
namespace {
using testing::TempDir;

std::string write_yaml(const TempDir& dir, const std::string& text) {
  auto path = (dir / "c.yaml").string();
  std::ofstream(path) << text;
  return path;
}

// The message of the chart::Error that f throws; fails the test if none is thrown.
template <typename F>
std::string error_of(F f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected chart::Error";
  return "";
}

TEST(Config, DefaultsWithoutAFile) {
  Config c = load_config("", {});
  EXPECT_EQ(c.train.steps, 100);
  EXPECT_EQ(c.prepare.min_subjects, 10);
  EXPECT_EQ(c.model.time_encoding, "sinusoidal");
}

TEST(Config, ReadsFileAndOverrides) {
  TempDir dir;
  auto path = write_yaml(dir, "train:\n  steps: 50\n  lr: 3e-4\nmodel:\n  d_model: 64\n");
  Config c = load_config(path, {"train.steps=7", "data.dir=/tmp/x", "train.steps=9",
                                "prepare.time_bins=[1h, 1d]", "model.time_head=true",
                                "train.batch_size=1e3"});
  EXPECT_EQ(c.train.steps, 9);  // the last --set wins
  EXPECT_DOUBLE_EQ(c.train.lr, 3e-4);
  EXPECT_EQ(c.model.d_model, 64);
  EXPECT_EQ(c.data.dir, "/tmp/x");
  EXPECT_EQ(c.prepare.time_bins, (std::vector<std::string>{"1h", "1d"}));
  EXPECT_TRUE(c.model.time_head);
  EXPECT_EQ(c.train.batch_size, 1000);
}

TEST(Config, EmptyOverrideClearsAString) {
  Config c = load_config("", {"init.checkpoint=/a", "init.checkpoint="});
  EXPECT_EQ(c.init.checkpoint, "");
}

TEST(Config, UnknownKeyInFileNamesKeyFileAndLine) {
  TempDir dir;
  auto path = write_yaml(dir, "train:\n  steps: 5\n  stepz: 6\n");
  std::string msg = error_of([&] { load_config(path, {}); });
  EXPECT_NE(msg.find("unknown config key 'train.stepz'"), std::string::npos) << msg;
  EXPECT_NE(msg.find(path + ":3"), std::string::npos) << msg;
  EXPECT_NE(msg.find("steps"), std::string::npos) << msg;  // lists the known keys
}

TEST(Config, UnknownSectionAndUnknownOverride) {
  TempDir dir;
  auto path = write_yaml(dir, "trian:\n  steps: 5\n");
  EXPECT_NE(error_of([&] { load_config(path, {}); }).find("unknown config key 'trian'"),
            std::string::npos);
  std::string msg = error_of([] { load_config("", {"model.d_modle=3"}); });
  EXPECT_NE(msg.find("'model.d_modle'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("--set"), std::string::npos) << msg;
}

TEST(Config, WrongTypeNamesKeyAndValue) {
  TempDir dir;
  auto path = write_yaml(dir, "train:\n  steps: many\n");
  std::string msg = error_of([&] { load_config(path, {}); });
  EXPECT_NE(msg.find("'train.steps'"), std::string::npos) << msg;
  EXPECT_NE(msg.find(path + ":2"), std::string::npos) << msg;
  EXPECT_NE(msg.find("expected an integer, got 'many'"), std::string::npos) << msg;

  msg = error_of([] { load_config("", {"train.steps=1.5"}); });
  EXPECT_NE(msg.find("expected an integer"), std::string::npos) << msg;
  msg = error_of([] { load_config("", {"model.time_head=maybe"}); });
  EXPECT_NE(msg.find("'model.time_head'"), std::string::npos) << msg;
  msg = error_of([] { load_config("", {"train.lr=fast"}); });
  EXPECT_NE(msg.find("expected a number, got 'fast'"), std::string::npos) << msg;
  msg = error_of([] { load_config("", {"prepare.time_bins=1h"}); });
  EXPECT_NE(msg.find("expected a list"), std::string::npos) << msg;
  msg = error_of([] { load_config("", {"train=3"}); });
  EXPECT_NE(msg.find("must be a mapping"), std::string::npos) << msg;
}

TEST(Config, OutOfRangeAndBadChoice) {
  std::string msg = error_of([] { load_config("", {"train.lr=-1"}); });
  EXPECT_NE(msg.find("'train.lr'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("out of range"), std::string::npos) << msg;
  msg = error_of([] { load_config("", {"model.n_layers=0"}); });
  EXPECT_NE(msg.find("'model.n_layers'"), std::string::npos) << msg;
  msg = error_of([] { load_config("", {"train.schedule=linear"}); });
  EXPECT_NE(msg.find("'linear' is not one of: cosine, wsd, constant"), std::string::npos) << msg;
  msg = error_of([] { load_config("", {"model.d_model=100", "model.n_heads=3"}); });
  EXPECT_NE(msg.find("model.n_heads"), std::string::npos) << msg;
}

TEST(Config, MissingAndMalformedFile) {
  TempDir dir;
  std::string missing = (dir / "nope.yaml").string();
  std::string msg = error_of([&] { load_config(missing, {}); });
  EXPECT_NE(msg.find(missing), std::string::npos) << msg;
  EXPECT_NE(msg.find("does not exist"), std::string::npos) << msg;

  auto path = write_yaml(dir, "train: [1, 2\n");
  msg = error_of([&] { load_config(path, {}); });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("not valid YAML"), std::string::npos) << msg;
}

TEST(Config, BadOverrideSyntax) {
  EXPECT_NE(error_of([] { load_config("", {"train.steps"}); }).find("expected key=value"),
            std::string::npos);
  EXPECT_NE(error_of([] { load_config("", {"train.steps=5", "train.steps.x=1"}); }).find("not a section"),
            std::string::npos);
  // A value is YAML: an unquoted "k: v" is a mapping, refused where a string belongs.
  std::string msg = error_of([] { load_config("", {"data.dir=a: b"}); });
  EXPECT_NE(msg.find("'data.dir' (--set): expected a string, got a mapping"), std::string::npos) << msg;
}

TEST(Config, ResolvedYamlRoundTrips) {
  Config c = load_config("", {"train.lr=0.000123456789", "data.dir='a b: c'", "model.n_kv_heads=2",
                              "prepare.time_bins=[1h]", "train.packing=false"});
  std::string text = config_to_yaml(c);
  TempDir dir;
  auto path = write_yaml(dir, text);
  Config again = load_config(path, {});
  EXPECT_EQ(config_to_yaml(again), text);
  EXPECT_DOUBLE_EQ(again.train.lr, 0.000123456789);
  EXPECT_EQ(again.data.dir, "a b: c");
  EXPECT_FALSE(again.train.packing);
}

TEST(Config, EveryShippedConfigLoads) {
  int n = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(testing::source_dir() / "configs"))
    if (e.path().extension() == ".yaml") {
      EXPECT_NO_THROW(load_config(e.path().string(), {})) << e.path();
      ++n;
    }
  EXPECT_GE(n, 1);
}

TEST(Config, ReadmeDocumentsEveryKey) {
  std::string readme = read_file(testing::source_dir() / "configs" / "README.md");
  for (const auto& key : config_keys())
    EXPECT_NE(readme.find("`" + key + "`"), std::string::npos) << key << " is not in configs/README.md";
}

}  // namespace
}  // namespace chart
