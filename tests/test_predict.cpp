// Bring your own MEDS data, as a researcher with a development site and an external site does:
// site A pretrains and fine-tunes; site B (its own codes for a third of its events) is tokenized on
// A's vocabulary (`chart prepare --vocab`), and `chart predict` scores its subjects without labels,
// from the fine-tuned head and zero-shot, in meds-evaluation's shape. Checked against chart's own
// eval (the same probabilities for the same rows) and the ecosystem's schemas.
#include <arrow/api.h>
#include <arrow/io/file.h>
#include <gtest/gtest.h>
#include <parquet/arrow/reader.h>

#include "core/files.h"
#include "core/json.h"
#include "data/labels.h"
#include "data/token_dataset.h"
#include "tests/test_util.h"

namespace chart {
namespace {
using testing::contains;
using testing::TempDir;
namespace fs = std::filesystem;

using testing::config;

int check_py(const std::string& args, std::string* out) {
  return testing::run_python((testing::source_dir() / "tests" / "check_meds_schemas.py").string() + " " + args, out);
}

std::shared_ptr<arrow::Table> read_table(const fs::path& file) {
  auto in = arrow::io::ReadableFile::Open(file.string()).ValueOrDie();
  auto reader = parquet::arrow::OpenFile(in, arrow::default_memory_pool()).ValueOrDie();
  std::shared_ptr<arrow::Table> t;
  EXPECT_TRUE(reader->ReadTable(&t).ok());
  return t;
}

// (subject_id, prediction_time) -> probability, of a predictions file.
std::map<std::pair<int64_t, int64_t>, float> probabilities(const fs::path& file) {
  std::map<std::pair<int64_t, int64_t>, float> out;
  auto t = read_table(file)->CombineChunks().ValueOrDie();
  auto& s = static_cast<const arrow::Int64Array&>(*t->GetColumnByName("subject_id")->chunk(0));
  auto& p = static_cast<const arrow::TimestampArray&>(*t->GetColumnByName("prediction_time")->chunk(0));
  auto& q = static_cast<const arrow::FloatArray&>(*t->GetColumnByName("predicted_boolean_probability")->chunk(0));
  for (int64_t i = 0; i < t->num_rows(); ++i) out[{s.Value(i), p.Value(i)}] = q.Value(i);
  return out;
}

TEST(Predict, AnExternalSiteOnThePretrainingVocabularyFromHeadAndZeroShot) {
  if (std::string(CHART_PYTHON_EXE).empty()) GTEST_SKIP() << "no CHART_PYTHON configured";
  TempDir dir;
  const fs::path a = dir / "site_a", b = dir / "site_b", tok_a = dir / "tok_a", tok_b = dir / "tok_b";
  const fs::path pre = dir / "pre", ft = dir / "ft";
  const std::string labels_a = (a / "labels" / "mortality_365d").string();
  const std::string labels_b = (b / "labels" / "mortality_365d").string();
  const std::string threads = " --set train.threads=2";
  std::string out;
  ASSERT_EQ(testing::run_chart("synth --out " + a.string() + " --subjects 400 --seed 4", &out), 0) << out;
  ASSERT_EQ(testing::run_chart("prepare --meds " + a.string() + " --out " + tok_a.string(), &out), 0) << out;
  ASSERT_EQ(testing::run_chart("train " + config("tiny.yaml") + " --set data.dir=" + tok_a.string() + " --set run.dir=" +
                                   pre.string() + " --set train.steps=3 --set model.context=64 --set train.eval_every=0" +
                                   threads, &out), 0) << out;
  ASSERT_EQ(testing::run_chart("finetune " + config("finetune/full.yaml") + " --set init.checkpoint=" + pre.string() +
                                   " --set task.labels=" + labels_a + " --set run.dir=" + ft.string() +
                                   " --set train.steps=3 --set train.eval_every=0" + threads, &out), 0) << out;

  // Site B: other subjects, a third of its events under codes site A never had.
  const fs::path b_src = dir / "site_b_src";
  ASSERT_EQ(testing::run_chart("synth --out " + b_src.string() + " --subjects 120 --seed 9", &out), 0) << out;
  out.clear();
  ASSERT_EQ(check_py("shift " + b_src.string() + " " + b.string(), &out), 0) << out;

  // Tokenized on the pretraining run's vocabulary (found through the checkpoint): A's bytes, and
  // the codes it lacks counted and warned about.
  out.clear();
  ASSERT_EQ(testing::run_chart("prepare --meds " + b.string() + " --out " + tok_b.string() + " --vocab " + pre.string(),
                               &out), 0) << out;
  EXPECT_EQ(read_file(tok_b / "vocab.tsv"), read_file(tok_a / "vocab.tsv"));
  EXPECT_TRUE(contains(out, "outside the fixed vocabulary")) << out;
  const Json cov = read_json_file(tok_b / "coverage.json");
  const double share = cov["splits"]["held_out"]["unknown_share"].get<double>();
  EXPECT_GT(share, 0.2) << cov.dump();
  EXPECT_LT(share, 0.45) << cov.dump();
  EXPECT_TRUE(contains(cov["splits"]["held_out"]["codes"][0]["code"].get<std::string>(), "SITE_B//"));
  EXPECT_NE(testing::run_chart("prepare --meds " + b.string() + " --out " + (dir / "x").string() + " --vocab " +
                                   (dir / "nowhere").string(), &out), 0);

  // The fine-tuned head at each subject's last event: one row per subject, no labels.
  const std::string predict = "predict " + config("finetune/full.yaml") + threads + " --set init.checkpoint=";
  out.clear();
  ASSERT_EQ(testing::run_chart(predict + ft.string() + " --set data.dir=" + tok_b.string() +
                                   " --set predict.times=last --set run.dir=" + (dir / "p_last").string(), &out), 0)
      << out;
  int64_t subjects = 0;
  const Json manifest_b = read_json_file(tok_b / "manifest.json");
  for (const auto& [name, s] : manifest_b["splits"].items()) subjects += s["subjects"].get<int64_t>();
  EXPECT_EQ(read_table(dir / "p_last" / "predictions.parquet")->num_rows(), subjects);
  out.clear();
  const int rc = check_py("unlabelled " + (dir / "p_last" / "predictions.parquet").string(), &out);
  if (rc != 77) EXPECT_EQ(rc, 0) << out;
  const Json pj = read_json_file(dir / "p_last" / "predict.json");
  EXPECT_EQ(pj["method"], "fine-tuned head");
  EXPECT_GT(pj["coverage"]["held_out"]["unknown_share"].get<double>(), 0.2);
  // A run dir that holds predictions is not overwritten.
  EXPECT_EQ(testing::run_chart(predict + ft.string() + " --set data.dir=" + tok_b.string() +
                                   " --set predict.times=last --set run.dir=" + (dir / "p_last").string(), &out), 1);

  // Raw MEDS in, prediction times from B's label file (its values ignored): the same
  // probabilities as eval gives those rows.
  out.clear();
  ASSERT_EQ(testing::run_chart(predict + ft.string() + " --set predict.meds=" + b.string() + " --set task.labels=" +
                                   labels_b + " --set predict.split=held_out --set run.dir=" + (dir / "p_raw").string(),
                               &out), 0) << out;
  EXPECT_EQ(read_file(dir / "p_raw" / "tokens" / "vocab.tsv"), read_file(tok_a / "vocab.tsv"));
  ASSERT_EQ(testing::run_chart("eval " + config("finetune/full.yaml") + threads + " --set init.checkpoint=" + ft.string() +
                                   " --set data.dir=" + tok_b.string() + " --set task.labels=" + labels_b +
                                   " --set eval.bootstrap=0 --set run.dir=" + (dir / "eval_b").string(), &out), 0)
      << out;
  const auto predicted = probabilities(dir / "p_raw" / "predictions.parquet");
  const auto evaluated = probabilities(dir / "eval_b" / "predictions.parquet");
  EXPECT_EQ(predicted, evaluated);
  EXPECT_FALSE(predicted.empty());
  const Json ej = read_json_file(dir / "eval_b" / "eval.json");
  EXPECT_GT(ej["coverage"]["unknown_share"].get<double>(), 0.2) << ej.dump();
  EXPECT_TRUE(contains(read_file(dir / "eval_b" / "report.html"), "vocabulary coverage"));

  // Labels of another task than the head's are refused unless asked for.
  const std::string ckd = (b / "labels" / "ckd_onset_180d").string();
  const std::string eval_ckd = "eval " + config("finetune/full.yaml") + threads + " --set init.checkpoint=" + ft.string() +
                               " --set data.dir=" + tok_b.string() + " --set task.labels=" + ckd + " --set eval.bootstrap=0";
  out.clear();
  EXPECT_EQ(testing::run_chart(eval_ckd + " --set run.dir=" + (dir / "eval_ckd").string(), &out), 1);
  EXPECT_TRUE(contains(out, "fine-tuned on task 'mortality_365d'")) << out;
  EXPECT_EQ(testing::run_chart(eval_ckd + " --set eval.other_task=true --set run.dir=" + (dir / "eval_ckd2").string(),
                               &out), 0) << out;

  // Zero-shot from the pretrained checkpoint: the outcome must be named.
  const std::string zero_shot = "predict " + config("tiny.yaml") + threads + " --set init.checkpoint=" + pre.string() +
                                " --set data.dir=" + tok_b.string() + " --set predict.times=last --set predict.split=held_out"
                                " --set generate.samples=2 --set generate.max_new_tokens=16";
  out.clear();
  EXPECT_EQ(testing::run_chart(zero_shot + " --set run.dir=" + (dir / "zs0").string(), &out), 1);
  EXPECT_TRUE(contains(out, "generate.outcome_codes is not set")) << out;
  out.clear();
  ASSERT_EQ(testing::run_chart(zero_shot + " --set generate.outcome_codes=[MEDS_DEATH] --set run.dir=" +
                                   (dir / "zs").string(), &out), 0) << out;
  EXPECT_EQ(read_table(dir / "zs" / "predictions.parquet")->num_rows(),
            read_json_file(tok_b / "manifest.json")["splits"]["held_out"]["subjects"].get<int64_t>());
  EXPECT_EQ(read_table(dir / "zs" / "risk.parquet")->GetColumnByName("boolean_value"), nullptr);
  EXPECT_EQ(read_json_file(dir / "zs" / "predict.json")["outcome_codes"], Json::array({"MEDS_DEATH"}));
}

}  // namespace
}  // namespace chart
