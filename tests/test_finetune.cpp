// Fine-tuning, evaluation and zero-shot generation: the model pieces they add (KV-cache
// decoding, LoRA merging, last-token features) against the plain forward pass, and the three
// commands end to end on `chart synth` data: no event after prediction_time reaches the model,
// fine-tuning learns clearly better than chance, eval writes the contract's files.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "core/config.h"
#include "core/files.h"
#include "core/json.h"
#include "data/labels.h"
#include "data/parquet_table.h"
#include "model/transformer.h"
#include "finetune_pipeline.h"
#include "test_util.h"

namespace chart {
namespace {
using testing::TempDir;
using testing::config;
namespace fs = std::filesystem;

ModelConfig small_model(bool time_bias) {
  ModelConfig m;
  m.d_model = 32;
  m.n_layers = 2;
  m.n_heads = 4;
  m.n_kv_heads = 2;
  m.context = 32;
  m.time_bias = time_bias;
  return m;
}

class Decode : public ::testing::TestWithParam<bool> {};

// Prefill with left padding, then token by token: the logits equal those of one forward pass
// over the same tokens (rotary positions shift by the padding; attention sees only differences).
TEST_P(Decode, MatchesTheFullForward) {
  torch::manual_seed(0);
  ClinicalTransformer model(small_model(GetParam()), 40);
  model->eval();
  torch::NoGradGuard no_grad;
  const int64_t n = 12, pad = 3, prompt = 8;
  auto tokens = torch::randint(3, 40, {1, n});
  auto ages = (torch::arange(n, torch::kFloat32) * 0.37 + 40.0).view({1, n});
  auto full = model->forward(tokens, ages, torch::zeros({1, n}, torch::kInt32)).logits;  // [1, n, V]

  KVCache cache = model->new_cache(1, pad + n);
  auto ptoks = torch::cat({torch::zeros({1, pad}, torch::kInt64), tokens.slice(1, 0, prompt)}, 1);
  auto pages = torch::cat({torch::zeros({1, pad}), ages.slice(1, 0, prompt)}, 1);
  auto pvalid = torch::cat({torch::zeros({1, pad}, torch::kBool), torch::ones({1, prompt}, torch::kBool)}, 1);
  auto logits = model->decode(ptoks, pages, pvalid, cache);
  EXPECT_LT((logits - full[0][prompt - 1]).abs().max().item<double>(), 1e-4);
  for (int64_t i = prompt; i < n; ++i) {
    logits = model->decode(tokens.slice(1, i, i + 1), ages.slice(1, i, i + 1), torch::ones({1, 1}, torch::kBool), cache);
    EXPECT_LT((logits - full[0][i]).abs().max().item<double>(), 1e-4) << "position " << i;
  }
  // Rows leave the batch and repeat without disturbing each other.
  KVCache two = model->new_cache(1, n);
  model->decode(tokens.slice(1, 0, 4), ages.slice(1, 0, 4), torch::ones({1, 4}, torch::kBool), two);
  two.repeat_rows(3);
  two.select_rows(torch::tensor({2}, torch::kInt64));
  logits = model->decode(tokens.slice(1, 4, 5), ages.slice(1, 4, 5), torch::ones({1, 1}, torch::kBool), two);
  EXPECT_LT((logits - full[0][4]).abs().max().item<double>(), 1e-4);
}
INSTANTIATE_TEST_SUITE_P(TimeBias, Decode, ::testing::Values(false, true));

TEST(Lora, StartsAtTheBaseAndMergesWithoutChangingOutputs) {
  torch::manual_seed(1);
  ClinicalTransformer model(small_model(true), 40);
  model->eval();
  auto tokens = torch::randint(3, 40, {2, 10});
  auto ages = torch::rand({2, 10}) + 50;
  auto seg = torch::zeros({2, 10}, torch::kInt32);
  torch::NoGradGuard no_grad;
  auto base = model->forward(tokens, ages, seg).logits;
  model->add_lora(4, 8.0, {"wq", "wv", "w_up"});
  EXPECT_TRUE(torch::equal(model->forward(tokens, ages, seg).logits, base)) << "B starts at zero";
  int adapters = 0;
  for (auto& p : model->named_parameters())
    if (p.key().find(".lora.b") != std::string::npos) p.value().normal_(0, 0.1), ++adapters;
  EXPECT_EQ(adapters, 2 * 3);
  auto adapted = model->forward(tokens, ages, seg).logits;
  EXPECT_GT((adapted - base).abs().max().item<double>(), 1e-3);
  model->merge_lora();
  for (auto& p : model->named_parameters()) EXPECT_EQ(p.key().find("lora"), std::string::npos) << p.key();
  EXPECT_LT((model->forward(tokens, ages, seg).logits - adapted).abs().max().item<double>(), 1e-4);
}

TEST(Classifier, ReadsOnlyUpToTheLastIndex) {
  torch::manual_seed(2);
  ClinicalTransformer model(small_model(true), 40);
  model->add_classifier(1);
  model->eval();
  torch::NoGradGuard no_grad;
  auto tokens = torch::randint(3, 40, {1, 16});
  auto ages = torch::linspace(30, 31, 16).view({1, 16});
  auto seg = torch::zeros({1, 16}, torch::kInt32);
  auto last = torch::tensor({9}, torch::kInt64);
  auto a = model->classify(tokens, ages, seg, last);
  tokens.slice(1, 10, 16).fill_(7);
  ages.slice(1, 10, 16).fill_(90);
  EXPECT_TRUE(torch::equal(model->classify(tokens, ages, seg, last), a));
}

// ---- end to end on chart synth data --------------------------------------------------------

double json_value(const std::string& json, const std::string& key) {
  auto p = json.rfind("\"" + key + "\": ");  // the top-level copy comes last
  EXPECT_NE(p, std::string::npos) << key;
  return std::stod(json.substr(p + key.size() + 4));
}

// The perturbed copies of the data change held_out subjects' events after their prediction time
// (renamed, revalued, removed, added): predictions must not move at all. Changing one event
// before it must move them, or the test could not fail.
TEST(Finetune, NoEventAfterPredictionTimeReachesTheModel) {
  Pipeline p(300, 5);
  std::string out;
  ASSERT_EQ(testing::run_chart(p.finetune("full", p.dir / "ft", "--set train.steps=5 --set train.eval_every=0"), &out), 0) << out;
  std::map<std::string, std::vector<data::Prediction>> preds;
  for (const char* variant : {"original", "after", "before"}) {
    fs::path tok = p.tok;
    if (std::string(variant) != "original") {
      fs::path meds = p.dir / (std::string("meds-") + variant);
      ASSERT_EQ(run(fmt::format("{} {} perturb {} {} {} {}", python(), fixture_py(), p.meds.string(), p.labels.string(),
                                meds.string(), variant)), 0);
      tok = p.dir / (std::string("tok-") + variant);
      ASSERT_EQ(testing::run_chart(fmt::format("prepare --meds {} --out {}", meds.string(), tok.string()), &out), 0) << out;
    }
    fs::path ev = p.dir / (std::string("eval-") + variant);
    ASSERT_EQ(testing::run_chart(p.eval(p.dir / "ft", tok, ev), &out), 0) << out;
    preds[variant] = data::read_predictions(ev / "predictions.parquet");
  }
  ASSERT_GT(preds["original"].size(), 20u);
  ASSERT_EQ(preds["after"].size(), preds["original"].size());
  int moved_before = 0;
  for (size_t i = 0; i < preds["original"].size(); ++i) {
    EXPECT_EQ(preds["after"][i].row.subject_id, preds["original"][i].row.subject_id);
    EXPECT_EQ(preds["after"][i].probability, preds["original"][i].probability)
        << "subject " << preds["original"][i].row.subject_id << ": a later event changed the prediction";
    moved_before += preds["before"][i].probability != preds["original"][i].probability;
  }
  EXPECT_GT(moved_before, static_cast<int>(preds["original"].size()) / 2) << "changing an earlier event must matter";
}

// On ~1200 subjects, full fine-tuning and a linear probe rank who dies later in the record far
// better than chance on the held-out split; LoRA trains and saves a merged model.
TEST(Finetune, NonFiniteStepsAreSkippedAndTooManyInARowStopTheRun) {
  Pipeline p(300, 10);
  std::string out;
  const std::string fault = "CHART_FAULT_NONFINITE_STEPS=2,3 ";
  ASSERT_EQ(testing::run_shell(fault + CHART_BINARY + " " + p.finetune("full", p.dir / "ft", "--set train.steps=6"), &out), 0)
      << out;
  EXPECT_NE(out.find("finetune: step 2: loss NaN and gradient norm NaN: not finite; step skipped"), std::string::npos) << out;
  EXPECT_NE(out.find("finetune: step 3: loss NaN"), std::string::npos) << out;
  EXPECT_TRUE(fs::exists(p.dir / "ft/checkpoints/latest"));
  const std::string many = "CHART_FAULT_NONFINITE_STEPS=2,3,4,5 ";
  EXPECT_EQ(testing::run_shell(many + CHART_BINARY + " " +
                                   p.finetune("full", p.dir / "ft2", "--set train.steps=6 --set train.max_skipped_steps=3"),
                               &out),
            1)
      << out;
  EXPECT_NE(out.find("finetune: 3 steps in a row, up to step 4"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(p.dir / "ft2/checkpoints/latest")) << "nothing is saved from a diverged fine-tune";
}

TEST(Finetune, LearnsClearlyBetterThanChanceAndEvalWritesTheContract) {
  Pipeline p(1200, 60);
  std::string out;
  const std::string common = "--set finetune.context=64 --set train.eval_every=40 --set finetune.patience=3 ";
  ASSERT_EQ(testing::run_chart(p.finetune("full", p.dir / "full", common + "--set train.steps=120"), &out), 0) << out;
  ASSERT_EQ(testing::run_chart(p.finetune("probe", p.dir / "probe", common + "--set train.steps=400"), &out), 0) << out;
  ASSERT_EQ(testing::run_chart(p.finetune("lora", p.dir / "lora", common + "--set train.steps=40"), &out), 0) << out;
  for (const char* recipe : {"full", "probe", "lora"}) {
    fs::path ev = p.dir / (std::string("eval-") + recipe);
    ASSERT_EQ(testing::run_chart(p.eval(p.dir / recipe, p.tok, ev), &out), 0) << out;
    const std::string json = read_file(ev / "eval.json");
    const double auroc = json_value(json, "auroc");
    std::fprintf(stderr, "%s: held_out AUROC %.3f, n %.0f\n", recipe, auroc, json_value(json, "n"));
    if (std::string(recipe) != "lora") {
      EXPECT_GT(auroc, 0.7) << recipe << "\n" << json;
    }
    EXPECT_GT(json_value(json, "n"), 100);
    EXPECT_TRUE(fs::exists(ev / "predictions.parquet"));
    const std::string html = read_file(ev / "report.html");
    EXPECT_NE(html.find("<svg"), std::string::npos);
    EXPECT_NE(html.find("fine-tuning"), std::string::npos);
    // Every metric again by sex and age band: each dimension's groups hold every row.
    EXPECT_NE(html.find("class=\"forest\""), std::string::npos);
    const Json ej = parse_json(json, (ev / "eval.json").string());
    std::map<std::string, int64_t> rows;
    std::set<std::string> sexes;
    for (const Json& g : ej["subgroups"]["groups"]) {
      rows[g["dimension"].get<std::string>()] += g["n"].get<int64_t>();
      if (g["dimension"] == "sex") sexes.insert(g["group"].get<std::string>());
    }
    EXPECT_EQ(rows["sex"], ej["n"].get<int64_t>()) << ej["subgroups"].dump();
    EXPECT_EQ(rows["age"], ej["n"].get<int64_t>()) << ej["subgroups"].dump();
    EXPECT_EQ(sexes, (std::set<std::string>{"GENDER//F", "GENDER//M"}));
    // The operating threshold is chosen on the tuning split and applied to held_out; the report
    // shows it, the calibration fit and the decision curve.
    const Json& op = ej["operating_point"];
    EXPECT_EQ(op["rule"], "youden") << op.dump();
    EXPECT_EQ(op["chosen_on"].get<std::string>().rfind("tuning split (", 0), 0u) << op.dump();
    EXPECT_EQ(op["tp"].get<int64_t>() + op["fp"].get<int64_t>() + op["tn"].get<int64_t>() + op["fn"].get<int64_t>(),
              ej["n"].get<int64_t>());
    EXPECT_TRUE(ej["model"]["calibration_slope"].is_number()) << ej["model"].dump();
    EXPECT_EQ(ej["decision_curve"]["model"].size(), 99u);
    EXPECT_NE(html.find("class=\"decision\""), std::string::npos);
    EXPECT_NE(html.find("At a threshold"), std::string::npos);
  }
  // LoRA adapters are merged on save: the checkpoint holds plain weights.
  auto latest = read_file(p.dir / "lora/checkpoints/latest");
  latest.erase(latest.find_last_not_of("\n") + 1);
  EXPECT_EQ(read_file(p.dir / "lora/checkpoints" / latest / "model.safetensors").find("lora"), std::string::npos);
}

// eval names the task it scores, refuses a run.dir that holds an evaluation (as finetune and
// train refuse theirs), and refuses labels most of whose subjects the dataset lacks.
TEST(Eval, NamesItsTaskAndRefusesAnExistingRunAndLabelsOfAnotherDataset) {
  Pipeline p(300, 3);
  std::string out;
  ASSERT_EQ(testing::run_chart(p.finetune("full", p.dir / "ft", "--set train.steps=3 --set train.eval_every=0 "
                                                                "--set task.name=death_in_record"), &out), 0) << out;
  const fs::path ev = p.dir / "eval";
  const std::string eval = p.eval(p.dir / "ft", p.tok, ev) + " --set task.name=death_in_record --set train.threads=2";
  ASSERT_EQ(testing::run_chart(eval, &out), 0) << out;
  EXPECT_NE(out.find("eval: task death_in_record: "), std::string::npos) << out;
  const std::string before = read_file(ev / "eval.json");
  EXPECT_EQ(testing::run_chart(eval, &out), 1) << out;
  EXPECT_NE(out.find(ev.string() + " already holds an evaluation"), std::string::npos) << out;
  EXPECT_NE(out.find("choose another run.dir"), std::string::npos) << out;
  EXPECT_EQ(read_file(ev / "eval.json"), before);

  // Labels of a larger synthetic dataset: its ids 1000000.. overlap ours for the first 300 only.
  ASSERT_EQ(testing::run_chart(fmt::format("synth --out {} --subjects 1500 --seed 9", (p.dir / "other").string()), &out), 0) << out;
  const std::string other = (p.dir / "other/labels/mortality_365d").string();
  EXPECT_EQ(testing::run_chart(fmt::format("eval {} --set init.checkpoint={} --set task.labels={} --set run.dir={} "
                                           "--set task.name=death_in_record",
                                           config("finetune/full.yaml"), (p.dir / "ft").string(), other,
                                           (p.dir / "eval-other").string()), &out), 1) << out;
  EXPECT_NE(out.find(other + ": "), std::string::npos) << out;
  EXPECT_NE(out.find("name subjects that are not in " + p.tok.string()), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(p.dir / "eval-other" / "eval.json"));
}

TEST(Generate, ZeroShotPredictionsAreScoredByEval) {
  Pipeline p(300, 20);
  std::string out;
  const fs::path gen = p.dir / "gen";
  ASSERT_EQ(testing::run_chart(fmt::format("generate {} --set init.checkpoint={} --set task.labels={} --set run.dir={} "
                                           "--set generate.samples=4 --set generate.horizon=10y --set train.threads=2 "
                                           "--set generate.outcome_codes=[MEDS_DEATH] "
                                           "--set generate.trajectories=true",
                                           config("tiny.yaml"), p.pretrain.string(), p.labels.string(), gen.string()), &out), 0)
      << out;
  EXPECT_NE(out.find("generate: scoring P(an outcome code of [MEDS_DEATH] within 10y of prediction_time)"),
            std::string::npos) << out;
  EXPECT_NE(out.find("generate: decode attention: LibTorch reference"), std::string::npos) << out;
  // How attention runs is the run's choice, not the checkpoint's: kernels asked for on a CPU stop
  // the run before it samples anything, rather than being dropped for the checkpoint's auto.
  const fs::path gen_kernels = p.dir / "gen-kernels";
  EXPECT_EQ(testing::run_chart(fmt::format("generate {} --set init.checkpoint={} --set task.labels={} --set run.dir={} "
                                           "--set generate.outcome_codes=[MEDS_DEATH] --set model.attention=kernels",
                                           config("tiny.yaml"), p.pretrain.string(), p.labels.string(),
                                           gen_kernels.string()), &out), 1) << out;
  EXPECT_NE(out.find("model.attention=kernels, but the CUDA kernels cannot run here"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(gen_kernels / "predictions.parquet"));
  auto preds = data::read_predictions(gen / "predictions.parquet");
  ASSERT_GT(preds.size(), 20u);
  // risk.parquet: both estimators per row, each inside its interval; predictions hold the
  // expected one (the default); trajectories.parquet: the 4 trajectories of each row behind them.
  auto risk = data::read_parquet_table(gen / "risk.parquet");
  auto traj = data::read_parquet_table(gen / "trajectories.parquet");
  ASSERT_EQ(risk->num_rows(), int64_t(preds.size()));
  ASSERT_EQ(traj->num_rows(), 4 * int64_t(preds.size()));
  auto col = [](const std::shared_ptr<arrow::Table>& t, const char* name) {
    return std::static_pointer_cast<arrow::DoubleArray>(t->GetColumnByName(name)->chunk(0));
  };
  auto hits = col(risk, "hit_fraction"), expected = col(risk, "expected"), low = col(risk, "expected_low"),
       high = col(risk, "expected_high"), traj_expected = col(traj, "expected");
  auto traj_hit = std::static_pointer_cast<arrow::BooleanArray>(traj->GetColumnByName("hit")->chunk(0));
  int64_t rows_with_hits = 0;
  for (int64_t i = 0; i < risk->num_rows(); ++i) {
    const double k = hits->Value(i) * 4;
    EXPECT_NEAR(k, std::round(k), 1e-9) << "a fraction of 4 samples";
    EXPECT_NEAR(preds[size_t(i)].probability, expected->Value(i), 1e-6);
    EXPECT_LE(low->Value(i), expected->Value(i));
    EXPECT_GE(high->Value(i), expected->Value(i));
    double h = 0, e = 0;
    for (int64_t s = 0; s < 4; ++s) h += traj_hit->Value(4 * i + s), e += traj_expected->Value(4 * i + s);
    EXPECT_NEAR(h / 4, hits->Value(i), 1e-12);
    EXPECT_NEAR(std::min(1.0, e / 4), expected->Value(i), 1e-12);
    rows_with_hits += hits->Value(i) > 0;
  }
  EXPECT_GT(rows_with_hits, 0);
  // What they sampled, as MEDS rows: codes only (time tokens move the clock), times that never go
  // back within a trajectory, and meds' own DataSchema accepts the file.
  auto events = data::read_parquet_table(gen / "trajectory_events.parquet");
  ASSERT_GT(events->num_rows(), 0);
  auto codes = std::static_pointer_cast<arrow::StringArray>(events->GetColumnByName("code")->chunk(0));
  auto times = std::static_pointer_cast<arrow::TimestampArray>(events->GetColumnByName("time")->chunk(0));
  auto samples = std::static_pointer_cast<arrow::Int64Array>(events->GetColumnByName("sample")->chunk(0));
  auto ids = std::static_pointer_cast<arrow::Int64Array>(events->GetColumnByName("subject_id")->chunk(0));
  for (int64_t i = 0; i < events->num_rows(); ++i) {
    EXPECT_NE(codes->GetString(i).rfind("TIME//", 0), 0u) << codes->GetString(i);
    EXPECT_NE(codes->GetString(i).rfind("Q", 0), 0u) << codes->GetString(i);
    if (i > 0 && samples->Value(i) == samples->Value(i - 1) && ids->Value(i) == ids->Value(i - 1))
      EXPECT_GE(times->Value(i), times->Value(i - 1)) << "row " << i;
  }
  if (!std::string(CHART_PYTHON_EXE).empty()) {
    const int rc = testing::run_python((testing::source_dir() / "tests/check_meds_schemas.py").string() + " data " +
                                           (gen / "trajectory_events.parquet").string(), &out);
    if (rc != 77) EXPECT_EQ(rc, 0) << out;
  }
  const std::string gj = read_file(gen / "generate.json");
  EXPECT_GT(json_value(gj, "tokens_generated"), 0);
  EXPECT_GT(json_value(gj, "tokens_per_s"), 0);
  // Shared prefill: one per label row; trajectories that fill their context slide their cache.
  EXPECT_EQ(json_value(gj, "prefills"), double(preds.size()));
  // The previous lockstep loop, kept for comparison, still writes the same shape.
  ASSERT_EQ(testing::run_chart(fmt::format("generate {} --set init.checkpoint={} --set task.labels={} --set run.dir={} "
                                           "--set generate.samples=4 --set generate.horizon=10y --set train.threads=2 "
                                           "--set generate.engine=batched --set generate.estimator=hits --set generate.outcome_codes=[MEDS_DEATH]",
                                           config("tiny.yaml"), p.pretrain.string(), p.labels.string(),
                                           (p.dir / "gen-batched").string()), &out), 0)
      << out;
  EXPECT_EQ(data::read_predictions(p.dir / "gen-batched/predictions.parquet").size(), preds.size());
  EXPECT_EQ(testing::run_chart(fmt::format("generate {} --set init.checkpoint={} --set task.labels={} --set run.dir={} "
                                           "--set generate.engine=batched",
                                           config("tiny.yaml"), p.pretrain.string(), p.labels.string(),
                                           (p.dir / "gen-batched2").string()), &out), 1) << out;
  EXPECT_NE(out.find("generate.engine=batched counts hits only"), std::string::npos) << out;
  ASSERT_EQ(testing::run_chart(fmt::format("eval {} --set eval.predictions={} --set run.dir={} --set eval.bootstrap=50",
                                           config("tiny.yaml"), (gen / "predictions.parquet").string(),
                                           (p.dir / "gen-eval").string()), &out), 0) << out;
  EXPECT_TRUE(fs::exists(p.dir / "gen-eval/eval.json"));
  // An outcome code the vocabulary lacks is refused with its name.
  EXPECT_EQ(testing::run_chart(fmt::format("generate {} --set init.checkpoint={} --set task.labels={} --set run.dir={} "
                                           "--set generate.outcome_codes=[NOPE//X]",
                                           config("tiny.yaml"), p.pretrain.string(), p.labels.string(),
                                           (p.dir / "gen2").string()), &out), 1);
  EXPECT_NE(out.find("NOPE//X"), std::string::npos) << out;
}

}  // namespace
}  // namespace chart
