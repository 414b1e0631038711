// The CUDA flash attention kernels against the LibTorch reference computed in fp32 on upcast
// inputs: output, dQ, dK, dV and the time-slope gradient, for bf16 and fp16, head dims 64 and
// 128, lengths 1 to 1000+, one long patient or many short ones per row, with and without the
// time bias, with grouped KV heads. Outputs are poisoned (NaN) before each run, so a position
// the kernel forgets to write fails. Skipped, saying so, where there is no GPU.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include <fmt/format.h>

#include "kernels/attention.h"
#include "tests/attention_cases.h"
#include "kernels/kernels.h"

#ifdef CHART_HAVE_CUDA
#include <ATen/cuda/CUDAContext.h>

#include "kernels/flash_attention.h"
#endif

namespace chart {
namespace {

bool have_gpu() { return kernels::cuda_kernels_built() && torch::cuda::is_available(); }

void run_case(const Case& c) {
  SCOPED_TRACE(name(c) + " first_len " + std::to_string(c.first_len));
  torch::manual_seed(c.L * 7 + c.D + c.patients);
  auto dev = torch::Device(torch::kCUDA);
  auto f32 = torch::dtype(torch::kFloat32).device(dev);
  auto q = torch::randn({c.B, c.Hq, c.L, c.D}, f32).to(c.dtype).requires_grad_();
  auto k = torch::randn({c.B, c.Hkv, c.L, c.D}, f32).to(c.dtype).requires_grad_();
  auto v = torch::randn({c.B, c.Hkv, c.L, c.D}, f32).to(c.dtype).requires_grad_();
  auto seg = make_segments(c).to(dev);
  torch::Tensor ages, slopes;
  if (c.bias) {
    ages = (torch::rand({c.B, c.L}, f32) * 3.0).cumsum(1) / 50.0 + 40.0;  // increasing, ~days apart
    slopes = (torch::rand({c.Hq}, f32) * 0.5 + 0.05).requires_grad_();
  }
  ASSERT_STREQ(kernels::attention_path(q), "cuda");
  auto out = kernels::attention(q, k, v, seg, ages, slopes);
  auto dout = torch::randn_like(out);
  out.backward(dout);

  // The reference in fp32 on the same (upcast) inputs.
  auto q32 = q.detach().to(torch::kFloat32).requires_grad_();
  auto k32 = k.detach().to(torch::kFloat32).requires_grad_();
  auto v32 = v.detach().to(torch::kFloat32).requires_grad_();
  torch::Tensor s32;
  if (c.bias) s32 = slopes.detach().clone().requires_grad_();
  auto ref = kernels::attention_reference(q32, k32, v32, seg, ages, s32);
  ref.backward(dout.to(torch::kFloat32));

  const double tol = c.dtype == torch::kBFloat16 ? 2e-2 : 4e-3;  // bf16 keeps 8 bits, fp16 11
  EXPECT_FALSE(out.isnan().any().item<bool>());
  EXPECT_LT(rel_err(out, ref), tol);
  EXPECT_LT(rel_err(q.grad(), q32.grad()), 2 * tol);
  EXPECT_LT(rel_err(k.grad(), k32.grad()), 2 * tol);
  EXPECT_LT(rel_err(v.grad(), v32.grad()), 2 * tol);
  if (c.bias) {
    EXPECT_LT(rel_err(slopes.grad(), s32.grad()), 4 * tol);
  }
}

TEST(AttentionCuda, MatchesTheReference) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA GPU (or a CPU-only build): the CUDA attention kernels are not run";
  if (std::getenv("CHART_ATTENTION_REFERENCE")) GTEST_SKIP() << "CHART_ATTENTION_REFERENCE is set: the kernels are off";
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
  if (std::getenv("CHART_ATTENTION_REFERENCE")) GTEST_SKIP() << "CHART_ATTENTION_REFERENCE is set: the kernels are off";
  if (at::cuda::getCurrentDeviceProperties()->major != 9) GTEST_SKIP() << "not an sm_90 GPU: the wgmma forward does not apply";
  ::setenv("CHART_ATTENTION_SM90", "1", 1);
  auto probe = torch::zeros({1, 1, 1, 64}, torch::dtype(torch::kBFloat16).device(torch::kCUDA));
  EXPECT_STREQ(kernels::cuda_forward_kernel(probe), "sm90");
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
    auto seg_start = torch::zeros({1, L}, q.options().dtype(torch::kInt32));
    kernels::AttnParams p;
    p.q = q.data_ptr(); p.k = k.data_ptr(); p.v = v.data_ptr(); p.o = o.data_ptr();
    p.lse = lse.data_ptr<float>(); p.seg_start = seg_start.data_ptr<int32_t>();
    p.B = 1; p.Hq = 2; p.Hkv = 1; p.L = static_cast<int>(L); p.D = 64; p.scale = 0.125f;
    ASSERT_EQ(kernels::flash_attention_forward(p, at::cuda::getCurrentCUDAStream().stream()), nullptr);
    EXPECT_FALSE(o.isnan().any().item<bool>()) << "L=" << L;
    EXPECT_FALSE(lse.isnan().any().item<bool>()) << "L=" << L;
  }
#endif
}

TEST(AttentionCuda, TheModelUsesTheKernelsOnAGpu) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA GPU (or a CPU-only build): the CUDA attention kernels are not run";
  auto q = torch::randn({1, 2, 8, 64}, torch::dtype(torch::kBFloat16).device(torch::kCUDA));
  EXPECT_STREQ(kernels::attention_path(q), "cuda");
  EXPECT_STREQ(kernels::attention_path(q.to(torch::kFloat32)), "reference");  // fp32: the reference path
}

}  // namespace
}  // namespace chart
