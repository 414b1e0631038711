#include "infer/sampling.h"

#include <limits>
#include <string>

#include "core/error.h"
#include "core/mix.h"
#include "data/time_bins.h"

namespace chart {

TokenRoles token_roles(const data::Vocab& vocab, const GenerateConfig& g) {
  const size_t V = vocab.size();
  TokenRoles r;
  r.advance_us.assign(V, 0);
  r.outcome = data::code_token_mask(vocab, g.outcome_codes, "generate.outcome_codes");
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
    for (const auto& p : g.stop_codes) r.stop[id] |= data::code_matches(name, p);
  }
  r.banned = torch::zeros({static_cast<int64_t>(V)}, torch::kBool);
  r.banned[data::Vocab::kPad] = true;
  r.banned[data::Vocab::kBos] = true;
  return r;
}

namespace {

torch::Tensor sampling_logits(torch::Tensor logits, const torch::Tensor& banned, double temperature, int64_t top_k) {
  logits = logits.to(torch::kFloat32).masked_fill(banned, -std::numeric_limits<float>::infinity()) / temperature;
  if (top_k > 0 && top_k < logits.size(1)) {
    auto kth = std::get<0>(logits.topk(top_k, 1)).select(1, top_k - 1).unsqueeze(1);
    logits = logits.masked_fill(logits < kth, -std::numeric_limits<float>::infinity());
  }
  return logits;
}

}  // namespace

torch::Tensor sample_next(torch::Tensor logits, const torch::Tensor& banned, double temperature, int64_t top_k) {
  return torch::multinomial(torch::softmax(sampling_logits(logits, banned, temperature, top_k), 1), 1).squeeze(1);
}

torch::Tensor sampling_distribution(torch::Tensor logits, const torch::Tensor& banned, double temperature, int64_t top_k) {
  return torch::softmax(sampling_logits(logits, banned, temperature, top_k), 1);
}

torch::Tensor next_token_probabilities(torch::Tensor logits, const torch::Tensor& banned, double temperature,
                                       int64_t top_k) {
  return sampling_distribution(std::move(logits), banned, temperature, top_k).cpu().contiguous();
}

Draws draw_tokens(const torch::Tensor& probs, const std::vector<double>& u, const torch::Tensor& outcome_ids) {
  return draw_tokens(probs, u, outcome_ids, !probs.is_cpu());
}

Draws draw_tokens(const torch::Tensor& probs, const std::vector<double>& u, const torch::Tensor& outcome_ids,
                  bool tensor_ops) {
  const int64_t N = probs.size(0), V = probs.size(1);
  TORCH_CHECK(static_cast<int64_t>(u.size()) == N, "one uniform per row");
  if (!tensor_ops) {
    const auto p = probs.cpu().to(torch::kFloat32).contiguous();
    const auto ids = outcome_ids.cpu().contiguous();
    Draws d;
    for (int64_t n = 0; n < N; ++n) {
      const float* row = p.data_ptr<float>() + n * V;
      double mass = 0;
      for (int64_t k = 0; k < ids.numel(); ++k) mass += row[ids.data_ptr<int64_t>()[k]];
      d.tokens.push_back(draw_token(row, V, u[size_t(n)]));
      d.outcome.push_back(mass);
    }
    return d;
  }
  const auto p = probs.to(torch::kFloat64);
  const auto cum = p.cumsum(1);
  const auto target = torch::tensor(u, torch::kFloat64).to(probs.device()) * cum.select(1, V - 1);
  // The first index whose running sum exceeds the target; past the end (rounding at the very
  // top), the last token with a probability above zero.
  auto token = torch::searchsorted(cum, target.unsqueeze(1), /*out_int32=*/false, /*right=*/true).squeeze(1);
  const auto last = (torch::arange(V, torch::dtype(torch::kInt64).device(probs.device())) * (probs > 0)).amax(1);
  token = torch::where(token >= V, last, token);
  const auto outcome = outcome_ids.numel() > 0 ? p.index_select(1, outcome_ids).sum(1) : torch::zeros({N}, p.options());
  const auto both = torch::stack({token.to(torch::kFloat64), outcome}).cpu().contiguous();  // one copy to the host
  Draws d;
  const double* h = both.data_ptr<double>();
  for (int64_t n = 0; n < N; ++n) d.tokens.push_back(static_cast<int64_t>(h[n])), d.outcome.push_back(h[N + n]);
  return d;
}

double trajectory_uniform(uint64_t seed, int64_t row, int64_t sample, int64_t step) {
  uint64_t h = mix(mix(mix(mix(seed) ^ uint64_t(row)) ^ uint64_t(sample)) ^ uint64_t(step));
  return double(h >> 11) * 0x1.0p-53;  // the top 53 bits: every double in [0, 1) a multiple of 2^-53
}

int64_t prompt_stream(int64_t subject_id, int64_t prediction_time_us) {
  return int64_t(mix(mix(uint64_t(subject_id)) ^ uint64_t(prediction_time_us)));
}

int64_t draw_token(const float* probs, int64_t V, double u) {
  double total = 0;
  for (int64_t i = 0; i < V; ++i) total += probs[i];
  const double target = u * total;
  double cum = 0;
  int64_t last = 0;
  for (int64_t i = 0; i < V; ++i) {
    if (probs[i] <= 0) continue;  // a banned or cut token is never drawn
    cum += probs[i];
    last = i;
    if (cum > target) return i;
  }
  return last;  // rounding left target at the very top
}

}  // namespace chart
