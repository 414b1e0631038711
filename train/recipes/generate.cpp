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
#include "infer/sampling.h"

namespace chart {
namespace fs = std::filesystem;
namespace {

// One sampled future: its whole token history (prompt, then what was sampled), its clock.
struct Trajectory {
  std::vector<int64_t> tokens;
  std::vector<float> ages;
  double age = 0, elapsed_us = 0;  // clock of the last token; time past prediction_time (<= 0 at first)
  int64_t generated = 0;
  bool hit = false;
};

struct GenerateRun {
  Config cfg;
  Pretrained pre;
  data::TokenDataset ds;
  int64_t L = 0, P = 0, budget = 0, horizon_us = 0, K = 0;  // context, prompt, token budget, horizon, samples
  TokenRoles roles;
  std::vector<data::Example> examples;
  DeviceChoice dev;
  ClinicalTransformer model{nullptr};
  torch::Tensor banned;  // on the device
  std::vector<data::Prediction> preds;
  int64_t generated = 0, truncated = 0, trajectories = 0, hits = 0, windows = 0;

  GenerateRun(Config c, Pretrained p, data::TokenDataset d) : cfg(std::move(c)), pre(std::move(p)), ds(std::move(d)) {}
};

std::unique_ptr<GenerateRun> open_generate_run(const Config& cfg_in) {
  Config cfg = cfg_in;
  const auto& g = cfg.generate;
  if (cfg.run.dir.empty()) throw Error("run.dir is not set", "pass --set run.dir=DIR");
  if (cfg.task.labels.empty()) throw Error("task.labels is not set", "pass --set task.labels=LABELS_DIR_OR_FILE");
  set_cpu_threads(cfg.train.threads);
  Pretrained pre = load_pretrained(cfg.init.checkpoint);
  if (pre.tensors.count("cls_head.weight"))
    warn("generate: {} is a fine-tuned checkpoint; its next-token head was not trained with the fine-tuned "
         "backbone, so sampled futures may be poor (use the pretraining checkpoint)", pre.dir.string());
  if (cfg.data.dir.empty()) cfg.data.dir = pre.config.data.dir;
  cfg.model = pre.config.model;
  auto ds = data::TokenDataset::open(cfg.data.dir);
  auto r = std::make_unique<GenerateRun>(cfg, std::move(pre), std::move(ds));
  check_vocab(r->pre, r->ds.vocab_hash(), r->cfg.data.dir);
  r->L = r->cfg.model.context;
  r->P = g.prompt_tokens > 0 ? g.prompt_tokens : r->L / 2;
  if (r->P >= r->L) fail("generate.prompt_tokens ({}) must be below the model's context {}", r->P, r->L);
  r->budget = g.max_new_tokens > 0 ? g.max_new_tokens : 8 * r->L;
  r->horizon_us = data::parse_duration(g.horizon, "generate.horizon");
  r->K = g.samples;
  r->roles = token_roles(r->ds.vocab(), g);
  auto examples = data::make_examples(r->ds, data::read_labels(r->cfg.task.labels), r->cfg.task.labels);
  r->examples = examples.by_split[g.split];
  if (g.max_examples > 0 && static_cast<int64_t>(r->examples.size()) > g.max_examples)
    r->examples.resize(static_cast<size_t>(g.max_examples));
  if (r->examples.empty())
    fail("{}: no label rows of subjects in the {} split of {}", r->cfg.task.labels, g.split, r->cfg.data.dir);
  // What is scored, said up front: the labels' own definition of the outcome is not known here.
  info("generate: scoring P(an outcome code of [{}] within {} of prediction_time) for {} label rows of the {} "
       "split ({}), {} samples each", fmt::join(g.outcome_codes, ", "), g.horizon, r->examples.size(), g.split,
       r->cfg.task.labels, r->K);
  r->dev = choose_device(r->cfg.train.device, r->cfg.train.precision);
  torch::manual_seed(static_cast<uint64_t>(r->cfg.train.seed));
  r->model = ClinicalTransformer(r->cfg.model, r->pre.vocab_size);
  copy_pretrained_weights(r->pre, *r->model);
  r->model->to(r->dev.device);
  r->model->eval();
  r->banned = r->roles.banned.to(r->dev.device);
  return r;
}

// K copies of each example's prompt: its last P tokens up to prediction_time, and its clock.
std::vector<Trajectory> start_trajectories(const GenerateRun& r, size_t begin, size_t end) {
  std::vector<Trajectory> traj;
  for (size_t x = begin; x < end; ++x) {
    const data::Example& e = r.examples[x];
    const auto& sh = r.ds.shards(e.split)[e.ref.shard];
    const auto& entry = sh.subject(e.ref.entry);
    const int64_t* times = sh.times() + entry.token_start;
    const int64_t n = std::min<int64_t>(e.n_tokens, r.P), from = e.n_tokens - n;
    Trajectory t;
    for (int64_t j = from; j < e.n_tokens; ++j) {
      t.tokens.push_back(sh.tokens()[entry.token_start + j]);
      t.ages.push_back(age_years(times[j], entry.birth_us));
    }
    const int64_t last_time = times[e.n_tokens - 1];
    t.age = micros_to_years(double(last_time - entry.birth_us));
    t.elapsed_us = double(last_time - e.row.prediction_time_us);
    for (int64_t k = 0; k < r.K; ++k) traj.push_back(t);
  }
  return traj;
}

// Left-pads the last P tokens of each listed trajectory into [n, P] prompt tensors.
std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> prompts(const GenerateRun& r, const std::vector<Trajectory>& traj,
                                                                const std::vector<size_t>& rows) {
  const int64_t n = static_cast<int64_t>(rows.size()), P = r.P;
  auto tokens = torch::zeros({n, P}, torch::kInt64), ages = torch::zeros({n, P}, torch::kFloat32);
  auto valid = torch::zeros({n, P}, torch::kBool);
  for (int64_t i = 0; i < n; ++i) {
    const Trajectory& t = traj[rows[static_cast<size_t>(i)]];
    const int64_t len = std::min<int64_t>(P, static_cast<int64_t>(t.tokens.size()));
    const size_t from = t.tokens.size() - static_cast<size_t>(len);
    for (int64_t j = 0; j < len; ++j) {
      tokens[i][P - len + j] = t.tokens[from + static_cast<size_t>(j)];
      ages[i][P - len + j] = t.ages[from + static_cast<size_t>(j)];
    }
    valid[i].slice(0, P - len, P).fill_(true);
  }
  const auto d = r.dev.device;
  return {tokens.to(d), ages.to(d), valid.to(d)};
}

// The window's prompt through the model. The first window's prompts are shared by each example's
// K samples: each is prefilled once and its cache repeated K times.
torch::Tensor prefill_window(GenerateRun& r, const std::vector<Trajectory>& traj, const std::vector<size_t>& live,
                             bool first, KVCache& cache) {
  std::vector<size_t> rows;
  if (first)
    for (size_t i = 0; i < traj.size(); i += static_cast<size_t>(r.K)) rows.push_back(i);
  auto [tokens, ages, valid] = prompts(r, traj, first ? rows : live);
  torch::Tensor logits;
  {
    AutocastGuard autocast(r.dev);
    logits = r.model->decode(tokens, ages, valid, cache);
  }
  if (!first) return logits;
  cache.repeat_rows(r.K);
  return logits.repeat_interleave(r.K, 0);
}

// Appends each live trajectory's sampled token and moves its clock; returns the positions (in
// `live`) of those that go on: not past the horizon, no outcome or stop, budget left.
std::vector<int64_t> advance(GenerateRun& r, std::vector<Trajectory>& traj, const std::vector<size_t>& live,
                             const int64_t* tok) {
  std::vector<int64_t> keep;
  for (size_t i = 0; i < live.size(); ++i) {
    Trajectory& t = traj[live[i]];
    const size_t id = static_cast<size_t>(tok[i]);
    t.elapsed_us += double(r.roles.advance_us[id]);
    t.age += micros_to_years(double(r.roles.advance_us[id]));
    t.tokens.push_back(tok[i]);
    t.ages.push_back(static_cast<float>(t.age));
    ++t.generated;
    if (t.elapsed_us > double(r.horizon_us)) continue;  // past the horizon: no hit
    if (r.roles.outcome[id]) {
      t.hit = true;
      continue;
    }
    if (r.roles.stop[id]) continue;
    if (t.generated >= r.budget) {
      ++r.truncated;
      continue;
    }
    keep.push_back(static_cast<int64_t>(i));
  }
  r.generated += static_cast<int64_t>(live.size());
  return keep;
}

// One context window: prefill, then one token per step until every trajectory ended or the
// window is full. Returns the trajectories still going, for the next window.
std::vector<size_t> run_window(GenerateRun& r, std::vector<Trajectory>& traj, std::vector<size_t> live, bool first) {
  ++r.windows;
  KVCache cache = r.model->new_cache(first ? static_cast<int64_t>(traj.size()) / r.K : static_cast<int64_t>(live.size()), r.L);
  torch::Tensor logits = prefill_window(r, traj, live, first, cache);
  for (int64_t pos = r.P; pos < r.L && !live.empty(); ++pos) {
    auto next = sample_next(logits, r.banned, r.cfg.generate.temperature, r.cfg.generate.top_k).cpu();
    const std::vector<int64_t> keep = advance(r, traj, live, next.data_ptr<int64_t>());
    std::vector<size_t> still;
    std::vector<float> ages;
    for (int64_t i : keep) {
      still.push_back(live[static_cast<size_t>(i)]);
      ages.push_back(traj[still.back()].ages.back());
    }
    if (still.empty() || pos + 1 == r.L) return still;  // the next window (if any) re-prompts these
    auto keep_t = torch::tensor(keep, torch::kInt64);
    if (still.size() < live.size()) cache.select_rows(keep_t.to(r.dev.device));
    live = std::move(still);
    const auto n = static_cast<int64_t>(keep.size());
    AutocastGuard autocast(r.dev);
    logits = r.model->decode(next.index_select(0, keep_t).unsqueeze(1).to(r.dev.device),
                             torch::tensor(ages).view({-1, 1}).to(r.dev.device),
                             torch::ones({n, 1}, torch::kBool).to(r.dev.device), cache);
  }
  return live;
}

// P(outcome within horizon) of each example: the fraction of its K trajectories that hit.
void score_examples(GenerateRun& r, const std::vector<Trajectory>& traj, size_t begin) {
  for (size_t x = 0; x * static_cast<size_t>(r.K) < traj.size(); ++x) {
    int64_t hits = 0;
    for (int64_t k = 0; k < r.K; ++k) hits += traj[x * static_cast<size_t>(r.K) + static_cast<size_t>(k)].hit;
    r.hits += hits;
    r.preds.push_back({r.examples[begin + x].row, double(hits) / double(r.K)});
  }
  r.trajectories += static_cast<int64_t>(traj.size());
}

void write_generate_outputs(const GenerateRun& r, double secs) {
  const auto& g = r.cfg.generate;
  const fs::path out = r.cfg.run.dir;
  const int64_t n = std::max<int64_t>(1, r.trajectories);
  fs::create_directories(out);
  write_file_atomic(out / "config.yaml", config_to_yaml(r.cfg));
  data::write_predictions(out / "predictions.parquet", r.preds, r.cfg.eval.threshold);
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
  j["truncated_fraction"] = double(r.truncated) / n;
  j["hit_fraction"] = double(r.hits) / n;
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

}  // namespace

int run_generate(const Config& cfg) {
  auto run = open_generate_run(cfg);
  GenerateRun& r = *run;
  torch::NoGradGuard no_grad;
  const size_t per_chunk = static_cast<size_t>(std::max<int64_t>(1, r.cfg.generate.batch_size / r.K));
  const auto t0 = std::chrono::steady_clock::now();
  Progress progress("generate: example", static_cast<int64_t>(r.examples.size()));
  for (size_t begin = 0; begin < r.examples.size(); begin += per_chunk) {
    const size_t end = std::min(r.examples.size(), begin + per_chunk);
    std::vector<Trajectory> traj = start_trajectories(r, begin, end);
    std::vector<size_t> live(traj.size());
    for (size_t i = 0; i < live.size(); ++i) live[i] = i;
    // A trajectory still going when its window is full starts a new one, prompted with its last
    // P tokens (its history, then what it sampled).
    for (bool first = true; !live.empty(); first = false) live = run_window(r, traj, std::move(live), first);
    score_examples(r, traj, begin);
    progress.update(static_cast<int64_t>(end), fmt::format("{} trajectories", r.trajectories));
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  progress.finish(fmt::format("{} tokens in {:.1f} s", r.generated, secs));
  write_generate_outputs(r, secs);
  return 0;
}

}  // namespace chart
