// chart prepare on bad input: each case exits 1 with a message naming the file and the row or
// subject at fault, and leaves no output directory behind.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <fstream>

#include "tests/token_fixture.h"
#include "tests/test_util.h"

namespace chart {
namespace {
using testing::days;
using testing::Row;
using testing::TempDir;
namespace fs = std::filesystem;

// A small valid dataset; a case then breaks one thing in it.
void good_meds(const fs::path& root) {
  testing::write_meds_splits(root, {12, 12, 12}, [](int s, int i) {
    const int64_t id = 100 * (s + 1) + i;
    auto rows = testing::born(id, "GENDER//F", days(1000));
    rows.push_back({id, days(20000), "DX//A", 1.5f});
    rows.push_back({id, days(20001), "DX//B"});
    return rows;
  });
}

struct Outcome {
  int rc;
  std::string output;
};

Outcome run_prepare(const TempDir& dir, const std::string& extra = "") {
  Outcome o;
  o.rc = testing::run_chart("prepare --meds " + (dir / "meds").string() + " --out " +
                                (dir / "out").string() + " " + extra,
                            &o.output);
  return o;
}

void expect_refused(const TempDir& dir, const std::vector<std::string>& needles, const std::string& extra = "") {
  Outcome o = run_prepare(dir, extra);
  EXPECT_EQ(o.rc, 1) << o.output;
  for (const auto& n : needles) EXPECT_NE(o.output.find(n), std::string::npos) << "missing '" << n << "' in:\n" << o.output;
  EXPECT_FALSE(fs::exists(dir / "out")) << "a failed prepare left its output behind";
  for (const auto& e : fs::directory_iterator(dir.path()))
    EXPECT_EQ(e.path().filename().string().find("out.tmp"), std::string::npos) << e.path();
}

TEST(PrepareErrors, GoodInputPasses) {
  TempDir dir;
  good_meds(dir / "meds");
  Outcome o = run_prepare(dir);
  EXPECT_EQ(o.rc, 0) << o.output;
  EXPECT_TRUE(fs::exists(dir / "out" / "manifest.json"));
}

TEST(PrepareErrors, MissingColumn) {
  TempDir dir;
  good_meds(dir / "meds");
  auto f = dir / "meds/data/train/0.parquet";
  testing::write_meds(f, {{100, days(1), "X"}}, "value");  // numeric_value renamed: fine (optional)
  auto schema = arrow::schema({arrow::field("subject_id", arrow::int64()), arrow::field("code", arrow::utf8())});
  arrow::Int64Builder a;
  arrow::StringBuilder c;
  testing::check(a.Append(100));
  testing::check(c.Append("X"));
  testing::write_table(f, arrow::Table::Make(schema, {a.Finish().ValueOrDie(), c.Finish().ValueOrDie()}));
  expect_refused(dir, {f.string(), "missing MEDS column 'time'"});
}

// A prepare.*_column mapping to a column the file lacks is an error naming the key and the
// columns there are, even for the columns MEDS makes optional (else every value is dropped).
TEST(PrepareErrors, MappedColumnDoesNotExist) {
  TempDir dir;
  good_meds(dir / "meds");
  const std::string columns = "(the file's columns: subject_id, time, code, numeric_value)";
  for (const char* key : {"numeric_value", "text_value", "code", "time", "subject_id"})
    expect_refused(dir, {"/0.parquet", fmt::format("no column 'nope' for prepare.{}_column", key), columns},
                   fmt::format("--set prepare.{}_column=nope", key));
}

TEST(PrepareErrors, WrongType) {
  TempDir dir;
  good_meds(dir / "meds");
  auto f = dir / "meds/data/tuning/0.parquet";
  auto schema = arrow::schema({arrow::field("subject_id", arrow::utf8()),
                               arrow::field("time", arrow::timestamp(arrow::TimeUnit::MICRO)),
                               arrow::field("code", arrow::utf8())});
  arrow::StringBuilder s, c;
  arrow::TimestampBuilder t(arrow::timestamp(arrow::TimeUnit::MICRO), arrow::default_memory_pool());
  testing::check(s.Append("p1"));
  testing::check(t.Append(0));
  testing::check(c.Append("X"));
  testing::write_table(f, arrow::Table::Make(schema, {s.Finish().ValueOrDie(), t.Finish().ValueOrDie(), c.Finish().ValueOrDie()}));
  expect_refused(dir, {f.string(), "column 'subject_id' has type string, MEDS requires int64"});
}

TEST(PrepareErrors, UnsortedTimes) {
  TempDir dir;
  good_meds(dir / "meds");
  auto f = dir / "meds/data/train/0.parquet";
  testing::write_meds(f, {{100, days(5), "A"}, {100, days(4), "B"}});
  expect_refused(dir, {f.string(), "row 1", "subject 100", "not sorted"});
}

TEST(PrepareErrors, SubjectNotContiguous) {
  TempDir dir;
  good_meds(dir / "meds");
  auto f = dir / "meds/data/train/0.parquet";
  testing::write_meds(f, {{100, days(1), "A"}, {101, days(1), "A"}, {100, days(2), "B"}});
  expect_refused(dir, {f.string(), "row 2", "subject 100", "contiguous"});
}

TEST(PrepareErrors, SubjectSplitAcrossFiles) {
  TempDir dir;
  good_meds(dir / "meds");
  testing::write_meds(dir / "meds/data/train/1.parquet", {{105, days(30000), "DX//A"}});
  expect_refused(dir, {"subject 105 appears in two files", "train/0.parquet", "train/1.parquet"});
}

TEST(PrepareErrors, NullCode) {
  TempDir dir;
  good_meds(dir / "meds");
  auto f = dir / "meds/data/held_out/0.parquet";
  auto schema = arrow::schema({arrow::field("subject_id", arrow::int64()),
                               arrow::field("time", arrow::timestamp(arrow::TimeUnit::MICRO)),
                               arrow::field("code", arrow::utf8())});
  arrow::Int64Builder s;
  arrow::StringBuilder c;
  arrow::TimestampBuilder t(arrow::timestamp(arrow::TimeUnit::MICRO), arrow::default_memory_pool());
  testing::check(s.AppendValues({300, 300}));
  testing::check(t.AppendValues({1, 2}));
  testing::check(c.Append("A"));
  testing::check(c.AppendNull());
  testing::write_table(f, arrow::Table::Make(schema, {s.Finish().ValueOrDie(), t.Finish().ValueOrDie(), c.Finish().ValueOrDie()}));
  expect_refused(dir, {f.string(), "row 1", "subject 300: null code"});
}

TEST(PrepareErrors, NanAndInfValues) {
  for (float bad : {std::nanf(""), INFINITY}) {
    TempDir dir;
    good_meds(dir / "meds");
    auto f = dir / "meds/data/train/0.parquet";
    testing::write_meds(f, {{100, days(1), "A", 1.0f}, {100, days(2), "LAB//x", bad}});
    expect_refused(dir, {f.string(), "row 1", "subject 100", "LAB//x", "numeric_value is"});
  }
}

TEST(PrepareErrors, EmptyAndZeroRowFiles) {
  {
    TempDir dir;
    good_meds(dir / "meds");
    std::ofstream(dir / "meds/data/train/0.parquet", std::ios::trunc);
    expect_refused(dir, {"train/0.parquet", "empty file"});
  }
  {
    TempDir dir;
    good_meds(dir / "meds");
    testing::write_meds(dir / "meds/data/train/0.parquet", {});
    expect_refused(dir, {"train/0.parquet", "no rows"});
  }
}

TEST(PrepareErrors, TruncatedAndCorruptParquet) {
  TempDir dir;
  good_meds(dir / "meds");
  auto f = dir / "meds/data/train/0.parquet";
  auto size = fs::file_size(f);
  fs::resize_file(f, size / 2);
  expect_refused(dir, {f.string(), "not a readable parquet file"});
  std::ofstream(f, std::ios::trunc) << "this is not parquet at all, just some text";
  expect_refused(dir, {f.string(), "not a readable parquet file"});
}

TEST(PrepareErrors, UnknownSplitName) {
  TempDir dir;
  good_meds(dir / "meds");
  testing::write_meds(dir / "meds/data/validation/0.parquet", {{900, days(1), "A"}});
  expect_refused(dir, {"unknown split name 'validation'"});
}

// With metadata/subject_splits.parquet: a subject it does not list, and a split folder that
// disagrees with it, are refused naming the file and the subject.
TEST(PrepareErrors, SubjectSplitsFileDisagrees) {
  TempDir dir;
  good_meds(dir / "meds");  // subjects 100.. in train/, 200.. in tuning/, 300.. in held_out/
  std::vector<std::pair<int64_t, std::string>> splits;
  for (int s = 0; s < 3; ++s)
    for (int i = 0; i < 12; ++i) splits.emplace_back(100 * (s + 1) + i, testing::kSplits[s]);
  testing::write_subject_splits(dir / "meds", splits);
  EXPECT_EQ(run_prepare(dir).rc, 0) << "folders that agree with the splits file";
  fs::remove_all(dir / "out");

  splits.pop_back();  // subject 311 unlisted
  testing::write_subject_splits(dir / "meds", splits);
  expect_refused(dir, {"held_out/0.parquet", "subject 311 is not in", "subject_splits.parquet"});

  splits.emplace_back(311, "held_out");
  splits[3].second = "held_out";  // subject 103 sits in train/
  testing::write_subject_splits(dir / "meds", splits);
  expect_refused(dir, {"train/0.parquet", "subject 103", "split 'train'", "split 'held_out'", "subject_splits.parquet"});

  splits[3] = {104, "train"};  // 104 twice
  testing::write_subject_splits(dir / "meds", splits);
  expect_refused(dir, {"subject_splits.parquet", "subject 104 is listed twice"});

  splits[3] = {103, "../elsewhere"};  // a split is a folder of the token dataset, never a path
  testing::write_subject_splits(dir / "meds", splits);
  expect_refused(dir, {"subject_splits.parquet row 3", "split '../elsewhere' is not a plain name"});
  EXPECT_FALSE(fs::exists(dir / "elsewhere"));
}

TEST(PrepareErrors, OutputAlreadyComplete) {
  TempDir dir;
  good_meds(dir / "meds");
  ASSERT_EQ(run_prepare(dir).rc, 0);
  auto before = fs::last_write_time(dir / "out" / "manifest.json");
  Outcome o = run_prepare(dir);
  EXPECT_EQ(o.rc, 1);
  EXPECT_NE(o.output.find("already exists and holds a complete token dataset"), std::string::npos) << o.output;
  EXPECT_NE(o.output.find("--overwrite"), std::string::npos) << o.output;
  EXPECT_EQ(fs::last_write_time(dir / "out" / "manifest.json"), before);  // untouched
  o = run_prepare(dir, "--overwrite");
  EXPECT_EQ(o.rc, 0) << o.output;
}

TEST(PrepareErrors, FailureKeepsThePreviousDatasetWhole) {
  TempDir dir;
  good_meds(dir / "meds");
  ASSERT_EQ(run_prepare(dir).rc, 0);
  testing::write_meds(dir / "meds/data/train/0.parquet", {{100, days(5), "A"}, {100, days(4), "B"}});
  Outcome o = run_prepare(dir, "--overwrite");
  EXPECT_EQ(o.rc, 1);
  EXPECT_TRUE(fs::exists(dir / "out" / "manifest.json"));  // the old dataset is still there, whole
}

TEST(PrepareErrors, BadConfig) {
  TempDir dir;
  good_meds(dir / "meds");
  Outcome o = run_prepare(dir, "--set prepare.time_bins=[1h,5m]");
  EXPECT_EQ(o.rc, 1);
  EXPECT_NE(o.output.find("prepare.time_bins"), std::string::npos) << o.output;
  o = run_prepare(dir, "--set prepare.min_subjectz=3");
  EXPECT_EQ(o.rc, 1);
  EXPECT_NE(o.output.find("unknown config key 'prepare.min_subjectz'"), std::string::npos) << o.output;
  o = run_prepare(dir, "--bogus 1");
  EXPECT_EQ(o.rc, 2);
}

}  // namespace
}  // namespace chart
