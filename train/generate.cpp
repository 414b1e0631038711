#include "train/generate.h"

#include <chrono>
#include <cmath>
#include <thread>

#include "core/error.h"
#include "core/files.h"
#include "core/json.h"
#include "core/log.h"
#include "data/examples.h"
#include "data/labels.h"
#include "data/time_bins.h"
#include "model/device.h"
#include "model/transformer.h"
#include "train/autocast.h"
#include "train/pretrained.h"

namespace chart {
namespace fs = std::filesystem;
namespace {

using data::kMicrosPerYear;

// What each token means to the sampler.
struct TokenRoles {
  std::vector<int64_t> advance_us;  // time a time-interval token moves the clock; 0 otherwise
  std::vector<uint8_t> outcome, stop;
  torch::Tensor banned;             // [V] bool: never sampled ([PAD], [BOS])
};

bool matches(const std::string& token, const std::string& pattern) {
  if (!pattern.empty() && pattern.back() == '*') return token.rfind(pattern.substr(0, pattern.size() - 1), 0) == 0;
  return token == pattern;
}

TokenRoles token_roles(const data::Vocab& vocab, const GenerateConfig& g) {
  const size_t V = vocab.size();
  TokenRoles r;
  r.advance_us.assign(V, 0);
  r.outcome.assign(V, 0);
  r.stop.assign(V, 0);
  for (uint32_t id = 0; id < V; ++id) {
    const std::string& name = vocab.token(id);
    if (vocab.kind(id) == data::TokenKind::kTime) {
      // "TIME//5m-15m" -> the middle of the interval; "TIME//>=365d" -> 365d per token.
      std::string span = name.substr(name.find("//") + 2);
      if (span.rfind(">=", 0) == 0) {
        r.advance_us[id] = data::parse_duration(span.substr(2), "vocabulary token " + name);
      } else {
        auto dash = span.find('-');
        int64_t lo = data::parse_duration(span.substr(0, dash), "vocabulary token " + name);
        int64_t hi = data::parse_duration(span.substr(dash + 1), "vocabulary token " + name);
        r.advance_us[id] = (lo + hi) / 2;
      }
    }
    if (vocab.kind(id) != data::TokenKind::kCode) continue;
    for (const auto& p : g.outcome_codes) r.outcome[id] |= matches(name, p);
    for (const auto& p : g.stop_codes) r.stop[id] |= matches(name, p);
  }
  for (const auto& p : g.outcome_codes) {
    bool any = false;
    for (uint32_t id = 0; id < V; ++id) any |= vocab.kind(id) == data::TokenKind::kCode && matches(vocab.token(id), p);
    if (!any)
      throw Error(fmt::format("generate.outcome_codes: no token of the vocabulary matches '{}'", p),
                  "name codes as they appear in vocab.tsv of the token dataset (a trailing * matches a prefix)");
  }
  r.banned = torch::zeros({static_cast<int64_t>(V)}, torch::kBool);
  r.banned[data::Vocab::kPad] = true;
  r.banned[data::Vocab::kBos] = true;
  return r;
}

torch::Tensor sample(torch::Tensor logits, const torch::Tensor& banned, double temperature, int64_t top_k) {
  logits = logits.to(torch::kFloat32).masked_fill(banned, -std::numeric_limits<float>::infinity()) / temperature;
  if (top_k > 0 && top_k < logits.size(1)) {
    auto kth = std::get<0>(logits.topk(top_k, 1)).select(1, top_k - 1).unsqueeze(1);
    logits = logits.masked_fill(logits < kth, -std::numeric_limits<float>::infinity());
  }
  return torch::multinomial(torch::softmax(logits, 1), 1).squeeze(1);
}

}  // namespace

int run_generate(const Config& cfg_in) {
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
  check_vocab(pre, ds.vocab_hash(), cfg.data.dir);
  const int64_t L = cfg.model.context;
  const int64_t P = g.prompt_tokens > 0 ? g.prompt_tokens : L / 2;
  if (P >= L) fail("generate.prompt_tokens ({}) must be below the model's context {}", P, L);
  const int64_t budget = g.max_new_tokens > 0 ? g.max_new_tokens : 8 * L;
  const int64_t horizon_us = data::parse_duration(g.horizon, "generate.horizon");
  const TokenRoles roles = token_roles(ds.vocab(), g);

  auto examples = data::make_examples(ds, data::read_labels(cfg.task.labels));
  std::vector<data::Example> ex = examples.by_split[g.split];
  if (g.max_examples > 0 && static_cast<int64_t>(ex.size()) > g.max_examples) ex.resize(static_cast<size_t>(g.max_examples));
  if (ex.empty()) fail("{}: no label rows of subjects in the {} split of {}", cfg.task.labels, g.split, cfg.data.dir);

  DeviceChoice dev = choose_device(cfg.train.device, cfg.train.precision);
  torch::manual_seed(static_cast<uint64_t>(cfg.train.seed));
  ClinicalTransformer model(cfg.model, pre.vocab_size);
  copy_pretrained_weights(pre, *model);
  model->to(dev.device);
  model->eval();
  torch::NoGradGuard no_grad;
  auto banned = roles.banned.to(dev.device);

  const int64_t K = g.samples;
  const int64_t per_chunk = std::max<int64_t>(1, g.batch_size / K);  // examples decoded together
  std::vector<data::Prediction> preds;
  int64_t generated = 0, truncated = 0, trajectories = 0, hits_total = 0, windows = 0;
  auto t0 = std::chrono::steady_clock::now();
  Progress progress("generate: example", static_cast<int64_t>(ex.size()));

  // One sampled future: its whole token history (prompt, then what was sampled), its clock.
  struct Trajectory {
    std::vector<int64_t> tokens;
    std::vector<float> ages;
    double age = 0, elapsed_us = 0;  // clock of the last token; time past prediction_time (<= 0 at first)
    int64_t generated = 0;
    bool hit = false;
  };
  // Left-pads the last P tokens of each listed trajectory into [n, P] prompt tensors.
  auto prompts = [&](const std::vector<Trajectory>& traj, const std::vector<size_t>& rows) {
    const int64_t n = static_cast<int64_t>(rows.size());
    auto tokens = torch::zeros({n, P}, torch::kInt64), ages = torch::zeros({n, P}, torch::kFloat32);
    auto valid = torch::zeros({n, P}, torch::kBool);
    for (int64_t r = 0; r < n; ++r) {
      const Trajectory& t = traj[rows[static_cast<size_t>(r)]];
      const int64_t len = std::min<int64_t>(P, static_cast<int64_t>(t.tokens.size()));
      const size_t from = t.tokens.size() - static_cast<size_t>(len);
      for (int64_t j = 0; j < len; ++j) {
        tokens[r][P - len + j] = t.tokens[from + static_cast<size_t>(j)];
        ages[r][P - len + j] = t.ages[from + static_cast<size_t>(j)];
      }
      valid[r].slice(0, P - len, P).fill_(true);
    }
    return std::make_tuple(tokens.to(dev.device), ages.to(dev.device), valid.to(dev.device));
  };

  for (size_t c = 0; c < ex.size(); c += static_cast<size_t>(per_chunk)) {
    const size_t end = std::min(ex.size(), c + static_cast<size_t>(per_chunk));
    const int64_t G = static_cast<int64_t>(end - c);
    std::vector<Trajectory> traj(static_cast<size_t>(G * K));
    for (int64_t r = 0; r < G; ++r) {
      const data::Example& e = ex[c + static_cast<size_t>(r)];
      const auto& sh = ds.shards(e.split)[e.ref.shard];
      const auto& entry = sh.subject(e.ref.entry);
      const int64_t n = std::min<int64_t>(e.n_tokens, P), from = e.n_tokens - n;
      Trajectory t;
      for (int64_t j = from; j < e.n_tokens; ++j) {
        t.tokens.push_back(sh.tokens()[entry.token_start + j]);
        t.ages.push_back(static_cast<float>((sh.times()[entry.token_start + j] - entry.birth_us) / kMicrosPerYear));
      }
      const int64_t last_time = sh.times()[entry.token_start + e.n_tokens - 1];
      t.age = double(last_time - entry.birth_us) / kMicrosPerYear;
      t.elapsed_us = double(last_time - e.row.prediction_time_us);
      for (int64_t k = 0; k < K; ++k) traj[static_cast<size_t>(r * K + k)] = t;
    }
    // Windows of the model's context: a trajectory still going when its window is full starts a
    // new one, prompted with its last P tokens (its history, then what it sampled).
    std::vector<size_t> live;  // trajectories in this window, in cache row order
    for (size_t i = 0; i < traj.size(); ++i) live.push_back(i);
    for (bool first = true; !live.empty(); first = false) {
      ++windows;
      KVCache cache = model->new_cache(first ? G : static_cast<int64_t>(live.size()), L);
      torch::Tensor logits;
      {
        // The first window's prompts are shared by each example's K samples: prefill once each.
        std::vector<size_t> rows;
        if (first) for (int64_t r = 0; r < G; ++r) rows.push_back(static_cast<size_t>(r * K));
        auto [tokens, ages, valid] = prompts(traj, first ? rows : live);
        AutocastGuard autocast(dev);
        logits = model->decode(tokens, ages, valid, cache);
      }
      if (first) {
        cache.repeat_rows(K);
        logits = logits.repeat_interleave(K, 0);
      }
      for (int64_t pos = P; pos < L && !live.empty(); ++pos) {
        auto next = sample(logits, banned, g.temperature, g.top_k).cpu();
        const int64_t* tok = next.data_ptr<int64_t>();
        generated += static_cast<int64_t>(live.size());
        std::vector<int64_t> keep;
        std::vector<float> new_ages;
        for (size_t i = 0; i < live.size(); ++i) {
          Trajectory& t = traj[live[i]];
          const size_t id = static_cast<size_t>(tok[i]);
          t.elapsed_us += double(roles.advance_us[id]);
          t.age += double(roles.advance_us[id]) / kMicrosPerYear;
          t.tokens.push_back(tok[i]);
          t.ages.push_back(static_cast<float>(t.age));
          ++t.generated;
          if (t.elapsed_us > double(horizon_us)) continue;  // past the horizon: no hit
          if (roles.outcome[id]) { t.hit = true; continue; }
          if (roles.stop[id]) continue;
          if (t.generated >= budget) { ++truncated; continue; }
          keep.push_back(static_cast<int64_t>(i));
          new_ages.push_back(static_cast<float>(t.age));
        }
        std::vector<size_t> still;
        for (int64_t i : keep) still.push_back(live[static_cast<size_t>(i)]);
        if (still.empty() || pos + 1 == L) {
          live = still;  // the next window (if any) re-prompts these
          break;
        }
        auto keep_t = torch::tensor(keep, torch::kInt64);
        if (still.size() < live.size()) cache.select_rows(keep_t.to(dev.device));
        live = still;
        AutocastGuard autocast(dev);
        logits = model->decode(next.index_select(0, keep_t).unsqueeze(1).to(dev.device),
                               torch::tensor(new_ages).view({-1, 1}).to(dev.device),
                               torch::ones({static_cast<int64_t>(keep.size()), 1}, torch::kBool).to(dev.device), cache);
      }
    }
    for (int64_t r = 0; r < G; ++r) {
      int64_t hits = 0;
      for (int64_t k = 0; k < K; ++k) hits += traj[static_cast<size_t>(r * K + k)].hit;
      hits_total += hits;
      preds.push_back({ex[c + static_cast<size_t>(r)].row, double(hits) / double(K)});
    }
    trajectories += G * K;
    progress.update(static_cast<int64_t>(end), fmt::format("{} trajectories", trajectories));
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  progress.finish(fmt::format("{} tokens in {:.1f} s", generated, secs));

  const fs::path out = cfg.run.dir;
  fs::create_directories(out);
  write_file_atomic(out / "config.yaml", config_to_yaml(cfg));
  data::write_predictions(out / "predictions.parquet", preds, cfg.eval.threshold);
  write_file_atomic(out / "generate.json",
                    fmt::format("{{\n  \"checkpoint\": {},\n  \"labels\": {},\n  \"split\": {},\n  \"examples\": {},\n"
                                "  \"samples\": {},\n  \"horizon\": {},\n  \"outcome_codes\": [{}],\n"
                                "  \"tokens_generated\": {},\n  \"seconds\": {},\n  \"tokens_per_s\": {},\n"
                                "  \"mean_tokens_per_trajectory\": {},\n  \"context_windows\": {},\n  \"truncated_fraction\": {},\n"
                                "  \"hit_fraction\": {},\n  \"device\": {}\n}}\n",
                                json_string(pre.dir.string()), json_string(cfg.task.labels), json_string(g.split),
                                ex.size(), K, json_string(g.horizon),
                                [&] { std::string s; for (const auto& c : g.outcome_codes) s += (s.empty() ? "" : ", ") + json_string(c); return s; }(),
                                generated, json_number(secs), json_number(generated / std::max(1e-9, secs)),
                                json_number(double(generated) / std::max<int64_t>(1, trajectories)), windows,
                                json_number(double(truncated) / std::max<int64_t>(1, trajectories)),
                                json_number(double(hits_total) / std::max<int64_t>(1, trajectories)),
                                json_string(dev.describe())));
  info("generate: {} examples x {} samples, {} tokens in {:.1f} s ({:.0f} tokens/s), {:.1f}% truncated; wrote {}",
       ex.size(), K, generated, secs, generated / std::max(1e-9, secs),
       100.0 * double(truncated) / std::max<int64_t>(1, trajectories), (out / "predictions.parquet").string());
  if (truncated * 10 > trajectories)
    warn("generate: {:.0f}% of trajectories ran out of tokens before the horizon (counted as no outcome); "
         "raise generate.max_new_tokens",
         100.0 * double(truncated) / double(trajectories));
  return 0;
}

}  // namespace chart
