// Every MEDS label type beyond boolean: integer and categorical labels fine-tune a head with one
// output per class, float labels a regression head, and `chart eval` scores each; several label
// sets fine-tune one backbone with a head each (task.multi). The metrics
// against scikit-learn's numbers, label reading (class order, bad files), and end to end on
// `chart synth` data: a three-class task learns clearly above chance and a regression head
// explains most of a learnable target, predictions come in the shapes promised (meds-evaluation's
// for each class against the rest), and heads and labels of the other kind are refused.
#include <gtest/gtest.h>

#include <arrow/api.h>

#include <fmt/format.h>

#include "core/error.h"
#include "core/files.h"
#include "core/json.h"
#include "data/labels.h"
#include "data/parquet_table.h"
#include "finetune_pipeline.h"
#include "test_util.h"
#include "train/validation/multiclass_metrics.h"
#include "train/validation/regression_metrics.h"

namespace chart {
namespace {
namespace fs = std::filesystem;

// Eight rows of three classes; the expected values are scikit-learn 1.9's (roc_auc_score with
// multi_class="ovr", the micro AUROC on the flattened one-hot matrix, average_precision_score,
// log_loss, precision_score and recall_score of the argmax).
TEST(MulticlassMetrics, MatchScikitLearn) {
  const std::vector<std::vector<double>> p = {{0.7, 0.2, 0.1}, {0.2, 0.5, 0.3}, {0.1, 0.3, 0.6}, {0.4, 0.4, 0.2},
                                              {0.3, 0.3, 0.4}, {0.2, 0.6, 0.2}, {0.5, 0.1, 0.4}, {0.1, 0.2, 0.7}};
  const std::vector<int> y = {0, 1, 2, 1, 0, 1, 2, 2};
  const MulticlassMetrics m = multiclass_metrics(p, y, 3);
  EXPECT_DOUBLE_EQ(m.accuracy, 0.625);  // row 3 ties classes 0 and 1: the first wins, as numpy's argmax
  EXPECT_NEAR(m.macro_auroc, 0.9333333333333335, 1e-12);
  EXPECT_NEAR(m.micro_auroc, 0.9296875, 1e-12);
  EXPECT_NEAR(m.per_class[0].auroc, 0.8333333333333334, 1e-12);
  EXPECT_NEAR(m.per_class[2].auroc, 0.9666666666666667, 1e-12);
  EXPECT_NEAR(m.per_class[2].auprc, 0.9166666666666665, 1e-12);
  EXPECT_NEAR(m.log_loss, 0.6830878230054547, 1e-12);
  EXPECT_NEAR(m.per_class[0].precision, 1.0 / 3, 1e-12);
  EXPECT_NEAR(m.per_class[1].recall, 2.0 / 3, 1e-12);
  EXPECT_DOUBLE_EQ(m.majority_rate, 3.0 / 8);
  EXPECT_EQ(m.confusion[1][0], 1);  // the tied row
  EXPECT_EQ(m.confusion[0][2], 1);
  const MulticlassEvaluation e = evaluate_multiclass(p, y, 3, 200, 7);
  EXPECT_LE(e.accuracy.lo, m.accuracy);
  EXPECT_GE(e.accuracy.hi, m.accuracy);
  EXPECT_THROW(multiclass_metrics(p, {0, 1, 2, 1, 0, 1, 2, 3}, 3), Error);  // a class out of range
  EXPECT_THROW(multiclass_metrics({{0.5, 0.5}}, {0}, 3), Error);           // a row of the wrong width
}

// By hand (sklearn agrees): every error is 0.5, so MAE = RMSE = 0.5; SSE 1, SST 5, R² 0.8.
TEST(RegressionMetrics, MatchScikitLearn) {
  const std::vector<double> t = {1, 2, 3, 4}, p = {1.5, 2.5, 2.5, 4.5};
  const RegressionMetrics m = regression_metrics(p, t);
  EXPECT_DOUBLE_EQ(m.mae, 0.5);
  EXPECT_DOUBLE_EQ(m.rmse, 0.5);
  EXPECT_DOUBLE_EQ(m.r2, 0.8);
  EXPECT_TRUE(std::isnan(regression_metrics({1, 2}, {3, 3}).r2));  // constant targets: no R²
  EXPECT_THROW(regression_metrics({1, NAN}, {1, 2}), Error);
  const auto bins = regression_calibration(p, t, 2);
  ASSERT_EQ(bins.size(), 2u);
  EXPECT_DOUBLE_EQ(bins[0].mean_observed, 1.5);  // the two lowest predictions (rows 0 and 1; ties keep order)
  EXPECT_DOUBLE_EQ(bins[1].mean_predicted, 3.5);
}

void write_labels(const fs::path& file, const std::string& column, const std::vector<std::string>& values) {
  data::TableBuilder t(file);
  auto& sid = t.add<arrow::Int64Builder>(arrow::field("subject_id", arrow::int64(), false));
  auto& ptime = t.add_timestamp("prediction_time", false);
  arrow::Int64Builder* i = column == "integer_value" || column == "both"
                               ? &t.add<arrow::Int64Builder>(arrow::field("integer_value", arrow::int64(), false))
                               : nullptr;
  arrow::StringBuilder* s = column == "categorical_value" || column == "both"
                                ? &t.add<arrow::StringBuilder>(arrow::field("categorical_value", arrow::utf8(), false))
                                : nullptr;
  arrow::FloatBuilder* f =
      column == "float_value" ? &t.add<arrow::FloatBuilder>(arrow::field("float_value", arrow::float32(), false)) : nullptr;
  for (size_t r = 0; r < values.size(); ++r) {
    t.append(sid, int64_t(r + 1));
    t.append(ptime, int64_t(1'600'000'000'000'000));
    if (i) t.append(*i, std::stoll(values[r]));
    if (s) t.append(*s, values[r]);
    if (f) t.append(*f, std::stof(values[r]));
  }
  t.write();
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(MulticlassLabels, ClassesInOrderAndBadFilesNamed) {
  testing::TempDir dir;
  write_labels(dir / "int.parquet", "integer_value", {"10", "2", "-1", "2"});
  const data::LabelSet ints = data::read_label_set(dir / "int.parquet");
  EXPECT_EQ(ints.column, "integer_value");
  EXPECT_EQ(ints.classes, (std::vector<std::string>{"-1", "2", "10"}));  // by value, not as text
  EXPECT_EQ(ints.rows[0].class_index, 2);
  EXPECT_EQ(ints.rows[2].class_index, 0);
  write_labels(dir / "cat.parquet", "categorical_value", {"sepsis", "none", "aki", "none"});
  data::LabelSet cats = data::read_label_set(dir / "cat.parquet");
  EXPECT_EQ(cats.classes, (std::vector<std::string>{"aki", "none", "sepsis"}));
  // Renumbered into a head's order; a class the head lacks is named with its row.
  data::use_classes(cats, {"none", "aki", "sepsis", "shock"}, "cat.parquet");
  EXPECT_EQ(cats.rows[0].class_index, 2);
  EXPECT_EQ(cats.rows[1].class_index, 0);
  data::LabelSet again = data::read_label_set(dir / "cat.parquet");
  EXPECT_NE(error_of([&] { data::use_classes(again, {"none", "aki"}, "cat.parquet"); }).find("row 0 has class 'sepsis'"),
            std::string::npos);
  // Two value columns, regression labels, and the boolean-only reader name the file.
  write_labels(dir / "both.parquet", "both", {"1", "2"});
  EXPECT_NE(error_of([&] { data::read_label_set(dir / "both.parquet"); }).find("more than one label column"),
            std::string::npos);
  write_labels(dir / "float.parquet", "float_value", {"1.5", "-2"});
  const data::LabelSet floats = data::read_label_set(dir / "float.parquet");
  EXPECT_TRUE(floats.regression());
  EXPECT_DOUBLE_EQ(floats.rows[1].value, -2.0);
  const std::string boolean_only = error_of([&] { data::read_labels(dir / "int.parquet"); });
  EXPECT_NE(boolean_only.find("int.parquet"), std::string::npos);
  EXPECT_NE(boolean_only.find("multi-class"), std::string::npos) << boolean_only;
  // A directory whose files disagree on the column.
  fs::create_directories(dir / "mixed");
  write_labels(dir / "mixed/a.parquet", "integer_value", {"1"});
  write_labels(dir / "mixed/b.parquet", "categorical_value", {"x"});
  EXPECT_NE(error_of([&] { data::read_label_set(dir / "mixed"); }).find("b.parquet: labels in 'categorical_value'"),
            std::string::npos);
}

double number(const Json& j, const char* key) { return j.at(key).get<double>(); }

TEST(Multiclass, ThreeClassTasksLearnAboveChanceAndEvalWritesEveryShape) {
  Pipeline p(800, 60);
  const fs::path classes = p.dir / "classes";
  ASSERT_EQ(run(fmt::format("{} {} classes {} {}", python(), fixture_py(), p.meds.string(), classes.string())), 0);
  std::string out;
  if (!python().empty()) {  // the fixture's label files are valid MEDS labels
    const int rc = testing::run_python((testing::source_dir() / "tests/check_meds_schemas.py").string() + " labels " +
                                           classes.string(), &out);
    if (rc != 77) ASSERT_EQ(rc, 0) << out;
  }
  for (const char* kind : {"categorical", "integer"}) {
    SCOPED_TRACE(kind);
    const fs::path labels = classes / kind, ft = p.dir / (std::string("ft-") + kind), ev = p.dir / (std::string("ev-") + kind);
    ASSERT_EQ(testing::run_chart(fmt::format("finetune {} --set init.checkpoint={} --set task.labels={} --set run.dir={} "
                                             "--set train.threads=2 --set finetune.context=64 --set train.steps=300 "
                                             "--set train.eval_every=100",
                                             testing::config("finetune/probe.yaml"), p.pretrain.string(), labels.string(),
                                             ft.string()), &out), 0) << out;
    EXPECT_NE(read_file(ft / "checkpoints" / "step_300" / "finetune.yaml").find("classes:"), std::string::npos);
    ASSERT_EQ(testing::run_chart(fmt::format("eval {} --set init.checkpoint={} --set task.labels={} --set run.dir={} "
                                             "--set eval.bootstrap=200 --set train.threads=2",
                                             testing::config("finetune/full.yaml"), ft.string(), labels.string(), ev.string()),
                                 &out), 0) << out;
    const Json j = parse_json(read_file(ev / "eval.json"), "eval.json");
    std::fprintf(stderr, "%s: held_out accuracy %.3f (most frequent class %.3f), macro AUROC %.3f [%.3f, %.3f], n %.0f\n",
                 kind, number(j, "accuracy"), number(j["model"], "majority_rate"), number(j, "macro_auroc"),
                 j["model"]["macro_auroc_ci"][0].get<double>(), j["model"]["macro_auroc_ci"][1].get<double>(),
                 number(j, "n"));
    EXPECT_EQ(j["task_type"], "multiclass");
    EXPECT_EQ(j["classes"].size(), 3u);
    EXPECT_GT(j["model"]["macro_auroc_ci"][0].get<double>(), 0.6) << j.dump();  // clearly above chance (0.5)
    EXPECT_GT(number(j, "accuracy"), number(j["model"], "majority_rate") + 0.05) << j.dump();
    int64_t confusion = 0;
    for (const auto& row : j["model"]["confusion"])
      for (const auto& c : row) confusion += c.get<int64_t>();
    EXPECT_EQ(confusion, j["n"].get<int64_t>());
    // predictions.parquet: the label, the predicted class, a probability per class summing to 1.
    auto t = data::read_parquet_table(ev / "predictions.parquet");
    const std::string column = std::string(kind) + "_value";
    ASSERT_NE(t->GetColumnByName(column), nullptr) << t->schema()->ToString();
    ASSERT_NE(t->GetColumnByName("predicted_" + column), nullptr) << t->schema()->ToString();
    double sum = 0;
    for (const auto& c : j["classes"]) {
      auto col = t->GetColumnByName("predicted_probability//" + c.get<std::string>());
      ASSERT_NE(col, nullptr) << c;
      sum += std::static_pointer_cast<arrow::FloatArray>(col->chunk(0))->Value(0);
    }
    EXPECT_NEAR(sum, 1.0, 1e-5);
    // Each class against the rest, in meds-evaluation's PredictionSchema, scored by meds-evaluation.
    std::string files;
    for (const auto& f : fs::directory_iterator(ev / "predictions_by_class")) files += " " + f.path().string();
    if (!python().empty()) {
      const int rc = testing::run_python((testing::source_dir() / "tests/check_meds_schemas.py").string() +
                                             " predictions" + files, &out);
      if (rc != 77) EXPECT_EQ(rc, 0) << out;
    }
    const std::string html = read_file(ev / "report.html");
    EXPECT_NE(html.find("Confusion matrix"), std::string::npos);
    EXPECT_NE(html.find("class=\"class-roc\""), std::string::npos);
    // chart predict on the same head writes the multi-class shape without labels.
    ASSERT_EQ(testing::run_chart(fmt::format("predict {} --set init.checkpoint={} --set task.labels={} --set run.dir={} "
                                             "--set predict.split=held_out",
                                             testing::config("finetune/full.yaml"), ft.string(), labels.string(),
                                             (p.dir / (std::string("pred-") + kind)).string()), &out), 0) << out;
    auto pt = data::read_parquet_table(p.dir / (std::string("pred-") + kind) / "predictions.parquet");
    EXPECT_EQ(pt->GetColumnByName(column), nullptr);
    EXPECT_NE(pt->GetColumnByName("predicted_" + column), nullptr);
  }
  // The other kind refused: boolean labels on a multi-class head, multi-class labels on a
  // boolean head, and a multi-class head behind the boolean zero-shot command's head check.
  EXPECT_EQ(testing::run_chart(fmt::format("eval {} --set init.checkpoint={} --set task.labels={} --set run.dir={} "
                                           "--set eval.other_task=true",
                                           testing::config("finetune/full.yaml"), (p.dir / "ft-integer").string(),
                                           p.labels.string(), (p.dir / "ev-wrong").string()), &out), 1) << out;
  EXPECT_NE(out.find("'boolean_value', but the head was fine-tuned on 'integer_value'"), std::string::npos) << out;
  ASSERT_EQ(testing::run_chart(p.finetune("probe", p.dir / "ft-bool", "--set train.steps=5 --set train.eval_every=0"), &out), 0)
      << out;
  EXPECT_EQ(testing::run_chart(fmt::format("eval {} --set init.checkpoint={} --set task.labels={} --set run.dir={} "
                                           "--set eval.other_task=true",
                                           testing::config("finetune/full.yaml"), (p.dir / "ft-bool").string(),
                                           (classes / "categorical").string(), (p.dir / "ev-wrong2").string()), &out), 1)
      << out;
  EXPECT_NE(out.find("multi-class labels (categorical_value), but checkpoint"), std::string::npos) << out;
}

TEST(Regression, AFloatTargetIsLearnedAndEvalWritesItsShape) {
  Pipeline p(800, 60);
  const fs::path classes = p.dir / "classes", labels = classes / "float", ft = p.dir / "ft", ev = p.dir / "ev";
  ASSERT_EQ(run(fmt::format("{} {} classes {} {}", python(), fixture_py(), p.meds.string(), classes.string())), 0);
  std::string out;
  ASSERT_EQ(testing::run_chart(fmt::format("finetune {} --set init.checkpoint={} --set task.labels={} --set run.dir={} "
                                           "--set train.threads=2 --set finetune.context=64 --set train.steps=300 "
                                           "--set train.eval_every=100",
                                           testing::config("finetune/probe.yaml"), p.pretrain.string(), labels.string(),
                                           ft.string()), &out), 0) << out;
  ASSERT_EQ(testing::run_chart(fmt::format("eval {} --set init.checkpoint={} --set task.labels={} --set run.dir={} "
                                           "--set eval.bootstrap=200 --set train.threads=2",
                                           testing::config("finetune/full.yaml"), ft.string(), labels.string(), ev.string()),
                               &out), 0) << out;
  const Json j = parse_json(read_file(ev / "eval.json"), "eval.json");
  std::fprintf(stderr, "float: held_out MAE %.2f years (train mean %.2f), R2 %.3f [%.3f, %.3f], n %.0f\n", number(j, "mae"),
               number(j["model"], "train_mean_mae"), number(j, "r2"), j["model"]["r2_ci"][0].get<double>(),
               j["model"]["r2_ci"][1].get<double>(), number(j, "n"));
  EXPECT_EQ(j["task_type"], "regression");
  EXPECT_GT(j["model"]["r2_ci"][0].get<double>(), 0.5) << j.dump();
  EXPECT_LT(number(j, "mae"), 0.7 * number(j["model"], "train_mean_mae")) << j.dump();
  auto t = data::read_parquet_table(ev / "predictions.parquet");
  EXPECT_NE(t->GetColumnByName("float_value"), nullptr);
  EXPECT_NE(t->GetColumnByName("predicted_float_value"), nullptr);
  EXPECT_NE(read_file(ev / "report.html").find("class=\"regression-calibration\""), std::string::npos);
  // 90% split-conformal intervals (calibrated on the tuning split) cover about 90% of held_out.
  const Json& pi = j["prediction_interval"];
  ASSERT_TRUE(pi.is_object()) << j.dump();
  EXPECT_GT(number(pi, "coverage"), 0.8) << pi.dump();
  EXPECT_LT(number(pi, "coverage"), 0.98) << pi.dump();
  EXPECT_NE(t->GetColumnByName("predicted_float_value_upper"), nullptr);
  EXPECT_NE(read_file(ev / "report.html").find("Prediction intervals"), std::string::npos);
  // predict writes the values without the target; a boolean head refuses float labels.
  ASSERT_EQ(testing::run_chart(fmt::format("predict {} --set init.checkpoint={} --set task.labels={} --set run.dir={} "
                                           "--set predict.split=held_out",
                                           testing::config("finetune/full.yaml"), ft.string(), labels.string(),
                                           (p.dir / "pred").string()), &out), 0) << out;
  auto pt = data::read_parquet_table(p.dir / "pred" / "predictions.parquet");
  EXPECT_EQ(pt->GetColumnByName("float_value"), nullptr);
  EXPECT_EQ(pt->num_rows(), t->num_rows());
}

// One run, three tasks of three kinds on one backbone: each head learns its task as a run of its
// own would, finetune.yaml lists the heads' slices, and eval and predict take each by name.
TEST(Multitask, OneBackboneLearnsEveryTaskAndEvalTakesEachByName) {
  Pipeline p(800, 60);
  const fs::path classes = p.dir / "classes", ft = p.dir / "ft";
  ASSERT_EQ(run(fmt::format("{} {} classes {} {}", python(), fixture_py(), p.meds.string(), classes.string())), 0);
  std::string out;
  ASSERT_EQ(testing::run_chart(fmt::format("finetune {} --set init.checkpoint={} --set 'task.multi=[death={},age={},group={}]' "
                                           "--set run.dir={} --set train.threads=2 --set finetune.context=64 "
                                           "--set train.steps=300 --set train.eval_every=100",
                                           testing::config("finetune/probe.yaml"), p.pretrain.string(), p.labels.string(),
                                           (classes / "float").string(), (classes / "categorical").string(), ft.string()),
                               &out), 0) << out;
  EXPECT_NE(out.find("3 tasks on one backbone: death (1 outputs at 0), age (1 outputs at 1), group (3 outputs at 2)"),
            std::string::npos) << out;
  const std::string summary = read_file(ft / "checkpoints" / "step_300" / "finetune.yaml");
  EXPECT_NE(summary.find("\"name\":\"group\""), std::string::npos) << summary;
  EXPECT_NE(summary.find("\"offset\":2"), std::string::npos) << summary;
  const std::string metrics = read_file(ft / "metrics.jsonl");
  EXPECT_NE(metrics.find("\"age/r2\""), std::string::npos);
  EXPECT_NE(metrics.find("\"group/auroc\""), std::string::npos);
  auto eval = [&](const std::string& task, const fs::path& labels) {
    const fs::path ev = p.dir / ("ev-" + task);
    EXPECT_EQ(testing::run_chart(fmt::format("eval {} --set init.checkpoint={} --set task.name={} --set task.labels={} "
                                             "--set run.dir={} --set eval.bootstrap=200 --set train.threads=2",
                                             testing::config("finetune/full.yaml"), ft.string(), task, labels.string(),
                                             ev.string()), &out), 0) << out;
    return parse_json(read_file(ev / "eval.json"), "eval.json");
  };
  const Json death = eval("death", p.labels), age = eval("age", classes / "float"), group = eval("group", classes / "categorical");
  std::fprintf(stderr, "multi-task held_out: death AUROC %.3f, age R² %.3f [%.3f, %.3f], group macro AUROC %.3f [%.3f, %.3f]\n",
               number(death, "auroc"), number(age, "r2"), age["model"]["r2_ci"][0].get<double>(),
               age["model"]["r2_ci"][1].get<double>(), number(group, "macro_auroc"),
               group["model"]["macro_auroc_ci"][0].get<double>(), group["model"]["macro_auroc_ci"][1].get<double>());
  EXPECT_GT(number(death, "auroc"), 0.7) << death.dump();
  EXPECT_GT(age["model"]["r2_ci"][0].get<double>(), 0.5) << age.dump();
  EXPECT_GT(group["model"]["macro_auroc_ci"][0].get<double>(), 0.6) << group.dump();
  // By subgroup as well: age (the regression target) is as well explained within each sex as overall,
  // and the multi-class task's groups are there with their warnings.
  int sexes = 0;
  for (const auto& g : age["subgroups"]["groups"])
    if (g["dimension"] == "sex") {
      ++sexes;
      EXPECT_GT(g["r2"].get<double>(), 0.5) << g.dump();
    }
  EXPECT_EQ(sexes, 2) << age.dump();
  EXPECT_FALSE(group["subgroups"]["groups"].empty()) << group.dump();
  EXPECT_NE(read_file(p.dir / "ev-age" / "report.html").find("class=\"metrics subgroups\""), std::string::npos);
  // Without a task name the checkpoint says which tasks it holds.
  EXPECT_EQ(testing::run_chart(fmt::format("eval {} --set init.checkpoint={} --set task.labels={} --set run.dir={}",
                                           testing::config("finetune/full.yaml"), ft.string(), p.labels.string(),
                                           (p.dir / "ev-none").string()), &out), 1) << out;
  EXPECT_NE(out.find("is a multi-task checkpoint of tasks [death, age, group], not 'labels'"), std::string::npos) << out;
  // chart predict takes a task by name: the multi-class head's shape.
  ASSERT_EQ(testing::run_chart(fmt::format("predict {} --set init.checkpoint={} --set task.name=group --set task.labels={} "
                                           "--set run.dir={} --set predict.split=held_out",
                                           testing::config("finetune/full.yaml"), ft.string(), p.labels.string(),
                                           (p.dir / "pred").string()), &out), 0) << out;
  auto pt = data::read_parquet_table(p.dir / "pred" / "predictions.parquet");
  EXPECT_NE(pt->GetColumnByName("predicted_probability//died"), nullptr) << pt->schema()->ToString();
  // A malformed entry is named.
  EXPECT_EQ(testing::run_chart(fmt::format("finetune {} --set init.checkpoint={} --set 'task.multi=[death]' --set run.dir={}",
                                           testing::config("finetune/probe.yaml"), p.pretrain.string(),
                                           (p.dir / "ft-bad").string()), &out), 1) << out;
  EXPECT_NE(out.find("task.multi: 'death' is not NAME=LABELS"), std::string::npos) << out;
}

}  // namespace
}  // namespace chart
