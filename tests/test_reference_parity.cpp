// Parity with the plain-PyTorch reference (scripts/reference_model.py): chart's model, loss and one
// AdamW step on a packed batch must match what the Python reading the same weights computes.
// The C++ side writes weights, batch, config, outputs, gradients and the stepped weights into a
// temporary directory; `reference_model.py check DIR` compares and exits 0 only when they agree.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/json.h"
#include "data/loader.h"
#include "model/safetensors.h"
#include "model/transformer.h"
#include "tests/test_util.h"
#include "train/pretrain/loss.h"
#include "train/pretrain/optimizer.h"

namespace chart {
namespace {
using testing::TempDir;
namespace fs = std::filesystem;
using testing::run_chart;
using testing::run_python;

constexpr int64_t kVocab = 50;

// B=2 rows of L=24: row 0 packs three patients (9 + 7 + 8 tokens), row 1 two patients (11 + 9)
// and a padded tail of 4. Ages rise within a patient, some events share a time (dt 0); the last
// token of each patient and the padding have no target.
data::Batch packed_batch() {
  const int64_t B = 2, L = 24;
  const std::vector<std::vector<int64_t>> lengths = {{9, 7, 8}, {11, 9}};
  data::Batch b;
  b.tokens = torch::zeros({B, L}, torch::kInt64);  // [PAD] = 0
  b.targets = torch::full({B, L}, -1, torch::kInt64);
  b.ages = torch::zeros({B, L}, torch::kFloat32);
  b.target_dt = torch::zeros({B, L}, torch::kFloat32);
  b.segments = torch::full({B, L}, -1, torch::kInt32);
  auto tok = b.tokens.accessor<int64_t, 2>();
  auto tgt = b.targets.accessor<int64_t, 2>();
  auto age = b.ages.accessor<float, 2>();
  auto dt = b.target_dt.accessor<float, 2>();
  auto seg = b.segments.accessor<int32_t, 2>();
  auto random_tokens = torch::randint(3, kVocab, {B, L}, torch::kInt64);
  for (int64_t r = 0; r < B; ++r) {
    int64_t j = 0;
    for (size_t s = 0; s < lengths[r].size(); ++s) {
      double years = 25.0 + 17.3 * s + 11.1 * r;  // the patient's age at its first token
      for (int64_t k = 0; k < lengths[r][s]; ++k, ++j) {
        tok[r][j] = random_tokens[r][j].item<int64_t>();
        age[r][j] = static_cast<float>(years);
        seg[r][j] = static_cast<int32_t>(s);
        years += (k % 3 == 1) ? 0.0 : 0.004 * (k + 1) * (k + 1);  // some same-time events
      }
      for (int64_t p = j - lengths[r][s]; p + 1 < j; ++p) {
        tgt[r][p] = tok[r][p + 1];
        dt[r][p] = (age[r][p + 1] - age[r][p]) * 365.25f;
      }
    }
  }
  b.n_targets = b.targets.ge(0).sum().item<int64_t>();
  return b;
}

// The model keys, and the optimizer settings with the learning rate the step ran at.
std::string config_json(const ModelConfig& m, const TrainConfig& t, double lr) {
  Json j;
  j["vocab_size"] = kVocab;
  j["model"] = {{"d_model", m.d_model}, {"n_layers", m.n_layers}, {"n_heads", m.n_heads}, {"n_kv_heads", m.n_kv_heads},
                {"d_ff", m.d_ff}, {"context", m.context}, {"rope_theta", m.rope_theta}, {"norm_eps", m.norm_eps},
                {"time_encoding", m.time_encoding}, {"time_bias", m.time_bias}, {"tie_embeddings", m.tie_embeddings},
                {"time_head", m.time_head}, {"dropout", m.dropout}};
  j["train"] = {{"lr", lr}, {"beta1", t.beta1}, {"beta2", t.beta2}, {"eps", t.eps}, {"weight_decay", t.weight_decay},
                {"decay", t.decay}};
  return dump_json(j);
}

NamedTensors parameters_of(const ClinicalTransformer& model, bool grads) {
  NamedTensors out;
  for (const auto& p : model->named_parameters())
    if (grads && !p.value().grad().defined()) ADD_FAILURE() << "no gradient for " << p.key();
    else out.emplace_back(p.key(), (grads ? p.value().grad() : p.value()).detach().clone());
  return out;
}

// Runs `python scripts/reference_model.py check dir`; returns its exit status, its output in *out.
int run_reference_check(const std::filesystem::path& dir, std::string* out) {
  return testing::run_python(
      "\"" + (testing::source_dir() / "scripts" / "reference_model.py").string() + "\" check \"" + dir.string() + "\"", out);
}

void expect_parity(const ModelConfig& mc, const TrainConfig& tc) {
  if (std::string(CHART_PYTHON_EXE).empty()) GTEST_SKIP() << "no CHART_PYTHON configured";
  torch::manual_seed(1234);
  ClinicalTransformer model(mc, kVocab);
  model->train();
  data::Batch batch = packed_batch();
  TempDir dir;
  save_safetensors(dir / "model.safetensors", parameters_of(model, false));
  save_safetensors(dir / "batch.safetensors", {{"tokens", batch.tokens}, {"ages", batch.ages},
                                               {"segments", batch.segments}, {"targets", batch.targets},
                                               {"target_dt", batch.target_dt}});
  // The step runs at a warmup learning rate, set on both groups as the trainer does.
  const double lr = learning_rate(tc, 3);
  ASSERT_LT(lr, tc.lr);
  std::ofstream(dir / "config.json") << config_json(mc, tc, lr);

  auto opt = make_optimizer(model, tc);
  set_learning_rate(*opt, lr);
  opt->zero_grad();
  ModelOutput out = model->forward(batch.tokens, batch.ages, batch.segments);
  LossParts loss = pretraining_loss(out, batch);
  ASSERT_TRUE(std::isfinite(loss.total.item<double>()));
  NamedTensors outputs = {{"logits", out.logits.detach()}, {"loss", loss.total.detach()},
                          {"loss_next_token", loss.next_token.detach()}};
  if (out.log_rate.defined()) {
    outputs.emplace_back("log_rate", out.log_rate.detach());
    outputs.emplace_back("loss_time", loss.time.detach());
  }
  save_safetensors(dir / "cpp_out.safetensors", outputs);
  loss.total.backward();
  save_safetensors(dir / "cpp_grads.safetensors", parameters_of(model, true));
  opt->step();
  save_safetensors(dir / "cpp_after_step.safetensors", parameters_of(model, false));

  std::string output;
  const int status = run_reference_check(dir.path(), &output);
  EXPECT_EQ(status, 0) << output;
  if (status == 0) std::printf("%s", output.c_str());  // the measured differences, for the log
}

TrainConfig train_config(double lr, std::vector<std::string> decay) {
  TrainConfig t;
  t.lr = lr;
  t.weight_decay = 0.1;
  t.decay = std::move(decay);
  return t;
}

// The default shape, small: grouped-query attention (4 query heads on 2 KV heads), tied
// embeddings, sinusoidal age encoding, no time bias or time head.
TEST(ReferenceParity, TiedGroupedQuery) {
  ModelConfig m;
  m.d_model = 32;
  m.n_layers = 2;
  m.n_heads = 4;
  m.n_kv_heads = 2;
  m.context = 24;
  expect_parity(m, train_config(1e-3, {"matrices"}));
}

// Everything optional on: the time-decay attention bias, the time-to-next-event head, an untied
// output head, one KV head for all query heads, an explicit d_ff and rope_theta.
TEST(ReferenceParity, TimeBiasTimeHeadUntiedOneKvHead) {
  ModelConfig m;
  m.d_model = 32;
  m.n_layers = 2;
  m.n_heads = 4;
  m.n_kv_heads = 1;
  m.d_ff = 48;
  m.rope_theta = 500.0;
  m.context = 24;
  m.time_bias = true;
  m.time_head = true;
  m.tie_embeddings = false;
  expect_parity(m, train_config(3e-3, {"matrices", "other"}));
}

// No age encoding, no grouping (n_kv_heads 0), one layer, weight decay on every group.
TEST(ReferenceParity, NoAgeEncodingDecayEverything) {
  ModelConfig m;
  m.d_model = 24;
  m.n_layers = 1;
  m.n_heads = 2;
  m.context = 24;
  m.time_encoding = "none";
  m.time_bias = true;
  expect_parity(m, train_config(2e-3, {"matrices", "embeddings", "norms", "other"}));
}

// Thirty training steps, not one: `chart train` records its batches and starting weights
// (train.save_batches) and the Python reference, trained on them with PyTorch's own AdamW, must
// log the same loss at every step: warmup and cosine schedule, clipping, two micro-batches per
// step, the time bias and the time head all on.
TEST(ReferenceParity, ThirtyTrainingStepsReplayInPyTorch) {
  TempDir dir;
  const fs::path tok = dir / "tok", run = dir / "run";
  std::string out;
  ASSERT_EQ(run_chart("synth --out " + (dir / "meds").string() + " --subjects 200 --seed 3", &out), 0) << out;
  ASSERT_EQ(run_chart("prepare --meds " + (dir / "meds").string() + " --out " + tok.string(), &out), 0) << out;
  const std::string train = "train " + testing::config("tiny.yaml") + " --set data.dir=" + tok.string() +
                            " --set train.steps=30 --set train.log_every=1 --set train.eval_every=0 --set train.threads=1"
                            " --set train.checkpoint_every=0 --set train.grad_accum=2 --set train.grad_clip=0.5"
                            " --set model.time_bias=true --set model.time_head=true";
  ASSERT_EQ(run_chart(train + " --set run.dir=" + run.string() + " --set train.save_batches=30", &out), 0) << out;
  int files = 0;
  for (const auto& e : fs::directory_iterator(run / "batches")) files += e.path().extension() == ".safetensors";
  EXPECT_EQ(files, 31);  // the starting weights and 30 steps
  const int status = run_python((testing::source_dir() / "scripts/replay_run.py").string() + " " +
                                    run.string() + " --tolerance 1e-5 --mode eager",
                                &out);
  ASSERT_EQ(status, 0) << out;
  const Json r = Json::parse(out.substr(out.find('{')));
  EXPECT_EQ(r["compared_steps"].get<int>(), 30) << out;
  std::printf("replay: 30 steps, max |loss difference| %.3g\n", r["max_loss_diff"].get<double>());

  // Off by default: a run records nothing.
  ASSERT_EQ(run_chart(train + " --set run.dir=" + (dir / "plain").string() + " --set train.steps=2", &out), 0) << out;
  EXPECT_FALSE(fs::exists(dir / "plain" / "batches"));
}

}  // namespace
}  // namespace chart
