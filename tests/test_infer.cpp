// The generation engine (infer/): a prompt prefilled once and copied into several decode slots
// gives each slot the logits of its own prefill, rows at different lengths decode together, and
// a trajectory's tokens do not depend on how many slots the pool has or who shares its steps.
#include <gtest/gtest.h>

#include "data/vocab.h"
#include "infer/engine.h"
#include "infer/prefill.h"
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
                                              infer::EngineStats& stats) {
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
  // Shared prefill: one prefill per prompt (5), plus the new windows.
  EXPECT_EQ(many_stats.prefills, 5 + many_stats.windows);
  EXPECT_EQ(one_stats.generated, many_stats.generated);
  EXPECT_LT(many_stats.decode_steps, one_stats.decode_steps);
  // The seed matters.
  const auto other = run_pool(model, 3, 8, other_stats);
  int64_t differ = 0;
  for (size_t i = 0; i < one.size(); ++i) differ += other[i].sampled != one[i].sampled;
  EXPECT_GT(differ, 10);
  (void)truncated;
}

}  // namespace
}  // namespace chart
