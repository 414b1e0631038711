// The CUDA flash attention kernels against the LibTorch reference computed in fp32 on upcast
// inputs: output, dQ, dK, dV and the time-slope gradient, for bf16 and fp16, head dims 64 and
// 128, lengths 1 to 1000+, one long patient or many short ones per row, with and without the
// time bias, with grouped KV heads. Outputs are poisoned (NaN) before each run, so a position
// the kernel forgets to write fails. Skipped, saying so, where there is no GPU.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include <ATen/autocast_mode.h>

#include <fmt/format.h>

#include "kernels/attention.h"
#include "kernels/attention_dispatch.h"
#include "kernels/kernels.h"
#include "model/transformer.h"
#include "tests/attention_cases.h"

#ifdef CHART_HAVE_CUDA
#include <ATen/cuda/CUDAContext.h>

#include "kernels/flash_attention.h"
#include "kernels/flash_launch.h"
#endif

namespace chart {
namespace {

bool have_gpu() { return kernels::cuda_kernels_built() && torch::cuda::is_available(); }

void run_case(const Case& c) {
  SCOPED_TRACE(name(c) + " first_len " + std::to_string(c.first_len));
  auto dev = torch::Device(torch::kCUDA);
  ASSERT_TRUE(kernels::attention_path(dev, c.dtype, c.D).cuda());
  expect_matches_reference(c, dev, [](const auto& q, const auto& k, const auto& v, const auto& s, const auto& a,
                                      const auto& sl) { return kernels::attention(q, k, v, s, a, sl); });
}

TEST(AttentionCuda, MatchesTheReference) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA GPU (or a CPU-only build): the CUDA attention kernels are not run";
  if (kernels::attention_switches().reference) GTEST_SKIP() << "CHART_ATTENTION_REFERENCE=1: the kernels are off";
  for (auto dtype : {torch::kBFloat16, torch::kFloat16})
    for (int64_t D : {64, 128}) {
      run_case({2, 4, 4, 1, D, 1, false, dtype});
      run_case({2, 4, 2, 17, D, 1, true, dtype});
      run_case({2, 4, 1, 127, D, 3, false, dtype});
      run_case({1, 8, 2, 1031, D, 1, true, dtype});
      run_case({2, 4, 4, 1000, D, 40, true, dtype});  // many short patients per row
      run_case({1, 2, 2, 2048, D, 7, false, dtype});
      // A patient starting on the last key of a key tile (63): the backward's stopping rule edge.
      run_case({1, 2, 2, 130, D, 2, true, dtype, 63});
      run_case({1, 2, 1, 130, D, 2, false, dtype, 64});
    }
}

TEST(AttentionCuda, HopperForwardMatchesTheReference) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA GPU (or a CPU-only build): the CUDA attention kernels are not run";
  if (kernels::attention_switches().reference) GTEST_SKIP() << "CHART_ATTENTION_REFERENCE=1: the kernels are off";
  if (at::cuda::getCurrentDeviceProperties()->major != 9) GTEST_SKIP() << "not an sm_90 GPU: the wgmma forward does not apply";
  ::setenv("CHART_ATTENTION_SM90", "1", 1);
  auto probe = torch::zeros({1, 1, 1, 64}, torch::dtype(torch::kBFloat16).device(torch::kCUDA));
  EXPECT_EQ(kernels::attention_path(probe).kind, kernels::AttentionPath::kCudaSm90);
  for (auto dtype : {torch::kBFloat16, torch::kFloat16})
    for (int64_t D : {64, 128}) {
      run_case({2, 4, 4, 1, D, 1, false, dtype});
      run_case({2, 4, 2, 17, D, 1, true, dtype});
      run_case({1, 8, 2, 1031, D, 1, true, dtype});
      run_case({2, 4, 4, 1000, D, 40, true, dtype});
      run_case({1, 2, 2, 2048, D, 7, false, dtype});
      run_case({1, 2, 2, 200, D, 2, true, dtype, 127});  // a patient starting on the last row of a 128-row block
    }
  ::unsetenv("CHART_ATTENTION_SM90");
}

TEST(AttentionCuda, WritesEveryOutputPosition) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA GPU (or a CPU-only build): the CUDA attention kernels are not run";
#ifdef CHART_HAVE_CUDA
  // Call the kernel directly on NaN-poisoned outputs, so an unwritten position shows.
  for (int64_t L : {1, 63, 64, 65, 300}) {
    auto dev = torch::Device(torch::kCUDA);
    auto q = torch::randn({1, 2, L, 64}, torch::dtype(torch::kBFloat16).device(dev));
    auto k = torch::randn({1, 1, L, 64}, q.options()), v = torch::randn({1, 1, L, 64}, q.options());
    auto o = torch::full_like(q, std::nanf(""));
    auto lse = torch::full({1, 2, L}, std::nanf(""), q.options().dtype(torch::kFloat32));
    kernels::FlashTensors t;
    t.q = q, t.k = k, t.v = v, t.o = o, t.lse = lse;
    t.seg_start = torch::zeros({1, L}, q.options().dtype(torch::kInt32));
    const kernels::AttnParams p = kernels::attention_params(t);
    ASSERT_EQ(kernels::flash_attention_forward(p, at::cuda::getCurrentCUDAStream().stream()), nullptr);
    EXPECT_FALSE(o.isnan().any().item<bool>()) << "L=" << L;
    EXPECT_FALSE(lse.isnan().any().item<bool>()) << "L=" << L;
  }
#endif
}

TEST(AttentionCuda, TheModelTrainsThroughTheKernelsAsThroughTheReference) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA GPU (or a CPU-only build): the CUDA attention kernels are not run";
  // The same model (packed patients, time-decay bias, GQA) twice: model.attention=kernels and
  // =reference, the same weights, one forward and backward in bf16 each; logits and every
  // parameter's gradient must agree within bf16 tolerance, and the self-check must pass.
  ModelConfig mc;
  mc.d_model = 128, mc.n_layers = 2, mc.n_heads = 2, mc.n_kv_heads = 1, mc.context = 192, mc.time_bias = true;
  const int64_t V = 300, B = 2, L = mc.context;
  auto run = [&](const std::string& mode, bool check) {
    torch::manual_seed(3);
    ModelConfig c = mc;
    c.attention = mode;
    ClinicalTransformer model(c, V);
    model->to(torch::kCUDA);
    EXPECT_EQ(model->attention_path(torch::kCUDA, torch::kBFloat16).cuda(), mode == "kernels");
    if (check) model->check_attention_on_next_forward();
    torch::manual_seed(4);
    auto tokens = torch::randint(0, V, {B, L}, torch::kInt64).cuda();
    auto ages = (torch::rand({B, L}).cumsum(1) * 0.01 + 30).cuda();
    auto segments = (torch::arange(L, torch::kInt32) / 50).expand({B, L}).contiguous().cuda();
    torch::Tensor logits;
    {
      at::autocast::set_autocast_enabled(at::kCUDA, true);
      at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
      logits = model->forward(tokens, ages, segments).logits.to(torch::kFloat32);
      at::autocast::set_autocast_enabled(at::kCUDA, false);
      at::autocast::clear_cache();
    }
    logits.logsumexp(-1).mean().backward();
    std::vector<torch::Tensor> grads;
    for (const auto& p : model->parameters()) grads.push_back(p.grad().defined() ? p.grad().clone() : torch::zeros_like(p));
    return std::pair{logits.detach(), grads};
  };
  const auto [kl, kg] = run("kernels", /*check=*/true);
  const auto [rl, rg] = run("reference", false);
  EXPECT_LT(rel_err(kl, rl), 3e-2);
  ASSERT_EQ(kg.size(), rg.size());
  for (size_t i = 0; i < kg.size(); ++i) EXPECT_LT(rel_err(kg[i], rg[i]), 1e-1) << "parameter " << i;
}

}  // namespace
}  // namespace chart
