#include <algorithm>

#include "core/log.h"
#include "core/time.h"
#include "model/autocast.h"
#include "train/recipes/generate_run.h"

namespace chart {
namespace {

// One sampled future: its whole token history (prompt, then what was sampled), its clock.
struct Trajectory {
  std::vector<int64_t> tokens;
  std::vector<float> ages;
  double age = 0, elapsed_us = 0;  // clock of the last token; time past prediction_time (<= 0 at first)
  int64_t generated = 0;
  bool hit = false;
};

// K copies of each example's prompt.
std::vector<Trajectory> start_trajectories(const GenerateRun& r, size_t begin, size_t end) {
  std::vector<Trajectory> traj;
  for (size_t x = begin; x < end; ++x) {
    infer::Prompt p = example_prompt(r, x);
    Trajectory t;
    t.tokens = std::move(p.tokens);
    t.ages = std::move(p.ages);
    t.age = p.age;
    t.elapsed_us = p.elapsed_us;
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

}  // namespace

void run_batched(GenerateRun& r) {
  const size_t per_chunk = static_cast<size_t>(std::max<int64_t>(1, r.cfg.generate.batch_size / r.K));
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
  progress.finish(fmt::format("{} tokens", r.generated));
}

}  // namespace chart
