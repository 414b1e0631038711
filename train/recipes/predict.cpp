#include "train/recipes/predict.h"

#include <chrono>

#include <fmt/ranges.h>

#include "core/error.h"
#include "core/files.h"
#include "core/json.h"
#include "core/log.h"
#include "data/coverage.h"
#include "data/examples.h"
#include "data/labels.h"
#include "data/prepare.h"
#include "data/time_to_event.h"
#include "model/device.h"
#include "train/interop/load_pretrained.h"
#include "train/interop/vocab_source.h"
#include "train/recipes/classify.h"
#include "train/recipes/time_to_event.h"
#include "train/recipes/generate_run.h"
#include "train/recipes/risk_tables.h"

namespace chart {
namespace fs = std::filesystem;
namespace {

std::vector<std::string> splits_of(const std::string& split) {
  if (split == "all") return {"train", "tuning", "held_out"};
  return {split};
}

// The token dataset predicted on: predict.meds tokenized on the checkpoint's vocabulary, or data.dir.
data::TokenDataset open_data(Config& cfg, const Pretrained& pre) {
  if (!cfg.predict.meds.empty()) {
    const fs::path tsv = checkpoint_vocab(pre, "", "chart prepare --vocab");
    const data::FixedVocab fixed{read_file(tsv), tsv.string()};
    Config prep = cfg;
    prep.prepare.vocab = tsv.string();
    cfg.data.dir = (fs::path(cfg.run.dir) / "tokens").string();
    info("predict: tokenizing {} into {} on the vocabulary of {}", cfg.predict.meds, cfg.data.dir, pre.dir.string());
    data::prepare_dataset(cfg.predict.meds, cfg.data.dir, prep, false, &fixed);
  } else if (cfg.data.dir.empty()) {
    cfg.data.dir = pre.config.data.dir;
  }
  auto ds = data::TokenDataset::open(cfg.data.dir);
  check_vocab(pre, ds.vocab_hash(), cfg.data.dir);
  return ds;
}

// Each subject of the splits at the time of its last token.
std::vector<data::LabelRow> last_event_times(const data::TokenDataset& ds, const std::vector<std::string>& splits) {
  std::vector<data::LabelRow> rows;
  for (const auto& split : splits) {
    const auto& shards = ds.shards(split);
    for (const data::SubjectRef& ref : ds.subjects(split)) {
      const data::TokenShard& sh = shards[ref.shard];
      const data::SubjectEntry& e = sh.subject(ref.entry);
      if (e.n_tokens == 0) continue;
      data::LabelRow r;
      r.subject_id = e.subject_id;
      r.prediction_time_us = sh.times()[e.token_start + e.n_tokens - 1];
      r.has_label = false;
      rows.push_back(r);
    }
  }
  return rows;
}

// The rows predicted: the prediction times joined to their subjects, in the chosen splits.
std::vector<data::Example> prediction_examples(const Config& cfg, const data::TokenDataset& ds, std::string& source) {
  const auto& p = cfg.predict;
  const auto splits = splits_of(p.split);
  std::vector<data::LabelRow> rows;
  if (p.times == "last") {
    rows = last_event_times(ds, splits);
    source = "the last event of each subject";
  } else {
    if (cfg.task.labels.empty())
      throw Error("task.labels is not set (predict.times=labels)",
                  "pass --set task.labels=FILE_OR_DIR (subject_id, prediction_time), or --set predict.times=last");
    rows = data::read_prediction_times(cfg.task.labels);
    source = cfg.task.labels;
  }
  auto by_split = data::make_examples(ds, rows, source);
  std::vector<data::Example> out;
  for (const auto& s : splits) {
    auto& ex = by_split.by_split[s];
    out.insert(out.end(), ex.begin(), ex.end());
  }
  if (out.empty()) fail("predict: no prediction times of subjects in the {} split(s) of {}", p.split, cfg.data.dir);
  return out;
}

std::vector<data::Prediction> predict_with_head(const Config& cfg, const Pretrained& pre, const data::TokenDataset& ds,
                                                const std::vector<data::Example>& ex) {
  const DeviceChoice dev = choose_device(cfg.train.device, cfg.train.precision);
  ClinicalTransformer model = load_classifier(pre, dev);
  Config head = pre.config;  // the context it was fine-tuned with
  const HeadSlice slice = head_classes(pre, cfg.task.name).slice();
  const auto p = predict_probabilities(model, ds, ex, finetune_context(head), cfg.predict.batch_size, dev, slice);
  std::vector<data::Prediction> out;
  for (size_t i = 0; i < ex.size(); ++i) out.push_back({ex[i].row, static_cast<float>(p[i])});
  return out;
}

// A multi-class head: each row's probability of every class (data::write_class_predictions).
void predict_classes(const Config& cfg, const Pretrained& pre, const HeadClasses& hc, const data::TokenDataset& ds,
                     const std::vector<data::Example>& ex, const fs::path& file) {
  const DeviceChoice dev = choose_device(cfg.train.device, cfg.train.precision);
  ClinicalTransformer model = load_classifier(pre, dev);
  auto p = predict_class_probabilities(model, ds, ex, finetune_context(pre.config), cfg.predict.batch_size, dev, hc.slice());
  std::vector<data::LabelRow> rows;
  for (const auto& e : ex) {
    rows.push_back(e.row);
    rows.back().has_label = false;  // a boolean_value in the prediction times is not this task's label
  }
  data::write_class_predictions(file, rows, p, hc.column, hc.classes);
}

// A regression head: each row's predicted value (data::write_value_predictions).
void predict_values_to(const Config& cfg, const Pretrained& pre, const HeadClasses& hc, const data::TokenDataset& ds,
                       const std::vector<data::Example>& ex, const fs::path& file) {
  const DeviceChoice dev = choose_device(cfg.train.device, cfg.train.precision);
  ClinicalTransformer model = load_classifier(pre, dev);
  auto v = predict_values(model, ds, ex, finetune_context(pre.config), cfg.predict.batch_size, dev, hc);
  std::vector<data::LabelRow> rows;
  for (const auto& e : ex) {
    rows.push_back(e.row);
    rows.back().has_label = false;
  }
  data::write_value_predictions(file, rows, v);
}

// A time-to-event head: each row's survival at eval.horizons (data::write_survival_predictions).
void predict_survival_to(const Config& cfg, const Pretrained& pre, const HeadClasses& hc, const data::TokenDataset& ds,
                         const std::vector<data::Example>& ex, const fs::path& file) {
  const DeviceChoice dev = choose_device(cfg.train.device, cfg.train.precision);
  ClinicalTransformer model = load_classifier(pre, dev);
  const auto edges = data::piece_edges_days(hc.time_pieces, pre.dir.string() + " finetune.yaml time_pieces");
  std::vector<double> days = data::piece_edges_days(cfg.eval.horizons, "eval.horizons");
  days.erase(days.begin());
  const auto p = predict_hazards(model, ds, ex, finetune_context(pre.config), cfg.predict.batch_size, dev, edges, hc.slice());
  std::vector<data::LabelRow> rows;
  std::vector<std::vector<double>> survival;
  for (size_t i = 0; i < ex.size(); ++i) {
    rows.push_back(ex[i].row);
    rows.back().has_label = false;
    survival.emplace_back();
    for (double d : days) survival.back().push_back(p.survival(i, d));
  }
  data::write_survival_predictions(file, rows, cfg.eval.horizons, survival);
}

}  // namespace

int run_predict(const Config& cfg_in) {
  Config cfg = cfg_in;
  if (cfg.run.dir.empty()) throw Error("run.dir is not set", "pass --set run.dir=DIR (predict writes there)");
  const fs::path out = cfg.run.dir;
  if (fs::exists(out / "predictions.parquet"))
    throw Error(fmt::format("{} already holds predictions", out.string()), "choose another run.dir, or remove the old run");
  set_cpu_threads(cfg.train.threads);
  const auto t0 = std::chrono::steady_clock::now();
  Pretrained pre = load_pretrained(cfg.init.checkpoint);
  const bool head = pre.tensors.count("cls_head.weight") > 0;
  if (!head) require_outcome(cfg.generate);
  fs::create_directories(out);
  data::TokenDataset ds = open_data(cfg, pre);
  std::string times_source;
  std::vector<data::Example> ex = prediction_examples(cfg, ds, times_source);
  const std::string task = !head                          ? "zero-shot"
                           : !head_tasks(pre).empty()      ? head_classes(pre, cfg.task.name).task  // multi-task
                           : !pre.config.task.name.empty() ? pre.config.task.name
                                                           : data::task_name_of(pre.config.task.labels);
  Json j;
  j["checkpoint"] = pre.dir.string();
  j["data"] = cfg.data.dir;
  j["prediction_times"] = times_source;
  j["split"] = cfg.predict.split;
  j["rows"] = ex.size();
  std::vector<data::Prediction> preds;
  std::unique_ptr<GenerateRun> run;
  if (const HeadClasses hc = head ? head_classes(pre, cfg.task.name) : HeadClasses{}; hc.multiclass() || hc.regression() || hc.time_to_event()) {
    info("predict: task {} (the checkpoint's head, {}) for {} prediction times ({}) of {}", task, hc.describe(), ex.size(),
         times_source, cfg.data.dir);
    j["method"] = hc.regression()      ? "fine-tuned head (regression)"
                  : hc.time_to_event() ? "fine-tuned head (time to event)"
                                       : "fine-tuned head (multi-class)";
    j["task"] = task;
    if (hc.multiclass()) j["classes"] = hc.classes;
    if (hc.time_to_event()) j["event_codes"] = hc.event_codes, j["horizons"] = cfg.eval.horizons;
    j["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    write_file_atomic(out / "config.yaml", config_to_yaml(cfg));
    write_file_atomic(out / "predict.json", dump_json(j));
    if (hc.regression()) predict_values_to(cfg, pre, hc, ds, ex, out / "predictions.parquet");  // last: marks the run done
    else if (hc.time_to_event()) predict_survival_to(cfg, pre, hc, ds, ex, out / "predictions.parquet");
    else predict_classes(cfg, pre, hc, ds, ex, out / "predictions.parquet");
    info("predict: wrote {} ({} rows)", (out / "predictions.parquet").string(), ex.size());
    return 0;
  }
  if (head) {
    info("predict: task {} (the checkpoint's head) for {} prediction times ({}) of {}", task,
         ex.size(), times_source, cfg.data.dir);
    preds = predict_with_head(cfg, pre, ds, ex);
    j["method"] = "fine-tuned head";
    j["task"] = task;
  } else {
    const auto& g = cfg.generate;
    info("predict: zero-shot P(an outcome code of [{}] within {} of prediction_time) for {} prediction times ({}), "
         "{} samples each", fmt::join(g.outcome_codes, ", "), g.horizon, ex.size(), times_source, g.samples);
    run = open_generate_run(cfg, std::move(pre), std::move(ds), std::move(ex));
    torch::NoGradGuard no_grad;
    run_engine(*run);
    preds = run->preds;
    j["method"] = "zero-shot (sampled futures)";
    j["outcome_codes"] = g.outcome_codes;
    j["horizon"] = g.horizon;
    j["samples"] = g.samples;
    j["estimator"] = g.estimator;
  }
  j["coverage"] = Json::object();
  for (const auto& s : splits_of(cfg.predict.split))
    j["coverage"][s] = data::coverage_summary(cfg.data.dir, s, 10);
  j["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  write_file_atomic(out / "config.yaml", config_to_yaml(cfg));
  if (run) write_risk_table(out / "risk.parquet", *run);
  write_file_atomic(out / "predict.json", dump_json(j));
  data::write_predictions(out / "predictions.parquet", preds, cfg.eval.threshold);  // last: it marks the run done
  info("predict: wrote {} ({} rows) and {}", (out / "predictions.parquet").string(), preds.size(),
       (out / "predict.json").string());
  return 0;
}

}  // namespace chart
