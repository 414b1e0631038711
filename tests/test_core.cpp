// core/: checksums, atomic files and directories, command-line options, formatting.
#include <gtest/gtest.h>

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

TEST(Sha256, PortableAndAcceleratedPathsAgree) {
  std::string data;
  for (int i = 0; i < 100000; ++i) data += static_cast<char>((i * 131) ^ (i >> 5));
  for (size_t n : {0, 1, 55, 56, 63, 64, 65, 1000, 100000}) {
    Sha256 fast, portable(/*portable=*/true);
    fast.update(data.data(), n);
    portable.update(data.data(), n);
    EXPECT_EQ(fast.hex(), portable.hex()) << n;
  }
  Sha256 portable(true);
  portable.update("abc");
  EXPECT_EQ(portable.hex(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
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
