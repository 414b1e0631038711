// chart's outputs in the MEDS ecosystem's formats: label files that pass meds.LabelSchema as
// written (the oracle in its own file beside them), predictions that pass meds-evaluation's
// PredictionSchema, and predictions from other tools (float64 probabilities) that eval scores.
// The schemas are the packages' own (tests/check_meds_schemas.py); without the packages that part
// skips, saying so.
#include <arrow/api.h>
#include <arrow/io/file.h>
#include <gtest/gtest.h>
#include <parquet/arrow/reader.h>

#include "core/json.h"
#include "data/labels.h"
#include "tests/test_util.h"

namespace chart {
namespace {
using testing::TempDir;
namespace fs = std::filesystem;

using testing::config;

// Runs tests/check_meds_schemas.py; 77 means the packages are missing.
int check_py(const std::string& args, std::string* out) {
  return testing::run_python((testing::source_dir() / "tests" / "check_meds_schemas.py").string() + " " + args, out);
}

std::shared_ptr<arrow::Schema> parquet_schema(const fs::path& file) {
  auto in = arrow::io::ReadableFile::Open(file.string()).ValueOrDie();
  auto reader = parquet::arrow::OpenFile(in, arrow::default_memory_pool()).ValueOrDie();
  std::shared_ptr<arrow::Schema> schema;
  EXPECT_TRUE(reader->GetSchema(&schema).ok());
  return schema;
}

TEST(MedsInterop, LabelsAndPredictionsPassTheEcosystemSchemas) {
  if (std::string(CHART_PYTHON_EXE).empty()) GTEST_SKIP() << "no CHART_PYTHON configured";
  TempDir dir;
  const fs::path meds = dir / "meds", tok = dir / "tok", pre = dir / "pre", ft = dir / "ft", ev = dir / "eval";
  const std::string labels = (meds / "labels" / "mortality_365d").string();
  std::string out;
  ASSERT_EQ(testing::run_chart("synth --out " + meds.string() + " --subjects 400 --seed 4", &out), 0) << out;
  ASSERT_EQ(testing::run_chart("prepare --meds " + meds.string() + " --out " + tok.string(), &out), 0) << out;
  ASSERT_EQ(testing::run_chart("train " + config("tiny.yaml") + " --set data.dir=" + tok.string() + " --set run.dir=" +
                                   pre.string() + " --set train.steps=3 --set model.context=64 --set train.eval_every=0 "
                                   "--set train.threads=2", &out), 0) << out;
  ASSERT_EQ(testing::run_chart("finetune " + config("finetune/full.yaml") + " --set init.checkpoint=" + pre.string() +
                                   " --set task.labels=" + labels + " --set run.dir=" + ft.string() +
                                   " --set train.steps=3 --set train.eval_every=0 --set train.threads=2", &out), 0)
      << out;
  const std::string eval = "eval " + config("finetune/full.yaml") + " --set task.labels=" + labels +
                           " --set eval.bootstrap=20 --set train.threads=2 ";
  ASSERT_EQ(testing::run_chart(eval + "--set init.checkpoint=" + ft.string() + " --set run.dir=" + ev.string(), &out), 0)
      << out;

  // The oracle is beside the model, read from oracle/ (the label files have no extra column).
  const Json j = read_json_file(ev / "eval.json");
  ASSERT_TRUE(j.contains("oracle")) << j.dump();
  EXPECT_GT(j["oracle"]["auroc"].get<double>(), 0.6);
  EXPECT_EQ(parquet_schema(ev / "predictions.parquet")->GetFieldByName("predicted_boolean_probability")->type()->id(),
            arrow::Type::FLOAT);

  // Another tool's predictions: the same probabilities as float64 give the same numbers.
  const fs::path f64 = dir / "f64.parquet";
  out.clear();
  ASSERT_EQ(check_py("float64 " + (ev / "predictions.parquet").string() + " " + f64.string(), &out), 0) << out;
  ASSERT_EQ(parquet_schema(f64)->GetFieldByName("predicted_boolean_probability")->type()->id(), arrow::Type::DOUBLE);
  for (const fs::path& file : {ev / "predictions.parquet", f64}) {
    const fs::path again = dir / ("again-" + file.stem().string());
    ASSERT_EQ(testing::run_chart(eval + "--set eval.predictions=" + file.string() + " --set run.dir=" + again.string(),
                                 &out), 0) << out;
    const Json k = read_json_file(again / "eval.json");
    EXPECT_EQ(k["auroc"], j["auroc"]) << file;
    EXPECT_EQ(k["oracle"]["auroc"], j["oracle"]["auroc"]) << file;
  }

  out.clear();
  const int rc = check_py("labels " + (meds / "labels").string(), &out);
  if (rc == 77) GTEST_SKIP() << out;
  EXPECT_EQ(rc, 0) << out;
  out.clear();
  ASSERT_EQ(check_py("predictions " + (ev / "predictions.parquet").string() + " " +
                         (dir / "again-predictions" / "predictions.parquet").string(), &out), 0) << out;
  std::printf("%s", out.c_str());
  // meds-evaluation's AUROC (scikit-learn's) of the file is chart's.
  const auto at = out.find("roc_auc_score ");
  ASSERT_NE(at, std::string::npos) << out;
  EXPECT_NEAR(std::stod(out.substr(at + 14)), j["auroc"].get<double>(), 1e-12) << out;
}

// chart's MEDS-DEV entry (meds_dev/chart/model.yaml), run as MEDS-DEV runs it: its three commands
// formatted with MEDS-DEV's placeholders, on synthetic MEDS with labels made by ACES; the
// predictions pass meds-evaluation's schema and hold exactly the held_out label rows.
TEST(MedsDev, TheModelEntryRunsEndToEndOnAcesLabels) {
  if (std::string(CHART_PYTHON_EXE).empty()) GTEST_SKIP() << "no CHART_PYTHON configured";
  TempDir dir;
  std::string out;
  const int rc = testing::run_python((testing::source_dir() / "tests" / "check_meds_dev.py").string() + " " +
                                         CHART_BINARY + " " + dir.path().string(), &out);
  if (rc == 77) GTEST_SKIP() << out;
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("held_out predictions pass PredictionSchema"), std::string::npos) << out;
}

}  // namespace
}  // namespace chart
