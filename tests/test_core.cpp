// core/: checksums, atomic files and directories, command-line options, formatting.
#include <gtest/gtest.h>

#include <sstream>

#include <fstream>

#include "core/error.h"
#include "core/files.h"
#include "core/log.h"
#include "core/sha256.h"
#include "tests/test_util.h"
#include "train/app/args.h"

namespace chart {
namespace {
using testing::TempDir;

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  Sha256 h;  // a million 'a's, fed in uneven pieces across block boundaries
  std::string chunk(999, 'a');
  size_t left = 1000000;
  while (left > 0) {
    size_t n = std::min(left, chunk.size());
    h.update(chunk.data(), n);
    left -= n;
  }
  EXPECT_EQ(h.hex(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

// Lengths around the 64-byte block and the 56-byte padding boundary, fed whole and byte by byte;
// the digests are Python's hashlib.sha256 of the same bytes.
TEST(Sha256, BlockBoundariesMatchKnownDigests) {
  std::string data;
  for (int i = 0; i < 100000; ++i) data += static_cast<char>((i * 131) ^ (i >> 5));
  const std::pair<size_t, const char*> known[] = {
      {0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
      {1, "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"},
      {55, "0165a9d347d3210d4975d187ac436d7384015877a72c83dd536d1cce49db266d"},
      {56, "9e9cd752a1d4ee2f73d7e2a3657a3a4ab173d27ea410c21d9503ecd78cfbfe3a"},
      {63, "869d7494c495df27d29f9df66bff3ca4cfe3af1f8d8fbdb9a378c9bb638d6da8"},
      {64, "af2d3f3eedee324093f5c44b129c302597ae998f27c3be97a1f4088455de8bc4"},
      {65, "43d6af8dd1f74652ad156a4f3e3db18e4339f0724a5eed5d38486a170803d119"},
      {1000, "df23322c7db50de6165bdb1df3c2f7475d0924c7e47a225ad0780076248dcc05"},
      {100000, "977dbc3b550c293d834440bcb24cd20aa9b81b7fc46a0cef2e4b3febe3e83771"}};
  for (const auto& [n, digest] : known) {
    Sha256 whole, bytewise;
    whole.update(data.data(), n);
    for (size_t i = 0; i < n; ++i) bytewise.update(data.data() + i, 1);
    EXPECT_EQ(whole.hex(), digest) << n;
    EXPECT_EQ(bytewise.hex(), digest) << n;
  }
}

TEST(Files, AtomicWriteLeavesOnlyTheFile) {
  TempDir dir;
  write_file_atomic(dir / "a.txt", "hello");
  write_file_atomic(dir / "a.txt", "world");  // replaces
  EXPECT_EQ(read_file(dir / "a.txt"), "world");
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) { (void)e; ++n; }
  EXPECT_EQ(n, 1);
  EXPECT_EQ(sha256_file(dir / "a.txt"), sha256_hex("world"));
}

TEST(Files, StagingDirIsInvisibleUntilCommit) {
  TempDir dir;
  auto final_path = dir / "out";
  {
    StagingDir s(final_path);
    std::ofstream(s.path() / "x") << "1";
    EXPECT_FALSE(std::filesystem::exists(final_path));
    // no commit: an error unwinds past it
  }
  EXPECT_FALSE(std::filesystem::exists(final_path));
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));  // the temporary is gone too
  {
    StagingDir s(final_path);
    std::ofstream(s.path() / "x") << "2";
    s.commit();
  }
  EXPECT_EQ(read_file(final_path / "x"), "2");
  {
    StagingDir s(final_path);
    EXPECT_THROW(s.commit(), Error);  // refuses to replace unless asked
    std::ofstream(s.path() / "x") << "3";
    s.commit(/*replace=*/true);
  }
  EXPECT_EQ(read_file(final_path / "x"), "3");
}

TEST(Files, ReadMissingFileNamesIt) {
  try {
    read_file("/nonexistent/chart.txt");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/chart.txt"), std::string::npos);
  }
}

TEST(Args, ParsesOptionsFlagsAndPositionals) {
  Args a("train", {"cfg.yaml", "--set", "a=1", "--set=b=2", "--out", "dir", "--overwrite",
                   "--subjects=12"});
  EXPECT_EQ(a.positional(), "cfg.yaml");
  EXPECT_EQ(a.all("--set"), (std::vector<std::string>{"a=1", "b=2"}));
  EXPECT_EQ(a.required("--out"), "dir");
  EXPECT_TRUE(a.flag("--overwrite"));
  EXPECT_EQ(a.integer("--subjects", 5, 1, 100), 12);
  EXPECT_EQ(a.integer("--seed", 5, 0, 100), 5);
  EXPECT_NO_THROW(a.done());
}

TEST(Args, RejectsWhatItDoesNotUnderstand) {
  Args a("synth", {"--out", "d", "--subjectz", "3"});
  a.required("--out");
  EXPECT_THROW(a.done(), UsageError);
  Args b("synth", {"--subjects", "ten"});
  EXPECT_THROW(b.integer("--subjects", 1, 1, 10), UsageError);
  EXPECT_THROW(Args("synth", {"--out"}), UsageError);
  Args c("synth", {});
  EXPECT_THROW(c.required("--out"), UsageError);
}

// `--set KEY` without "=value" is a usage error (exit 2, as the README says), for every command
// that takes --set; a well-formed --set of an unknown key is a config error (exit 1).
TEST(Cli, SetWithoutEqualsIsAUsageError) {
  Args a("train", {"configs/tiny.yaml", "--set", "model.d_model"});
  EXPECT_THROW(a.sets(), UsageError);
  Args b("train", {"--set", "=3"});
  EXPECT_THROW(b.sets(), UsageError);
  Args c("train", {"--set", "model.d_model=64", "--set=train.steps=3"});
  EXPECT_EQ(c.sets(), (std::vector<std::string>{"model.d_model=64", "train.steps=3"}));
  const std::string tiny = (testing::source_dir() / "configs/tiny.yaml").string();
  std::string out;
  for (const std::string& cmd : std::vector<std::string>{"train " + tiny, "finetune " + tiny, "eval " + tiny,
                                                         "generate " + tiny, "predict " + tiny, "prepare --meds m --out o"}) {
    EXPECT_EQ(testing::run_chart(cmd + " --set model.d_model", &out), 2) << cmd << "\n" << out;
    EXPECT_NE(out.find("--set 'model.d_model': expected key=value"), std::string::npos) << out;
    EXPECT_NE(out.find("usage: chart"), std::string::npos) << out;
  }
  EXPECT_EQ(testing::run_chart("train " + tiny + " --set model.no_such_key=1", &out), 1) << out;
  EXPECT_EQ(testing::run_chart("prepare --meds m --out o --vocabb x", &out), 2) << out;  // misspelt
  EXPECT_NE(out.find("unknown option --vocabb"), std::string::npos) << out;
}

// Each command's --help lists its options, the config keys it reads with their defaults (from
// the config's own defaults) and an example; the overview fits an 80-column terminal.
TEST(Cli, EveryCommandsHelpListsOptionsDefaultsAndAnExample) {
  std::string out;
  ASSERT_EQ(testing::run_chart("--help", &out), 0);
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) EXPECT_LE(line.size(), 100u) << line;
  for (const char* cmd : {"synth", "prepare", "train", "finetune", "eval", "generate", "predict", "export", "audit", "serve"}) {
    ASSERT_EQ(testing::run_chart(std::string(cmd) + " --help", &out), 0) << cmd;
    EXPECT_NE(out.find("options:"), std::string::npos) << cmd << "\n" << out;
    EXPECT_NE(out.find("example:\n  chart " + std::string(cmd)), std::string::npos) << cmd << "\n" << out;
  }
  ASSERT_EQ(testing::run_chart("train --help", &out), 0);
  EXPECT_NE(out.find("--resume fresh"), std::string::npos) << out;
  EXPECT_NE(out.find("train.max_skipped_steps        10\n"), std::string::npos) << out;
  EXPECT_NE(out.find("model.attention                auto\n"), std::string::npos) << out;
  EXPECT_EQ(out.find("generate.samples"), std::string::npos) << "train does not read generate.*";
  ASSERT_EQ(testing::run_chart("generate --help", &out), 0);
  EXPECT_NE(out.find("generate.samples               20\n"), std::string::npos) << out;
  ASSERT_EQ(testing::run_chart("predict --help", &out), 0);
  EXPECT_NE(out.find("predict.times                  labels\n"), std::string::npos) << out;
  ASSERT_EQ(testing::run_chart("prepare --help", &out), 0);
  EXPECT_NE(out.find("--vocab FROM"), std::string::npos) << out;
}

TEST(Format, DurationsAndCounts) {
  EXPECT_EQ(format_duration(5), "5s");
  EXPECT_EQ(format_duration(65), "1m05s");
  EXPECT_EQ(format_duration(7380), "2h03m");
  EXPECT_EQ(format_count(12345), "12.3k");
  EXPECT_EQ(format_count(4.56e6), "4.56M");
}

// (export was the last command "not built yet"; a usage error is what it gives now.)
TEST(Cli, ExportWithoutItsArgumentsIsAUsageError) {
  std::string out;
  EXPECT_EQ(testing::run_chart("export --checkpoint x", &out), 2);
  EXPECT_NE(out.find("--out is required"), std::string::npos) << out;
  EXPECT_EQ(testing::run_chart("export --checkpoint x --out y --format onnx", &out), 2);
  EXPECT_NE(out.find("the one format is hf"), std::string::npos) << out;
}

}  // namespace
}  // namespace chart
