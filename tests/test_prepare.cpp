// chart prepare: MEDS -> token shards, checked by decoding the shards back against the source
// rows; the vocabulary's train-only rule and privacy threshold; bad input.
#include <gtest/gtest.h>

#include <arrow/api.h>
#include <arrow/io/file.h>
#include <parquet/arrow/reader.h>

#include <fstream>
#include <map>
#include <set>

#include "core/config.h"
#include "core/error.h"
#include "core/files.h"
#include "core/json.h"
#include "data/coverage.h"
#include "data/meds_reader.h"
#include "data/prepare.h"
#include "data/token_dataset.h"
#include "data/token_shard.h"
#include "tests/token_fixture.h"
#include "tests/test_util.h"

namespace chart {
namespace {
using testing::days;
using testing::Row;
using testing::TempDir;
namespace fs = std::filesystem;

const int64_t kBase[] = {1000, 2000, 3000};  // first subject id of train, tuning, held_out

// Subject i of a split: sex, birth, a visit with a lab value, a diagnosis 2 hours later, a
// second visit ~400 days later; "RARE//9" in the first 9 train subjects, "RARE//10" in the first
// 10; "ONLY//TUNING" in every tuning subject.
std::vector<Row> subject_rows(int split, int i) {
  int64_t id = kBase[split] + i;
  int64_t birth = days(7305 + 5 * i);  // 1990-01-01 onwards: all in the 1990 bucket
  int64_t visit = birth + days(12000 + 3 * i);
  std::vector<Row> r = testing::born(id, i % 2 ? "GENDER//F" : "GENDER//M", birth);
  r.insert(r.end(), {
      {id, visit, "VISIT"},
      {id, visit, "LAB//glucose", static_cast<float>(i % 20) + 0.5f},
      {id, visit + days(2.0 / 24), "DX//A"},
      {id, visit + days(400 + i), "VISIT"},
      {id, visit + days(400 + i), "LAB//glucose", static_cast<float>(100 - i)},
  });
  if (split == 0 && i < 9) r.push_back({id, visit + days(401 + i), "RARE//9"});
  if (split == 0 && i < 10) r.push_back({id, visit + days(402 + i), "RARE//10"});
  if (split == 1) r.push_back({id, visit + days(403 + i), "ONLY//TUNING"});
  return r;
}

std::map<int64_t, std::vector<Row>> make_meds(const fs::path& root, int per_split = 30) {
  std::map<int64_t, std::vector<Row>> by_subject;
  testing::write_meds_splits(root, {per_split, per_split, per_split}, [&](int s, int i) {
    auto r = subject_rows(s, i);
    by_subject[r[0].subject] = r;
    return r;
  });
  return by_subject;
}

data::PrepareResult prepare(const fs::path& meds, const fs::path& out, std::vector<std::string> sets = {}) {
  return data::prepare_dataset(meds, out, load_config("", sets), false);
}

TEST(Prepare, ShardsDecodeBackToTheSourceRows) {
  TempDir dir;
  auto source = make_meds(dir / "meds");
  auto r = prepare(dir / "meds", dir / "tok");
  EXPECT_EQ(r.splits["train"].subjects, 30);
  EXPECT_EQ(r.splits["tuning"].subjects, 30);
  EXPECT_EQ(r.splits["held_out"].subjects, 30);
  auto ds = data::TokenDataset::open(dir / "tok");
  const auto& vocab = ds.vocab();
  int checked = 0;
  for (const auto& split : data::split_names())
    for (const auto& shard : ds.shards(split))
      for (size_t e = 0; e < shard.n_subjects(); ++e) {
        const auto& entry = shard.subject(e);
        const auto& rows = source.at(entry.subject_id);
        const uint32_t* tok = shard.tokens() + entry.token_start;
        const int64_t* tm = shard.times() + entry.token_start;
        ASSERT_EQ(tok[0], data::Vocab::kBos);
        EXPECT_EQ(entry.birth_us, *rows[1].time_us);
        // Static prefix: sex and birth-year bucket, at the birth time.
        EXPECT_EQ(vocab.token(tok[1]), rows[0].code);
        EXPECT_EQ(vocab.token(tok[2]), "BIRTH_YEAR//1990");
        EXPECT_EQ(tm[1], entry.birth_us);
        // Timed events in order with their times; time tokens exactly where gaps >= 5 minutes.
        size_t k = 3;
        int64_t prev = -1;
        for (size_t i = 2; i < rows.size(); ++i) {
          const Row& row = rows[i];
          bool gap = prev >= 0 && *row.time_us - prev >= 5 * 60 * int64_t(1000000);
          bool saw_time_token = false;
          while (k < entry.n_tokens && vocab.kind(tok[k]) == data::TokenKind::kTime) {
            saw_time_token = true;
            EXPECT_EQ(tm[k], *row.time_us);
            ++k;
          }
          EXPECT_EQ(saw_time_token, gap) << "subject " << entry.subject_id << " row " << i;
          ASSERT_LT(k, entry.n_tokens);
          // Below the privacy threshold (RARE//9) or unseen in train (ONLY//TUNING): [UNK].
          std::string expect = row.code == "RARE//9" || row.code == "ONLY//TUNING" ? "[UNK]" : row.code;
          EXPECT_EQ(vocab.token(tok[k]), expect) << "subject " << entry.subject_id;
          EXPECT_EQ(tm[k], *row.time_us);
          ++k;
          if (row.value && expect != "[UNK]") {
            ASSERT_LT(k, entry.n_tokens);
            EXPECT_EQ(vocab.kind(tok[k]), data::TokenKind::kQuantile);
            EXPECT_EQ(tok[k], *vocab.quantile_token(tok[k - 1], *row.value));
            ++k;
          }
          prev = *row.time_us;
        }
        EXPECT_EQ(k, entry.n_tokens);
        ++checked;
      }
  EXPECT_EQ(checked, 90);
}

TEST(Prepare, VocabularyComesFromTrainOnlyAndRespectsThePrivacyThreshold) {
  TempDir dir;
  make_meds(dir / "meds");
  prepare(dir / "meds", dir / "tok");  // min_subjects = 10 by default
  auto ds = data::TokenDataset::open(dir / "tok");
  EXPECT_TRUE(ds.vocab().find("RARE//10"));    // in exactly 10 train subjects
  EXPECT_FALSE(ds.vocab().find("RARE//9"));    // in 9
  EXPECT_FALSE(ds.vocab().find("ONLY//TUNING"));  // in 30 subjects, none of them train
  EXPECT_TRUE(ds.vocab().find("DX//A"));
  prepare(dir / "meds", dir / "tok9", {"prepare.min_subjects=9"});
  EXPECT_TRUE(data::TokenDataset::open(dir / "tok9").vocab().find("RARE//9"));
}

TEST(Prepare, QuantileCutPointsComeFromTrainValues) {
  TempDir dir;
  make_meds(dir / "meds");
  prepare(dir / "meds", dir / "tok", {"prepare.numeric_bins=4"});
  auto ds = data::TokenDataset::open(dir / "tok");
  auto id = *ds.vocab().find("LAB//glucose");
  // Train values: i % 20 + 0.5 and 100 - i for i < 30: 60 values, quartile cuts at ranks 15/30/45.
  std::vector<float> v;
  for (int i = 0; i < 30; ++i) v.insert(v.end(), {static_cast<float>(i % 20) + 0.5f, 100.0f - i});
  std::sort(v.begin(), v.end());
  EXPECT_EQ(ds.vocab().cuts(id), (std::vector<float>{v[15], v[30], v[45]}));
  EXPECT_EQ(ds.vocab().token(*ds.vocab().quantile_token(id, -1e9f)), "Q1");
  EXPECT_EQ(ds.vocab().token(*ds.vocab().quantile_token(id, 1e9f)), "Q4");
}

// Every split's [UNK] events are counted per code in coverage.json: a code below the privacy
// threshold in train, a code that only tuning has.
TEST(Prepare, CoverageCountsEveryUnknownCodePerSplit) {
  TempDir dir;
  make_meds(dir / "meds");
  prepare(dir / "meds", dir / "tok");
  const Json cov = read_json_file(dir / "tok" / "coverage.json");
  const Json& train = cov["splits"]["train"];
  EXPECT_EQ(train["unknown_events"], 9);  // RARE//9 in 9 subjects
  EXPECT_EQ(train["subjects_with_unknown"], 9);
  ASSERT_EQ(train["codes"].size(), 1u);
  EXPECT_EQ(train["codes"][0]["code"], "RARE//9");
  EXPECT_EQ(train["codes"][0]["subjects"], 9);
  const Json& tuning = cov["splits"]["tuning"];
  EXPECT_EQ(tuning["codes"][0]["code"], "ONLY//TUNING");
  EXPECT_EQ(tuning["unknown_events"], 30);
  EXPECT_EQ(cov["splits"]["held_out"]["unknown_events"], 0);
  EXPECT_TRUE(cov["vocab_from"].is_null());
  // The summary eval and model cards show: totals, and only codes of at least min_subjects subjects.
  const Json sum = data::coverage_summary(dir / "tok", "train", 5);
  EXPECT_EQ(sum["unknown_events"], 9);
  EXPECT_TRUE(sum["top_unknown_codes"].empty());
  EXPECT_EQ(data::coverage_summary(dir / "tok", "tuning", 5)["top_unknown_codes"].size(), 1u);
}

// An external site tokenized on site A's vocabulary: same bytes and hash, A's time and numeric
// bins whatever this config says, its codes that A lacks counted; no train split needed.
TEST(Prepare, FixedVocabularyTokenizesAnotherSiteWithItsBinsAndCountsWhatItLacks) {
  TempDir dir;
  make_meds(dir / "a");
  prepare(dir / "a", dir / "tok_a", {"prepare.time_bins=[1h, 1d, 30d]", "prepare.numeric_bins=4"});
  const std::string vocab_a = read_file(dir / "tok_a" / "vocab.tsv");
  std::vector<Row> rows;  // site B: 20 subjects, lab values shifted up, a diagnosis A never had
  for (int i = 0; i < 20; ++i) {
    const int64_t id = 90000 + i, birth = days(7305 + i), visit = birth + days(11000);
    auto r = testing::born(id, "GENDER//F", birth);
    r.insert(r.end(), {{id, visit, "VISIT"},
                       {id, visit, "LAB//glucose", 500.0f + i},
                       {id, visit + days(3), "DX//B"},
                       {id, visit + days(3), "DX//B"}});
    rows.insert(rows.end(), r.begin(), r.end());
  }
  testing::write_meds(dir / "b" / "data" / "site_b.parquet", rows);
  const data::FixedVocab fixed{vocab_a, (dir / "tok_a" / "vocab.tsv").string()};
  const auto cfg = load_config("", {"prepare.vocab=" + fixed.from, "prepare.held_out_fraction=1",
                                    "prepare.tuning_fraction=0"});
  const auto r = data::prepare_dataset(dir / "b", dir / "tok_b", cfg, false, &fixed);
  EXPECT_EQ(r.splits.at("held_out").subjects, 20);
  EXPECT_EQ(r.splits.at("train").subjects, 0);
  EXPECT_EQ(r.vocab_from, fixed.from);
  EXPECT_EQ(read_file(dir / "tok_b" / "vocab.tsv"), vocab_a);
  auto ds = data::TokenDataset::open(dir / "tok_b");
  EXPECT_EQ(ds.vocab_hash(), data::TokenDataset::open(dir / "tok_a").vocab_hash());
  const Config used = load_config((dir / "tok_b" / "prepare.yaml").string(), {});
  EXPECT_EQ(used.prepare.time_bins, (std::vector<std::string>{"1h", "1d", "30d"}));
  EXPECT_EQ(used.prepare.numeric_bins, 4);
  // Tokens: A's time token for the 3-day gap, A's top quantile for the shifted values, [UNK] for DX//B.
  const auto& sh = ds.shards("held_out").at(0);
  const auto& v = ds.vocab();
  std::vector<std::string> got;
  for (uint32_t k = 0; k < sh.subject(0).n_tokens; ++k) got.push_back(v.token(sh.tokens()[sh.subject(0).token_start + k]));
  EXPECT_EQ(got, (std::vector<std::string>{"[BOS]", "GENDER//F", "BIRTH_YEAR//1990", "VISIT", "LAB//glucose", "Q4",
                                           "TIME//1d-30d", "[UNK]", "[UNK]"}));
  const Json cov = read_json_file(dir / "tok_b" / "coverage.json");
  const Json& held = cov["splits"]["held_out"];
  EXPECT_EQ(held["events"], 20 * 6);  // sex, birth year, visit, lab, two diagnoses
  EXPECT_EQ(held["unknown_events"], 40);
  EXPECT_DOUBLE_EQ(held["unknown_share"].get<double>(), 40.0 / 120.0);
  EXPECT_EQ(held["codes"][0], (Json{{"code", "DX//B"}, {"events", 40}, {"subjects", 20}}));
  EXPECT_EQ(cov["vocab_from"], fixed.from);
  EXPECT_EQ(read_json_file(dir / "tok_b" / "manifest.json")["vocab_from"], fixed.from);
  // Without a fixed vocabulary the same input has no train split to build one from.
  EXPECT_THROW(data::prepare_dataset(dir / "b", dir / "tok_c", load_config("", {"prepare.held_out_fraction=0.5",
                                                                                 "prepare.tuning_fraction=0.5"}),
                                     false),
               Error);
}

// A vocabulary whose time tokens chart did not write is refused, naming the file.
TEST(Prepare, FixedVocabularyWithForeignTimeTokensIsRefused) {
  TempDir dir;
  make_meds(dir / "a");
  prepare(dir / "a", dir / "tok_a");
  std::string tsv = read_file(dir / "tok_a" / "vocab.tsv");
  const auto at = tsv.find("TIME//5m-15m");
  ASSERT_NE(at, std::string::npos);
  tsv.replace(at, 12, "TIME//later!");
  const data::FixedVocab fixed{tsv, "edited/vocab.tsv"};
  try {
    data::prepare_dataset(dir / "a", dir / "tok_b", load_config("", {}), false, &fixed);
    FAIL() << "a vocabulary with a foreign time token was accepted";
  } catch (const Error& e) {
    EXPECT_TRUE(testing::contains(e.what(), "edited/vocab.tsv")) << e.what();
    EXPECT_TRUE(testing::contains(e.what(), "TIME//later!")) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir / "tok_b"));
}

TEST(Prepare, IsDeterministic) {
  TempDir dir;
  make_meds(dir / "meds");
  prepare(dir / "meds", dir / "a", {"prepare.threads=1"});
  prepare(dir / "meds", dir / "b", {"prepare.threads=3"});
  for (const char* f : {"vocab.tsv", "train/shard_00001.bin", "tuning/shard_00002.bin"})
    EXPECT_EQ(read_file(dir / "a" / f), read_file(dir / "b" / f)) << f;
}

TEST(Prepare, UnsplitInputIsHashedIntoSplits) {
  TempDir dir;
  std::vector<Row> rows;
  for (int i = 0; i < 200; ++i) {
    auto r = subject_rows(0, i);
    rows.insert(rows.end(), r.begin(), r.end());
  }
  testing::write_meds(dir / "events.parquet", rows, "value");
  auto r = prepare(dir / "events.parquet", dir / "tok", {"prepare.numeric_value_column=value"});
  EXPECT_EQ(r.splits["train"].subjects + r.splits["tuning"].subjects + r.splits["held_out"].subjects, 200);
  EXPECT_GT(r.splits["train"].subjects, 140);
  EXPECT_GT(r.splits["tuning"].subjects, 5);
  EXPECT_GT(r.splits["held_out"].subjects, 5);
  auto ds = data::TokenDataset::open(dir / "tok");
  for (const auto& split : data::split_names())
    for (const auto& shard : ds.shards(split))
      for (size_t e = 0; e < shard.n_subjects(); ++e)
        EXPECT_EQ(data::hash_split(shard.subject(e).subject_id, PrepareConfig{}), split);
  EXPECT_TRUE(ds.vocab().find("LAB//glucose"));
  EXPECT_FALSE(ds.vocab().cuts(*ds.vocab().find("LAB//glucose")).empty());  // the mapped column was read
}

// The subject ids of each split of a token dataset.
std::map<std::string, std::set<int64_t>> subjects_by_split(const fs::path& tok, const std::vector<std::string>& splits) {
  std::map<std::string, std::set<int64_t>> out;
  const auto hash = data::vocab_hash_from_hex(data::TokenDataset::open(tok).vocab_hash());
  for (const auto& split : splits)
    for (const auto& e : fs::directory_iterator(tok / split)) {
      auto shard = data::TokenShard::open(e.path(), hash);
      for (size_t i = 0; i < shard.n_subjects(); ++i) out[split].insert(shard.subject(i).subject_id);
    }
  return out;
}

// A flat data/ folder (two files, one nested in a folder that names no split) and a splits file:
// the file decides, whatever the hash would say; a split of another name is kept and reported.
TEST(Prepare, SubjectSplitsFileDecidesTheSplits) {
  TempDir dir;
  std::vector<Row> a, b;
  std::vector<std::pair<int64_t, std::string>> splits;
  std::map<std::string, std::set<int64_t>> want;
  for (int i = 0; i < 105; ++i) {
    auto r = subject_rows(0, i);
    (i < 50 ? a : b).insert((i < 50 ? a : b).end(), r.begin(), r.end());
    const std::string split = i >= 100 ? "external" : i % 10 == 8 ? "tuning" : i % 10 == 9 ? "held_out" : "train";
    splits.emplace_back(r[0].subject, split);
    want[split].insert(r[0].subject);
  }
  testing::write_meds(dir / "meds/data/0.parquet", a);
  testing::write_meds(dir / "meds/data/part_1/1.parquet", b);
  testing::write_subject_splits(dir / "meds", splits);
  std::string out;
  ASSERT_EQ(testing::run_chart("prepare --meds " + (dir / "meds").string() + " --out " + (dir / "tok").string(), &out), 0)
      << out;
  EXPECT_NE(out.find("split 'external'"), std::string::npos) << out;
  EXPECT_NE(out.find("5 subjects"), std::string::npos) << out;
  EXPECT_EQ(subjects_by_split(dir / "tok", {"train", "tuning", "held_out", "external"}), want);
  const Json m = read_json_file(dir / "tok" / "manifest.json");
  EXPECT_EQ(m["splits"]["train"]["subjects"], 80);
  EXPECT_EQ(m["splits"]["tuning"]["subjects"], 10);
  EXPECT_EQ(m["splits"]["held_out"]["subjects"], 10);
  EXPECT_EQ(m["splits"]["external"]["subjects"], 5);
  EXPECT_NE(m["splits_from"].get<std::string>().find("subject_splits.parquet"), std::string::npos);
  auto ds = data::TokenDataset::open(dir / "tok");  // the three recipe splits open as before
  EXPECT_EQ(ds.subjects("train").size(), 80u);
}

// A dataset with its own split names (dev/val/test): prepare.split_map makes them chart's, in the
// splits file and in folder names; without it an unknown folder is an error that names the key.
TEST(Prepare, SplitMapRenamesTheDatasetsOwnSplitNames) {
  TempDir dir;
  const std::vector<std::string> theirs = {"dev", "val", "test"}, ours = {"train", "tuning", "held_out"};
  std::vector<Row> rows[3];
  std::vector<std::pair<int64_t, std::string>> splits;
  for (int i = 0; i < 60; ++i) {
    const int s = i % 6 == 4 ? 1 : i % 6 == 5 ? 2 : 0;
    auto r = subject_rows(0, i);
    rows[s].insert(rows[s].end(), r.begin(), r.end());
    splits.emplace_back(r[0].subject, theirs[s]);
  }
  for (int s = 0; s < 3; ++s) {
    testing::write_meds(dir / "flat/data" / (theirs[s] + ".parquet"), rows[s]);
    testing::write_meds(dir / "folders/data" / theirs[s] / "0.parquet", rows[s]);
  }
  testing::write_subject_splits(dir / "flat", splits);
  const std::vector<std::string> map = {"prepare.split_map=[dev=train, val=tuning, test=held_out]"};
  for (const char* layout : {"flat", "folders"}) {
    const auto r = prepare(dir / layout, dir / (std::string(layout) + "_tok"), map);
    EXPECT_EQ(r.splits.at("train").subjects, 40) << layout;
    EXPECT_EQ(r.splits.at("tuning").subjects, 10) << layout;
    EXPECT_EQ(r.splits.at("held_out").subjects, 10) << layout;
    EXPECT_EQ(r.splits.count("dev"), 0u) << layout;
  }
  try {
    prepare(dir / "folders", dir / "unmapped");
    FAIL() << "an unknown split folder was accepted";
  } catch (const Error& e) {
    EXPECT_TRUE(testing::contains(e.what(), "unknown split name 'dev'")) << e.what();
    EXPECT_TRUE(testing::contains(e.hint(), "prepare.split_map=[dev=train]")) << e.hint();
  }
  EXPECT_THROW(load_config("", {"prepare.split_map=[dev=training]"}), Error);
}

// The MIMIC-IV demo (100 subjects, one file) as a MEDS root with an 80/10/10 splits file: the
// dataset's split, not chart's hash (which gives 82/8/10).
TEST(Prepare, RealMimicDemoWithASplitsFile) {
  fs::path file = testing::source_dir() / "../shared/data/mimic-iv-demo-meds/mimic_iv_demo_meds_events.parquet";
  if (!fs::exists(file)) GTEST_SKIP() << "../shared/data (MIMIC-IV demo) is not present in this checkout";
  TempDir dir;
  fs::create_directories(dir / "meds/data");
  fs::create_symlink(fs::absolute(file), dir / "meds/data/events.parquet");
  std::set<int64_t> ids;
  {
    auto in = arrow::io::ReadableFile::Open(file.string()).ValueOrDie();
    auto reader = parquet::arrow::OpenFile(in, arrow::default_memory_pool()).ValueOrDie();
    std::shared_ptr<arrow::Table> t;
    ASSERT_TRUE(reader->ReadTable({reader->parquet_reader()->metadata()->schema()->ColumnIndex("subject_id")}, &t).ok());
    for (const auto& chunk : t->column(0)->chunks())
      for (int64_t i = 0; i < chunk->length(); ++i) ids.insert(static_cast<const arrow::Int64Array&>(*chunk).Value(i));
  }
  ASSERT_EQ(ids.size(), 100u);
  std::vector<std::pair<int64_t, std::string>> splits;
  for (int64_t id : ids) splits.emplace_back(id, splits.size() < 80 ? "train" : splits.size() < 90 ? "tuning" : "held_out");
  testing::write_subject_splits(dir / "meds", splits);
  std::string out;
  ASSERT_EQ(testing::run_chart("prepare --meds " + (dir / "meds").string() + " --out " + (dir / "tok").string() +
                                   " --set prepare.numeric_value_column=value", &out), 0) << out;
  auto ds = data::TokenDataset::open(dir / "tok");
  EXPECT_EQ(ds.subjects("train").size(), 80u);
  EXPECT_EQ(ds.subjects("tuning").size(), 10u);
  EXPECT_EQ(ds.subjects("held_out").size(), 10u);
  auto by_split = subjects_by_split(dir / "tok", data::split_names());
  for (const auto& [id, split] : splits) EXPECT_TRUE(by_split[split].count(id)) << id << " in " << split;
}

TEST(Prepare, RealMimicDemo) {
  fs::path file = testing::source_dir() / "../shared/data/mimic-iv-demo-meds/mimic_iv_demo_meds_events.parquet";
  if (!fs::exists(file)) GTEST_SKIP() << "../shared/data (MIMIC-IV demo) is not present in this checkout";
  TempDir dir;
  std::string out;
  int rc = testing::run_chart("prepare --meds " + file.string() + " --out " + (dir / "tok").string() +
                                  " --set prepare.numeric_value_column=value",
                              &out);
  ASSERT_EQ(rc, 0) << out;
  auto ds = data::TokenDataset::open(dir / "tok");
  size_t subjects = 0;
  for (const auto& split : data::split_names()) subjects += ds.subjects(split).size();
  EXPECT_EQ(subjects, 100u);
  EXPECT_TRUE(ds.vocab().find("GENDER//F"));
  EXPECT_GT(ds.vocab().size(), 500u);
}

}  // namespace
}  // namespace chart
