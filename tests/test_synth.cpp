// chart synth: the oracle against forward simulation, determinism, a valid MEDS dataset whose
// labels agree with its events, calibrated true probabilities, the command line.
#include <arrow/api.h>
#include <arrow/io/file.h>
#include <gtest/gtest.h>
#include <parquet/arrow/reader.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <set>

#include "core/config.h"
#include "core/error.h"
#include "core/files.h"
#include "core/sha256.h"
#include "data/labels.h"
#include "data/meds_reader.h"
#include "data/meds_schema.h"
#include "data/synth.h"
#include "data/synth_model.h"
#include "tests/test_util.h"

namespace chart {
namespace {
using namespace data;
using namespace data::synth;
namespace fs = std::filesystem;
using testing::TempDir;

std::shared_ptr<arrow::Table> read_table(const fs::path& path) {
  auto file = arrow::io::ReadableFile::Open(path.string());
  EXPECT_TRUE(file.ok()) << path;
  auto reader = parquet::arrow::OpenFile(*file, arrow::default_memory_pool());
  EXPECT_TRUE(reader.ok()) << path;
  std::shared_ptr<arrow::Table> table;
  EXPECT_TRUE((*reader)->ReadTable(&table).ok()) << path;
  return table->CombineChunks().ValueOrDie();
}
template <typename ArrayT>
const ArrayT& col(const arrow::Table& t, const std::string& name) {
  return static_cast<const ArrayT&>(*t.GetColumnByName(name)->chunk(0));
}

std::vector<fs::path> files_under(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

// Area under the ROC curve, ties counted half.
double auroc(const std::vector<double>& p, const std::vector<bool>& y) {
  std::vector<size_t> order(p.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return p[a] < p[b]; });
  double rank_sum = 0, pos = 0;
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j < order.size() && p[order[j]] == p[order[i]]) ++j;
    for (size_t k = i; k < j; ++k)
      if (y[order[k]]) rank_sum += (i + j + 1) / 2.0, ++pos;
    i = j;
  }
  double neg = static_cast<double>(p.size()) - pos;
  return (rank_sum - pos * (pos + 1) / 2) / (pos * neg);
}

SynthOptions options(const fs::path& out, int64_t subjects, uint64_t seed, int threads = 0) {
  SynthOptions o;
  o.out = out, o.subjects = subjects, o.seed = seed, o.threads = threads, o.progress = false;
  return o;
}

// ---- The model and its oracle, without files.

// The exact recursion against many forward simulations of the same process, from a state in the
// middle of a month where a condition started earlier in the month (hazards still without it).
TEST(SynthModel, OracleMatchesForwardSimulation) {
  const SynthModel m;
  LatentState s;
  s.sex = kSexMale, s.birth = kStudyStart - 74 * kYearUs;
  s.t = month_start(s.birth, 74 * 12 + 5) + 11 * kDayUs;
  s.hazard_conds = bit(kHypertension);
  s.conds = bit(kHypertension) | bit(kDiabetes);
  for (const SynthTask& task : synth_tasks()) {
    const double p = outcome_probability(m, s, task.horizon, task.outcome);
    const int n = 200000;
    int hits = 0;
    Rng rng(99, 0, 0);
    for (int i = 0; i < n; ++i) {
      LatentPath path = simulate_latent(m, s, s.t + task.horizon, rng);
      hits += (task.outcome == kDeath ? path.death : path.onset[task.outcome]) != kNever;
    }
    const double se = std::sqrt(p * (1 - p) / n), emp = static_cast<double>(hits) / n;
    EXPECT_GT(p, 0.01) << task.name;
    EXPECT_NEAR(emp, p, 4 * se) << task.name << ": simulated " << emp << ", oracle " << p;
  }
}

TEST(SynthModel, OracleEdgeCases) {
  const SynthModel m;
  LatentState s;
  s.birth = kStudyStart - 60 * kYearUs, s.t = kStudyStart, s.conds = s.hazard_conds = bit(kCkd);
  EXPECT_EQ(outcome_probability(m, s, 180 * kDayUs, kCkd), 0);  // already has it
  EXPECT_EQ(outcome_probability(m, s, 0, kDeath), 0);
  double last = 0;
  for (int days : {1, 30, 31, 200, 365, 3650}) {  // grows with the horizon, stays a probability
    double p = outcome_probability(m, s, days * kDayUs, kDeath);
    EXPECT_GT(p, last) << days;
    EXPECT_LT(p, 1) << days;
    last = p;
  }
  // Conditions raise the risk of death.
  LatentState sick = s;
  sick.conds = sick.hazard_conds = bit(kCkd) | bit(kHeartFailure) | bit(kDiabetes);
  EXPECT_GT(outcome_probability(m, sick, 365 * kDayUs, kDeath),
            2 * outcome_probability(m, s, 365 * kDayUs, kDeath));
}

TEST(SynthModel, VocabularyIsCompleteAndUnique) {
  const SynthModel m;
  ASSERT_EQ(m.codes().size(), static_cast<size_t>(kNumCodes));
  std::set<std::string> unique;
  for (const auto& c : m.codes()) EXPECT_TRUE(unique.insert(c.code).second) << c.code;
  EXPECT_EQ(m.codes()[kCodeDiagnosis0 + kCkd].code, "DIAGNOSIS//ICD//10//N18");
  EXPECT_EQ(m.codes()[kCodeLab0].code, "LAB//glucose//mg/dL");
  EXPECT_EQ(m.codes()[kCodeMed0].code, "MEDICATION//metformin");
  EXPECT_EQ(m.codes()[kCodeNoise0 + kNumNoise - 1].code, "DIAGNOSIS//ICD//10//Z299");
}

// A subject is a function of (seed, index) alone. The golden hash pins the generator's output
// across compilers and platforms; if a change to the model is intended, bump kGeneratorVersion
// (data/synth.cpp) and update the hash here.
TEST(SynthModel, SubjectsAreFixedBySeedAndIndex) {
  const SynthModel m;
  Sha256 h;
  for (int64_t i = 0; i < 20; ++i) {
    SynthSubject a = simulate_subject(m, 0, i), b = simulate_subject(m, 0, i);
    ASSERT_EQ(a.events.size(), b.events.size());
    EXPECT_EQ(0, std::memcmp(a.events.data(), b.events.data(), a.events.size() * sizeof(SynthEvent)));
    for (const auto& e : a.events) {
      h.update(&e.time, sizeof e.time);
      h.update(&e.code, sizeof e.code);
      h.update(&e.value, sizeof e.value);
    }
    for (const auto& l : a.labels) {
      h.update(&l.prediction_time, sizeof l.prediction_time);
      h.update(&l.probability, sizeof l.probability);
    }
  }
  EXPECT_EQ(h.hex(), "7323b80112930bd1d17b41ebb43a96215ddc14633180803baf036b3b1da33fae");
  EXPECT_NE(simulate_subject(m, 1, 0).events.size(), 0u);
}

// ---- Written datasets.

TEST(SynthDataset, SameBytesForSeedAndAnyThreadCount) {
  TempDir dir;
  write_synth_dataset(options(dir / "a", 2500, 7, 1));  // two blocks: 2000 + 500 subjects
  write_synth_dataset(options(dir / "b", 2500, 7, 3));
  write_synth_dataset(options(dir / "c", 2500, 8, 2));
  auto a = files_under(dir / "a"), b = files_under(dir / "b"), c = files_under(dir / "c");
  ASSERT_EQ(a.size(), b.size());
  ASSERT_GT(a.size(), 10u);
  int differ = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(fs::relative(a[i], dir / "a"), fs::relative(b[i], dir / "b"));
    EXPECT_EQ(sha256_file(a[i]), sha256_file(b[i])) << a[i];
    if (i < c.size() && a[i].filename() != "codes.parquet") differ += sha256_file(a[i]) != sha256_file(c[i]);
  }
  EXPECT_GT(differ, static_cast<int>(a.size()) - 3) << "another seed should change the data";
}

// One 2000-subject dataset for the tests that only read it.
class SynthData : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir;
    summary_ = write_synth_dataset(options(*dir_ / "meds", kSubjects, 3));
  }
  static void TearDownTestSuite() { delete dir_; }
  static fs::path root() { return *dir_ / "meds"; }

  static constexpr int64_t kSubjects = 2000;
  static TempDir* dir_;
  static SynthSummary summary_;
};
TempDir* SynthData::dir_ = nullptr;
SynthSummary SynthData::summary_;

TEST_F(SynthData, IsValidMeds) {
  EXPECT_FALSE(fs::exists(fs::path(root().string() + ".tmp-" + std::to_string(getpid()))));
  std::string json = read_file(root() / "metadata" / "dataset.json");
  EXPECT_NE(json.find("\"meds_version\": \"0.4.0\""), std::string::npos) << json;
  EXPECT_NE(json.find("seed 3, 2000 subjects"), std::string::npos) << json;

  auto codes_t = read_table(root() / "metadata" / "codes.parquet");
  const auto& parents_type = *codes_t->schema()->GetFieldByName("parent_codes")->type();
  ASSERT_EQ(parents_type.id(), arrow::Type::LIST);
  EXPECT_EQ(parents_type.field(0)->type()->id(), arrow::Type::STRING);
  std::set<std::string> codes;
  for (int64_t i = 0; i < codes_t->num_rows(); ++i)
    codes.insert(col<arrow::StringArray>(*codes_t, "code").GetString(i));
  auto splits_t = read_table(root() / "metadata" / "subject_splits.parquet");
  std::map<int64_t, std::string> split_of;
  for (int64_t i = 0; i < splits_t->num_rows(); ++i)
    split_of[col<arrow::Int64Array>(*splits_t, "subject_id").Value(i)] =
        col<arrow::StringArray>(*splits_t, "split").GetString(i);
  EXPECT_EQ(static_cast<int64_t>(split_of.size()), kSubjects);

  // Every file: the MEDS schema with MEDS's exact types; every subject in one file, contiguous,
  // time-sorted (MedsFileReader checks these), static rows first, nothing after death.
  PrepareConfig cfg;
  std::set<int64_t> seen;
  int64_t events = 0;
  for (const MedsFile& f : find_meds_files(root())) {
    auto t = read_table(f.path);
    check_meds_schema(*t->schema(), f.path.string(), cfg);
    EXPECT_EQ(t->schema()->ToString(), "subject_id: int64 not null\ntime: timestamp[us]\n"
              "code: string not null\nnumeric_value: float\ntext_value: large_string");
    MedsFileReader reader(f, cfg);
    for (Subject s; reader.next(s);) {
      EXPECT_TRUE(seen.insert(s.id).second) << s.id << " in two files";
      EXPECT_EQ(split_of[s.id], f.split) << s.id;
      events += static_cast<int64_t>(s.events.size());
      bool timed = false;
      for (size_t i = 0; i < s.events.size(); ++i) {
        const Event& e = s.events[i];
        EXPECT_TRUE(codes.count(std::string(e.code))) << e.code;
        EXPECT_FALSE(!e.has_time && timed) << s.id << ": static row after a timed row";
        timed |= e.has_time;
        if (e.code == "MEDS_DEATH") {
          EXPECT_EQ(i + 1, s.events.size()) << s.id << ": rows after death";
        }
        if (e.has_time) {
          EXPECT_LT(e.time_us, kDataEnd);
        }
        EXPECT_EQ(e.has_value, e.code.rfind("LAB//", 0) == 0) << e.code;
      }
      ASSERT_GE(s.events.size(), 3u);
      EXPECT_TRUE(s.events[0].code == "GENDER//F" || s.events[0].code == "GENDER//M");
      EXPECT_EQ(s.events[1].code, "MEDS_BIRTH");
    }
  }
  EXPECT_EQ(static_cast<int64_t>(seen.size()), kSubjects);
  EXPECT_EQ(events, summary_.events);
  EXPECT_EQ(summary_.split_subjects[0] + summary_.split_subjects[1] + summary_.split_subjects[2], kSubjects);
  EXPECT_NEAR(summary_.split_subjects[0], 0.8 * kSubjects, 0.05 * kSubjects);
}

// Each label agrees with the recorded timeline: the prediction time is a row of the subject, the
// outcome (death / first CKD diagnosis) lies within the horizon exactly when the label says so.
TEST_F(SynthData, LabelsMatchTheRecordedEvents) {
  std::map<int64_t, std::vector<int64_t>> times;  // subject -> row times
  std::map<int64_t, int64_t> death, ckd;          // subject -> time of death / first N18
  for (const MedsFile& f : find_meds_files(root())) {
    MedsFileReader reader(f, PrepareConfig{});
    for (Subject s; reader.next(s);)
      for (const Event& e : s.events) {
        if (!e.has_time) continue;
        times[s.id].push_back(e.time_us);
        if (e.code == "MEDS_DEATH") death[s.id] = e.time_us;
        if (e.code == "DIAGNOSIS//ICD//10//N18" && !ckd.count(s.id)) ckd[s.id] = e.time_us;
      }
  }
  for (const SynthTask& task : synth_tasks()) {
    int64_t rows = 0;
    for (const char* split : {"train", "tuning", "held_out"}) {
      for (const auto& file : files_under(root() / "labels" / task.name / split)) {
        auto t = read_table(file);
        // Exactly meds.LabelSchema; the true probability is in the oracle file of the same rows.
        EXPECT_EQ(t->schema()->ToString(), "subject_id: int64 not null\nprediction_time: "
                  "timestamp[us] not null\nboolean_value: bool not null");
        const fs::path oracle_file = root() / "oracle" / fs::relative(file, root() / "labels");
        EXPECT_EQ(oracle_path(file), fs::absolute(oracle_file).lexically_normal());
        auto o = read_table(oracle_file);
        EXPECT_EQ(o->schema()->ToString(), "subject_id: int64 not null\nprediction_time: "
                  "timestamp[us] not null\ntrue_probability: double not null");
        ASSERT_EQ(o->num_rows(), t->num_rows()) << oracle_file;
        for (int64_t i = 0; i < t->num_rows(); ++i, ++rows) {
          const int64_t id = col<arrow::Int64Array>(*t, "subject_id").Value(i);
          const int64_t pt = col<arrow::TimestampArray>(*t, "prediction_time").Value(i);
          const bool value = col<arrow::BooleanArray>(*t, "boolean_value").Value(i);
          const double p = col<arrow::DoubleArray>(*o, "true_probability").Value(i);
          EXPECT_EQ(col<arrow::Int64Array>(*o, "subject_id").Value(i), id);
          EXPECT_EQ(col<arrow::TimestampArray>(*o, "prediction_time").Value(i), pt);
          EXPECT_STREQ(synth_split(id), split);
          EXPECT_TRUE(p >= 0 && p <= 1) << p;
          EXPECT_LE(pt + task.horizon, kDataEnd);
          const auto& ts = times[id];
          EXPECT_TRUE(std::binary_search(ts.begin(), ts.end(), pt)) << id << ": no row at prediction time";
          const auto& outcomes = task.outcome == kDeath ? death : ckd;
          auto it = outcomes.find(id);
          const bool happened = it != outcomes.end() && it->second > pt && it->second <= pt + task.horizon;
          EXPECT_EQ(value, happened) << task.name << " subject " << id;
          if (it != outcomes.end()) {
            EXPECT_GT(it->second, pt) << task.name << ": outcome before prediction";
          }
        }
      }
    }
    EXPECT_GT(rows, kSubjects / 2) << task.name;
  }
}

// Conditions show in the labs (diabetes: glucose; CKD: creatinine; heart failure: BNP), and the
// long tail of rare codes leaves codes below the default privacy threshold (10 subjects).
TEST_F(SynthData, ConditionsShiftLabsAndRareCodesExist) {
  struct Sums { double with = 0, without = 0; int n_with = 0, n_without = 0; };
  const std::vector<std::pair<std::string, std::string>> pairs = {
      {"DIAGNOSIS//ICD//10//E11", "LAB//glucose//mg/dL"},
      {"DIAGNOSIS//ICD//10//N18", "LAB//creatinine//mg/dL"},
      {"DIAGNOSIS//ICD//10//I50", "LAB//bnp//pg/mL"}};
  std::vector<Sums> sums(pairs.size());
  std::map<std::string, std::set<int64_t>> subjects_of_code;
  for (const MedsFile& f : find_meds_files(root())) {
    MedsFileReader reader(f, PrepareConfig{});
    for (Subject s; reader.next(s);) {
      std::set<std::string> has;
      for (const Event& e : s.events) {
        has.insert(std::string(e.code));
        if (f.split == "train") subjects_of_code[std::string(e.code)].insert(s.id);
      }
      for (size_t k = 0; k < pairs.size(); ++k)
        for (const Event& e : s.events)
          if (e.code == pairs[k].second) {
            bool w = has.count(pairs[k].first) > 0;
            (w ? sums[k].with : sums[k].without) += e.value;
            ++(w ? sums[k].n_with : sums[k].n_without);
          }
    }
  }
  for (size_t k = 0; k < pairs.size(); ++k) {
    ASSERT_GT(sums[k].n_with, 50) << pairs[k].first;
    ASSERT_GT(sums[k].n_without, 50) << pairs[k].first;
    double with = sums[k].with / sums[k].n_with, without = sums[k].without / sums[k].n_without;
    EXPECT_GT(with, 1.4 * without) << pairs[k].second << " with " << pairs[k].first;
  }
  int rare = 0, common = 0;
  for (const auto& [code, ids] : subjects_of_code) (ids.size() < 10 ? rare : common)++;
  EXPECT_GE(rare, 20);
  EXPECT_GE(common, 40);
}

// Over many labels, the true probabilities are calibrated (overall and in the lower and upper
// half of risk) and rank the outcomes well.
TEST(SynthDataset, TrueProbabilitiesAreCalibratedAndInformative) {
  TempDir dir;
  write_synth_dataset(options(dir / "meds", 15000, 11));
  for (const SynthTask& task : synth_tasks()) {
    std::vector<double> p;
    std::vector<bool> y;
    // Through the readers eval uses: the labels, then their oracle.
    std::vector<LabelRow> rows = read_labels(dir / "meds" / "labels" / task.name);
    ASSERT_EQ(add_true_probabilities(read_oracle(dir / "meds" / "labels" / task.name), rows), rows.size());
    for (const LabelRow& r : rows) {
      p.push_back(r.true_probability);
      y.push_back(r.label);
    }
    std::vector<double> sorted = p;
    std::sort(sorted.begin(), sorted.end());
    const double median = sorted[sorted.size() / 2];
    for (int half = -1; half <= 1; ++half) {  // all, lower half, upper half
      double expected = 0, var = 0, observed = 0;
      for (size_t i = 0; i < p.size(); ++i) {
        if ((half < 0 && p[i] >= median) || (half > 0 && p[i] < median)) continue;
        expected += p[i], var += p[i] * (1 - p[i]), observed += y[i];
      }
      EXPECT_NEAR(observed, expected, 4 * std::sqrt(var) + 1)
          << task.name << " half " << half << ": " << observed << " outcomes, " << expected << " expected";
    }
    const double auc = auroc(p, y);
    EXPECT_GT(auc, 0.75) << task.name;
    std::printf("%s: %zu labels, %.0f positive, oracle AUROC %.3f\n", task.name, p.size(),
                static_cast<double>(std::count(y.begin(), y.end(), true)), auc);
  }
}

// ---- The command line.

TEST(SynthCli, WritesAndRefusesAnExistingDirectoryWithoutOverwrite) {
  TempDir dir;
  const std::string out = (dir / "meds").string();
  std::string output;
  ASSERT_EQ(testing::run_chart("synth --out " + out + " --subjects 40 --seed 5", &output), 0) << output;
  EXPECT_NE(output.find("40 subjects"), std::string::npos) << output;
  EXPECT_TRUE(fs::exists(dir / "meds" / "metadata" / "codes.parquet"));
  const std::string before = sha256_file(dir / "meds" / "metadata" / "subject_splits.parquet");

  EXPECT_EQ(testing::run_chart("synth --out " + out + " --subjects 50", &output), 1) << output;
  EXPECT_NE(output.find(out + " already exists"), std::string::npos) << output;
  EXPECT_NE(output.find("--overwrite"), std::string::npos) << output;
  EXPECT_EQ(sha256_file(dir / "meds" / "metadata" / "subject_splits.parquet"), before);

  ASSERT_EQ(testing::run_chart("synth --out " + out + "/ --subjects 50 --overwrite", &output), 0) << output;
  EXPECT_NE(sha256_file(dir / "meds" / "metadata" / "subject_splits.parquet"), before);
  for (const auto& e : fs::directory_iterator(dir.path()))  // no temporary left beside it
    EXPECT_EQ(e.path().filename(), "meds");
}

TEST(SynthCli, UsageErrors) {
  TempDir dir;
  const std::string out = " --out " + (dir / "x").string();
  std::string output;
  EXPECT_EQ(testing::run_chart("synth", &output), 2) << output;
  EXPECT_NE(output.find("--out is required"), std::string::npos) << output;
  EXPECT_EQ(testing::run_chart("synth" + out + " --subjects 0", &output), 2) << output;
  EXPECT_NE(output.find("out of range"), std::string::npos) << output;
  EXPECT_EQ(testing::run_chart("synth" + out + " --subject 5", &output), 2) << output;
  EXPECT_NE(output.find("unknown option --subject"), std::string::npos) << output;
  EXPECT_FALSE(fs::exists(dir / "x"));
}

}  // namespace
}  // namespace chart
