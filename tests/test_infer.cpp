// The generation engine (infer/): a prompt prefilled once and copied into several decode slots
// gives each slot the logits of its own prefill, rows at different lengths decode together, and
// a trajectory's tokens do not depend on how many slots the pool has or who shares its steps.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "data/vocab.h"
#include "infer/engine.h"
#include "infer/prefill.h"
#include "infer/risk.h"
#include "infer/sampling.h"
#include "model/transformer.h"

namespace chart {
namespace {

ModelConfig engine_model(bool time_bias) {
  ModelConfig m;
  m.d_model = 32;
  m.n_layers = 2;
  m.n_heads = 4;
  m.n_kv_heads = 2;
  m.context = 16;
  m.time_bias = time_bias;
  return m;
}

std::vector<int64_t> random_tokens(int64_t n) {
  auto t = torch::randint(3, 40, {n}, torch::kInt64);
  return {t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + n};
}

std::vector<float> ages_from(float start, int64_t n) {
  std::vector<float> a;
  for (int64_t i = 0; i < n; ++i) a.push_back(start + 0.37f * float(i));
  return a;
}

class SharedPrefill : public ::testing::TestWithParam<bool> {};

// One prompt prefilled once and copied into slots 0 and 2, another into slot 1 (a different
// length); each slot decodes a different next token in one batched step. Every slot's logits
// equal those of its own independent prefill of prompt + token.
TEST_P(SharedPrefill, EqualsIndependentPrefill) {
  torch::manual_seed(0);
  ClinicalTransformer model(engine_model(GetParam()), 40);
  model->eval();
  torch::NoGradGuard no_grad;
  const DeviceChoice cpu;
  const auto a = random_tokens(9), b = random_tokens(5);
  const auto a_ages = ages_from(40, 9), b_ages = ages_from(61, 5);
  const auto pa = infer::prefill(model, a, a_ages, cpu), pb = infer::prefill(model, b, b_ages, cpu);
  KVCache pool = model->new_cache(3, 16);
  infer::copy_into_slot(pa, pool, 0);
  infer::copy_into_slot(pb, pool, 1);
  infer::copy_into_slot(pa, pool, 2);
  const std::vector<int64_t> next = {7, 11, 23};
  const std::vector<float> next_ages = {a_ages.back() + 0.1f, b_ages.back() + 2.0f, a_ages.back() + 0.5f};
  auto logits = model->decode_rows(torch::tensor(next), torch::tensor(next_ages), {9, 5, 9}, pool);
  for (int64_t s = 0; s < 3; ++s) {
    auto tokens = s == 1 ? b : a;
    auto ages = s == 1 ? b_ages : a_ages;
    EXPECT_LT((infer::prefill(model, tokens, ages, cpu).logits[0] - (s == 1 ? pb : pa).logits[0]).abs().max().item<double>(),
              1e-6);
    tokens.push_back(next[size_t(s)]);
    ages.push_back(next_ages[size_t(s)]);
    auto own = infer::prefill(model, tokens, ages, cpu).logits[0];
    EXPECT_LT((logits[s] - own).abs().max().item<double>(), 1e-4) << "slot " << s;
  }
}
INSTANTIATE_TEST_SUITE_P(TimeBias, SharedPrefill, ::testing::Values(false, true));

// Token 3 moves the clock a day, token 10 is the outcome, 11 a stop code.
TokenRoles engine_roles() {
  TokenRoles r;
  r.advance_us.assign(40, 0);
  r.advance_us[3] = 86'400'000'000LL;
  r.outcome.assign(40, 0);
  r.outcome[10] = 1;
  r.stop.assign(40, 0);
  r.stop[11] = 1;
  r.banned = torch::zeros({40}, torch::kBool);
  r.banned[data::Vocab::kPad] = true;
  r.banned[data::Vocab::kBos] = true;
  return r;
}

std::vector<infer::TrajectoryResult> run_pool(ClinicalTransformer& model, int64_t slots, uint64_t seed,
                                              infer::EngineStats& stats, bool slide = true) {
  torch::manual_seed(1);  // the same prompts every time
  std::vector<infer::Prompt> prompts;
  for (int64_t p = 0; p < 5; ++p) {
    infer::Prompt x;
    x.tokens = random_tokens(4 + 2 * p);
    x.ages = ages_from(50.f + float(p), int64_t(x.tokens.size()));
    x.age = x.ages.back();
    x.row = 100 + p;
    prompts.push_back(x);
  }
  infer::EngineOptions opt;
  opt.slots = slots;
  opt.samples = 4;
  opt.context = 16;
  opt.prompt_tokens = 8;
  opt.max_new_tokens = 30;  // beyond one window: trajectories are re-prompted
  opt.horizon_us = 6 * 86'400'000'000LL;
  opt.seed = seed;
  opt.keep_tokens = true;
  opt.slide = slide;
  return infer::generate(model, engine_roles(), opt, DeviceChoice{}, prompts, stats);
}

// One slot (trajectories one at a time), three (slots freed and refilled mid-run, rows at
// different lengths) and more slots than trajectories: the same tokens for every trajectory.
TEST(ContinuousBatching, SameTrajectoriesAsOneAtATime) {
  torch::manual_seed(0);
  ClinicalTransformer model(engine_model(true), 40);
  model->eval();
  infer::EngineStats one_stats, three_stats, many_stats, other_stats;
  const auto one = run_pool(model, 1, 7, one_stats);
  const auto three = run_pool(model, 3, 7, three_stats);
  const auto many = run_pool(model, 64, 7, many_stats);
  ASSERT_EQ(one.size(), 20u);
  int64_t ended_early = 0, truncated = 0;
  for (size_t i = 0; i < one.size(); ++i) {
    EXPECT_EQ(one[i].sampled, three[i].sampled) << "trajectory " << i;
    EXPECT_EQ(one[i].sampled, many[i].sampled) << "trajectory " << i;
    EXPECT_EQ(one[i].hit, many[i].hit);
    EXPECT_EQ(one[i].truncated, many[i].truncated);
    EXPECT_EQ(one[i].generated, int64_t(one[i].sampled.size()));
    ended_early += one[i].generated < 30;
    truncated += one[i].truncated;
  }
  EXPECT_GT(ended_early, 0) << "some trajectories must stop early, or slots are never refilled mid-run";
  EXPECT_GT(one_stats.windows, 0) << "some trajectories must outgrow their context window";
  // Shared prefill: one prefill per prompt (5); new windows slide their cache.
  EXPECT_EQ(many_stats.prefills, 5);
  EXPECT_EQ(many_stats.windows, one_stats.windows);
  // Without sliding, each new window is prefilled again, and the pool size still does not matter.
  infer::EngineStats prefill_one, prefill_many;
  const auto a = run_pool(model, 1, 7, prefill_one, false), b = run_pool(model, 64, 7, prefill_many, false);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].sampled, b[i].sampled) << "trajectory " << i;
  EXPECT_EQ(prefill_many.prefills, 5 + prefill_many.windows);
  EXPECT_GT(prefill_many.windows, 0);
  EXPECT_EQ(one_stats.generated, many_stats.generated);
  EXPECT_LT(many_stats.decode_steps, one_stats.decode_steps);
  // The seed matters.
  const auto other = run_pool(model, 3, 8, other_stats);
  int64_t differ = 0;
  for (size_t i = 0; i < one.size(); ++i) differ += other[i].sampled != one[i].sampled;
  EXPECT_GT(differ, 10);
  (void)truncated;
}

// The two risk estimators (infer/risk.h) estimate the same probability: over many trajectories
// of one prompt their means agree within sampling error, and the expected one varies less.
TEST(RiskEstimators, AgreeInMeanAndTheExpectedOneVariesLess) {
  torch::manual_seed(0);
  ClinicalTransformer model(engine_model(true), 40);
  model->eval();
  TokenRoles roles = engine_roles();
  for (int id = 12; id < 18; ++id) roles.outcome[size_t(id)] = 1;  // ~18% a step: hits are common enough
  infer::Prompt p;
  p.tokens = random_tokens(6);
  p.ages = ages_from(60.f, 6);
  p.age = p.ages.back();
  infer::EngineOptions opt;
  opt.slots = 256;
  opt.samples = 1200;
  opt.context = 16;
  opt.prompt_tokens = 8;
  opt.max_new_tokens = 4;
  opt.horizon_us = 365 * 86'400'000'000LL;
  opt.seed = 3;
  infer::EngineStats stats;
  const auto t = infer::generate(model, roles, opt, DeviceChoice{}, {p}, stats);
  const auto n = int64_t(t.size());
  double hit = 0, exp = 0, hit2 = 0, exp2 = 0, diff2 = 0;
  for (const auto& x : t) {
    EXPECT_GE(x.expected, 0);
    EXPECT_LE(x.expected, double(x.generated));  // at most one probability per step
    hit += x.hit, exp += x.expected, hit2 += x.hit, exp2 += x.expected * x.expected;
    diff2 += (x.hit - x.expected) * (x.hit - x.expected);
  }
  hit /= double(n), exp /= double(n);
  const double var_hit = hit2 / double(n) - hit * hit, var_exp = exp2 / double(n) - exp * exp;
  const double se_diff = std::sqrt((diff2 / double(n) - (hit - exp) * (hit - exp)) / double(n));
  std::printf("P(hit) %.4f by hits, %.4f by expected (se of the difference %.4f); variance %.4f vs %.4f\n", hit, exp,
              se_diff, var_hit, var_exp);
  EXPECT_GT(hit, 0.2);
  EXPECT_LT(hit, 0.9);
  EXPECT_LT(std::abs(hit - exp), 4 * se_diff);
  EXPECT_LT(var_exp, 0.5 * var_hit);

  // Per-row summaries: the point inside its interval, intervals inside [0, 1].
  const infer::RiskEstimate e = infer::estimate_risk(t.data(), n);
  EXPECT_EQ(e.samples, n);
  EXPECT_NEAR(e.hit_fraction, hit, 1e-12);
  EXPECT_NEAR(e.expected, exp, 1e-12);
  EXPECT_LT(e.hit_low, e.hit_fraction);
  EXPECT_GT(e.hit_high, e.hit_fraction);
  EXPECT_LT(e.expected_low, e.expected);
  EXPECT_GT(e.expected_high, e.expected);
  EXPECT_LT(e.expected_high - e.expected_low, e.hit_high - e.hit_low);
  // No hits in 20: Wilson's interval still leaves room above zero (0 to 0.161).
  const auto [low, high] = infer::wilson_interval(0, 20);
  EXPECT_EQ(low, 0.0);
  EXPECT_NEAR(high, 0.1611, 1e-3);
  const infer::RiskEstimate one = infer::estimate_risk(t.data(), 1);
  EXPECT_EQ(one.expected_low, 0.0);
  EXPECT_EQ(one.expected_high, 1.0);
}

// A full slot slides its cache instead of prefilling its new window again. With one layer the
// slid row is exactly a fresh prefill of the kept tokens (rotary is relative: keys rotated back
// by the positions dropped score the same); with more, the first layer's keys and values still
// are, and later layers carry what the dropped tokens told them, which moves the logits a little.
TEST(SlidingCache, EqualsAFreshPrefillOfTheKeptWindow) {
  for (int64_t layers : {1, 2}) {
    torch::manual_seed(0);
    ModelConfig m = engine_model(true);
    m.n_layers = layers;
    ClinicalTransformer model(m, 40);
    model->eval();
    torch::NoGradGuard no_grad;
    const DeviceChoice cpu;
    const auto tokens = random_tokens(16);
    const auto ages = ages_from(50, 17);
    KVCache pool = model->new_cache(2, 16);
    infer::copy_into_slot(infer::prefill(model, {tokens.begin(), tokens.begin() + 5}, {ages.begin(), ages.begin() + 5}, cpu),
                          pool, 0);  // another row, untouched by the slide
    infer::copy_into_slot(infer::prefill(model, tokens, {ages.begin(), ages.begin() + 16}, cpu), pool, 1);
    const auto k0 = pool.k[0][0].clone();
    model->slide_cache_row(pool, 1, 16, 7);  // keep tokens 9..15 at positions 0..6
    EXPECT_TRUE(pool.k[0][0].equal(k0));
    EXPECT_FALSE(pool.valid[1].narrow(0, 7, 9).any().item<bool>());
    const std::vector<int64_t> kept(tokens.begin() + 9, tokens.end());
    const std::vector<float> kept_ages(ages.begin() + 9, ages.begin() + 16);
    const auto fresh = infer::prefill(model, kept, kept_ages, cpu);
    EXPECT_LT((pool.k[0][1].narrow(1, 0, 7) - fresh.cache.k[0][0]).abs().max().item<double>(), 1e-5) << layers;
    EXPECT_LT((pool.v[0][1].narrow(1, 0, 7) - fresh.cache.v[0][0]).abs().max().item<double>(), 1e-6) << layers;
    EXPECT_TRUE(pool.ages[1].narrow(0, 0, 7).equal(fresh.cache.ages[0]));
    // The next token decoded at position 7 of the slid row, and in a fresh prefill of the window.
    auto logits = model->decode_rows(torch::tensor(std::vector<int64_t>{3, 21}), torch::tensor(std::vector<float>{ages[5], ages[16]}),
                                     {5, 7}, pool);
    auto window = kept;
    window.push_back(21);
    auto window_ages = kept_ages;
    window_ages.push_back(ages[16]);
    const double diff = (logits[1] - infer::prefill(model, window, window_ages, cpu).logits[0]).abs().max().item<double>();
    std::printf("%lld layer(s): slid cache vs fresh prefill of the window, logits within %.3g\n", (long long)layers, diff);
    if (layers == 1) EXPECT_LT(diff, 1e-4);
    else EXPECT_GT(diff, 1e-4);  // the deeper layers remember: this is a different (longer) context
  }
}

// Sampling where the logits are: the tokens drawn on the device are the host's inverse-CDF draws
// exactly (on the CPU), at every uniform including the very top, with banned and top-k-cut tokens
// never drawn; the outcome probability is the host's sum.
TEST(DeviceSampling, DrawsTheHostsTokensAndOutcomeMass) {
  torch::manual_seed(4);
  const int64_t N = 64, V = 50;
  auto banned = torch::zeros({V}, torch::kBool);
  banned[0] = true, banned[1] = true;
  for (int64_t top_k : {0, 5}) {
    const auto probs = sampling_distribution(torch::randn({N, V}) * 3, banned, 0.8, top_k).contiguous();
    std::vector<double> u;
    for (int64_t n = 0; n < N; ++n) u.push_back(n == 0 ? 0.0 : n == 1 ? std::nextafter(1.0, 0.0) : trajectory_uniform(9, n, 0, 3));
    const std::vector<int64_t> outcome{7, 21, 33};
    const Draws d = draw_tokens(probs, u, torch::tensor(outcome, torch::kInt64), /*tensor_ops=*/true);
    ASSERT_EQ(d.tokens.size(), size_t(N));
    for (int64_t n = 0; n < N; ++n) {
      const float* row = probs.data_ptr<float>() + n * V;
      EXPECT_EQ(d.tokens[size_t(n)], draw_token(row, V, u[size_t(n)])) << "row " << n << " top_k " << top_k;
      EXPECT_GT(row[d.tokens[size_t(n)]], 0.0f);
      double mass = 0;
      for (int64_t id : outcome) mass += row[id];
      EXPECT_NEAR(d.outcome[size_t(n)], mass, 1e-12);
    }
  }
}

}  // namespace
}  // namespace chart
