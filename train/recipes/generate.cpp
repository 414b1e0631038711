#include "train/recipes/generate.h"

#include <chrono>
#include <cmath>
#include <memory>

#include "core/error.h"
#include "core/files.h"
#include "core/json.h"
#include "core/log.h"
#include "core/time.h"
#include "data/examples.h"
#include "data/labels.h"
#include "data/time_bins.h"
#include "model/autocast.h"
#include "model/device.h"
#include "model/transformer.h"
#include "train/interop/load_pretrained.h"
#include "train/recipes/generate_run.h"
#include "train/recipes/risk_tables.h"
#include "infer/sampling.h"
#include "kernels/attention_dispatch.h"

namespace chart {
namespace fs = std::filesystem;

void require_outcome(const GenerateConfig& g) {
  if (g.outcome_codes.empty())
    throw Error("generate.outcome_codes is not set: a zero-shot run must say which codes are the outcome it scores",
                "e.g. --set generate.outcome_codes=[MEDS_DEATH] --set generate.horizon=365d for death within a year");
}

std::unique_ptr<GenerateRun> open_generate_run(const Config& cfg_in, Pretrained pre, data::TokenDataset ds,
                                               std::vector<data::Example> examples) {
  Config cfg = cfg_in;
  const auto& g = cfg.generate;
  require_outcome(g);
  set_cpu_threads(cfg.train.threads);
  if (pre.tensors.count("cls_head.weight"))
    warn("generate: {} is a fine-tuned checkpoint; its next-token head was not trained with the fine-tuned "
         "backbone, so sampled futures may be poor (use the pretraining checkpoint)", pre.dir.string());
  cfg.model = checkpoint_model(pre, cfg.model);
  check_vocab(pre, ds.vocab_hash(), cfg.data.dir);
  auto r = std::make_unique<GenerateRun>(cfg, std::move(pre), std::move(ds));
  r->L = r->cfg.model.context;
  r->P = g.prompt_tokens > 0 ? g.prompt_tokens : r->L / 2;
  if (r->P >= r->L) fail("generate.prompt_tokens ({}) must be below the model's context {}", r->P, r->L);
  r->budget = g.max_new_tokens > 0 ? g.max_new_tokens : 8 * r->L;
  r->horizon_us = data::parse_duration(g.horizon, "generate.horizon");
  r->K = g.samples;
  r->roles = token_roles(r->ds.vocab(), g);
  r->examples = std::move(examples);
  if (g.max_examples > 0 && static_cast<int64_t>(r->examples.size()) > g.max_examples)
    r->examples.resize(static_cast<size_t>(g.max_examples));
  r->dev = choose_device(r->cfg.train.device, r->cfg.train.precision);
  torch::manual_seed(static_cast<uint64_t>(r->cfg.train.seed));
  r->model = ClinicalTransformer(r->cfg.model, r->pre.vocab_size);
  copy_pretrained_weights(r->pre, *r->model);
  r->model->to(r->dev.device);
  r->model->eval();
  r->banned = r->roles.banned.to(r->dev.device);
  // Which decode attention runs, said once (model.attention=kernels that cannot run stops here).
  const auto& m = r->cfg.model;
  info("generate: {}", kernels::describe_decode_path(r->dev.device, r->dev.compute_dtype, m.d_model / m.n_heads,
                                                     m.n_heads, m.n_kv_heads > 0 ? m.n_kv_heads : m.n_heads,
                                                     kernels::attention_mode(m.attention)));
  return r;
}

std::unique_ptr<GenerateRun> open_generate_run(const Config& cfg_in) {
  Config cfg = cfg_in;
  const auto& g = cfg.generate;
  if (cfg.run.dir.empty()) throw Error("run.dir is not set", "pass --set run.dir=DIR");
  if (cfg.task.labels.empty()) throw Error("task.labels is not set", "pass --set task.labels=LABELS_DIR_OR_FILE");
  require_outcome(g);
  Pretrained pre = load_pretrained(cfg.init.checkpoint);
  if (cfg.data.dir.empty()) cfg.data.dir = pre.config.data.dir;
  auto ds = data::TokenDataset::open(cfg.data.dir);
  auto examples = data::make_examples(ds, data::read_labels(cfg.task.labels), cfg.task.labels);
  std::vector<data::Example> rows = std::move(examples.by_split[g.split]);
  if (rows.empty()) fail("{}: no label rows of subjects in the {} split of {}", cfg.task.labels, g.split, cfg.data.dir);
  auto r = open_generate_run(cfg, std::move(pre), std::move(ds), std::move(rows));
  // What is scored, said up front: the labels' own definition of the outcome is not known here.
  info("generate: scoring P(an outcome code of [{}] within {} of prediction_time) for {} label rows of the {} "
       "split ({}), {} samples each", fmt::join(g.outcome_codes, ", "), g.horizon, r->examples.size(), g.split,
       cfg.task.labels, r->K);
  return r;
}

infer::Prompt example_prompt(const GenerateRun& r, size_t x) {
  const data::Example& e = r.examples[x];
  const auto& sh = r.ds.shards(e.split)[e.ref.shard];
  const auto& entry = sh.subject(e.ref.entry);
  const int64_t* times = sh.times() + entry.token_start;
  const int64_t n = std::min<int64_t>(e.n_tokens, r.P), from = e.n_tokens - n;
  infer::Prompt p;
  for (int64_t j = from; j < e.n_tokens; ++j) {
    p.tokens.push_back(sh.tokens()[entry.token_start + j]);
    p.ages.push_back(age_years(times[j], entry.birth_us));
  }
  const int64_t last_time = times[e.n_tokens - 1];
  p.age = micros_to_years(double(last_time - entry.birth_us));
  p.elapsed_us = double(last_time - e.row.prediction_time_us);
  p.row = prompt_stream(e.row.subject_id, e.row.prediction_time_us);
  return p;
}

// Every label row's samples through the engine: each row's risk estimates and prediction.
void run_engine(GenerateRun& r) {
  const auto& g = r.cfg.generate;
  infer::EngineOptions opt;
  opt.slots = g.batch_size;
  opt.samples = r.K;
  opt.context = r.L;
  opt.prompt_tokens = r.P;
  opt.max_new_tokens = r.budget;
  opt.horizon_us = r.horizon_us;
  opt.temperature = g.temperature;
  opt.top_k = g.top_k;
  opt.seed = static_cast<uint64_t>(r.cfg.train.seed);
  opt.slide = g.window == "slide";
  opt.keep_tokens = g.trajectories;  // written as MEDS events
  std::vector<infer::Prompt> prompts;
  for (size_t x = 0; x < r.examples.size(); ++x) {
    prompts.push_back(example_prompt(r, x));
    r.clock_start_us.push_back(r.examples[x].row.prediction_time_us + int64_t(prompts.back().elapsed_us));
  }
  Progress progress("generate: example", static_cast<int64_t>(r.examples.size()));
  int64_t done = 0;
  auto results = infer::generate(r.model, r.roles, opt, r.dev, prompts, r.engine, [&](size_t) {
    progress.update(++done, fmt::format("{} tokens", r.engine.generated));
  });
  const bool expected = g.estimator == "expected";
  for (size_t x = 0; x < prompts.size(); ++x) {
    const infer::TrajectoryResult* first = results.data() + x * static_cast<size_t>(r.K);
    const infer::RiskEstimate risk = infer::estimate_risk(first, r.K);
    for (int64_t k = 0; k < r.K; ++k) {
      r.hits += first[k].hit;
      r.truncated += first[k].truncated;
    }
    r.risks.push_back(risk);
    r.preds.push_back({r.examples[x].row, expected ? risk.expected : risk.hit_fraction});
  }
  r.trajectories = static_cast<int64_t>(results.size());
  r.results = std::move(results);
  r.generated = r.engine.generated;
  r.windows = r.engine.windows;
  progress.finish(fmt::format("{} tokens, {} prefills", r.generated, r.engine.prefills));
}

void write_generate_outputs(const GenerateRun& r, double secs) {
  const auto& g = r.cfg.generate;
  const fs::path out = r.cfg.run.dir;
  const int64_t n = std::max<int64_t>(1, r.trajectories);
  fs::create_directories(out);
  write_file_atomic(out / "config.yaml", config_to_yaml(r.cfg));
  data::write_predictions(out / "predictions.parquet", r.preds, r.cfg.eval.threshold);
  if (!r.risks.empty()) write_risk_table(out / "risk.parquet", r);
  if (g.trajectories && !r.results.empty()) {
    write_trajectory_table(out / "trajectories.parquet", r);
    write_trajectory_events(out / "trajectory_events.parquet", r);
  }
  Json j;
  j["checkpoint"] = r.pre.dir.string();
  j["labels"] = r.cfg.task.labels;
  j["split"] = g.split;
  j["examples"] = r.examples.size();
  j["samples"] = r.K;
  j["horizon"] = g.horizon;
  j["outcome_codes"] = g.outcome_codes;
  j["tokens_generated"] = r.generated;
  j["seconds"] = secs;
  j["tokens_per_s"] = r.generated / std::max(1e-9, secs);
  j["mean_tokens_per_trajectory"] = double(r.generated) / n;
  j["context_windows"] = r.windows;
  j["engine"] = g.engine;
  j["patients_per_s"] = double(r.examples.size()) / std::max(1e-9, secs);
  if (g.engine == "continuous") {
    j["prefills"] = r.engine.prefills;
    j["prefill_tokens"] = r.engine.prefill_tokens;
    j["decode_steps"] = r.engine.decode_steps;
    j["slot_occupancy"] = double(r.generated) / double(std::max<int64_t>(1, r.engine.slot_steps));
  }
  j["truncated_fraction"] = double(r.truncated) / n;
  j["hit_fraction"] = double(r.hits) / n;
  j["estimator"] = g.estimator;
  if (!r.risks.empty()) {
    double expected = 0;
    for (const auto& e : r.risks) expected += e.expected;
    j["mean_expected"] = expected / double(r.risks.size());
  }
  j["device"] = r.dev.describe();
  write_file_atomic(out / "generate.json", dump_json(j));
  info("generate: {} examples x {} samples, {} tokens in {:.1f} s ({:.0f} tokens/s), {:.1f}% truncated; wrote {}",
       r.examples.size(), r.K, r.generated, secs, r.generated / std::max(1e-9, secs), 100.0 * double(r.truncated) / n,
       (out / "predictions.parquet").string());
  if (r.truncated * 10 > r.trajectories)
    warn("generate: {:.0f}% of trajectories ran out of tokens before the horizon (counted as no outcome); "
         "raise generate.max_new_tokens",
         100.0 * double(r.truncated) / double(r.trajectories));
}


int run_generate(const Config& cfg) {
  if (cfg.generate.engine == "batched" && cfg.generate.estimator != "hits")
    throw Error(fmt::format("generate.engine=batched counts hits only, not generate.estimator={}", cfg.generate.estimator),
                "pass --set generate.estimator=hits with it, or use the default engine");
  auto run = open_generate_run(cfg);
  GenerateRun& r = *run;
  torch::NoGradGuard no_grad;
  const auto t0 = std::chrono::steady_clock::now();
  if (r.cfg.generate.engine == "batched") run_batched(r);
  else run_engine(r);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  write_generate_outputs(r, secs);
  return 0;
}

}  // namespace chart
