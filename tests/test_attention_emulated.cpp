// The flash attention kernels' own source run on the CPU SIMT emulator (kernels/simt_emulator.h)
// against the LibTorch reference in fp32 on upcast inputs: output, dQ, dK, dV and the time-slope
// gradient, bf16 and fp16, head dims 64 and 128, lengths across tile edges, many patients per
// row, with and without the time bias, grouped KV heads, outputs poisoned (NaN) first. This is
// what CI can check of the kernels without a GPU; test_attention_cuda.cpp runs them for real.
// The first tests show the emulator's own checks can fail.
#define CHART_SIMT_EMULATION 1
#include "kernels/flash_attention.h"

#include <gtest/gtest.h>

#include <torch/torch.h>

#include <cstdlib>
#include <cstring>
#include <random>

#include "kernels/attention.h"
#include "kernels/simt_emulator.h"
#include "tests/attention_cases.h"

namespace chart {
namespace {

// ---- The emulator itself.

TEST(SimtEmulator, MmaMatchesAMatrixProduct) {
  // A 16x16 times B 16x8 plus C, with the fragments laid out as the PTX ISA specifies.
  torch::manual_seed(1);
  auto A = torch::randn({16, 16}).to(torch::kBFloat16), B = torch::randn({16, 8}).to(torch::kBFloat16);
  auto C = torch::randn({16, 8});
  auto a = A.to(torch::kFloat32), b = B.to(torch::kFloat32);
  auto bits = [](const torch::Tensor& m, int r, int c) {
    uint16_t x;
    std::memcpy(&x, static_cast<const char*>(m.data_ptr()) + (r * m.size(1) + c) * 2, 2);
    return static_cast<uint32_t>(x);
  };
  auto pair = [&](const torch::Tensor& m, int r0, int c0, int r1, int c1) { return bits(m, r0, c0) | bits(m, r1, c1) << 16; };
  auto D = torch::zeros({16, 8});
  simt::launch(simt::dim3(1), simt::dim3(32), 0, [&] {
    const int lane = static_cast<int>(simt::me().thread_idx.x), g = lane / 4, t = lane % 4;
    const uint32_t fa[4] = {pair(A, g, 2 * t, g, 2 * t + 1), pair(A, g + 8, 2 * t, g + 8, 2 * t + 1),
                            pair(A, g, 2 * t + 8, g, 2 * t + 9), pair(A, g + 8, 2 * t + 8, g + 8, 2 * t + 9)};
    float d[4] = {C[g][2 * t].item<float>(), C[g][2 * t + 1].item<float>(), C[g + 8][2 * t].item<float>(),
                  C[g + 8][2 * t + 1].item<float>()};
    simt::mma_m16n8k16(true, d, fa, pair(B, 2 * t, g, 2 * t + 1, g), pair(B, 2 * t + 8, g, 2 * t + 9, g));
    D[g][2 * t] = d[0];
    D[g][2 * t + 1] = d[1];
    D[g + 8][2 * t] = d[2];
    D[g + 8][2 * t + 1] = d[3];
  });
  EXPECT_LT((D - (a.matmul(b) + C)).abs().max().item<float>(), 1e-5);
}

TEST(SimtEmulator, LdmatrixLoadsRowsAndTransposes) {
  std::vector<uint32_t> plain(32 * 4), trans(32 * 4);
  simt::launch(simt::dim3(1), simt::dim3(32), 4 * 8 * 8 * 2, [&] {
    auto* m = reinterpret_cast<uint16_t*>(simt::shared_memory());  // 4 matrices of 8x8, value = index
    const int lane = static_cast<int>(simt::me().thread_idx.x);
    for (int i = lane; i < 256; i += 32) m[i] = static_cast<uint16_t>(i);
    simt::syncthreads();
    uint32_t r[4], rt[4];
    simt::ldmatrix_x4(r, m + lane * 8, false);  // lane 8i + j: row j of matrix i
    simt::ldmatrix_x4(rt, m + lane * 8, true);
    for (int i = 0; i < 4; ++i) plain[lane * 4 + i] = r[i], trans[lane * 4 + i] = rt[i];
  });
  for (int lane = 0; lane < 32; ++lane)
    for (int i = 0; i < 4; ++i) {
      const uint32_t row = lane / 4, col = 2 * (lane % 4), base = i * 64;
      EXPECT_EQ(plain[lane * 4 + i], (base + row * 8 + col) | (base + row * 8 + col + 1) << 16);
      EXPECT_EQ(trans[lane * 4 + i], (base + col * 8 + row) | (base + (col + 1) * 8 + row) << 16);
    }
}

TEST(SimtEmulator, ReportsDivergenceDeadlockAndMisuse) {
  // Lanes of one warp at different collectives.
  EXPECT_THROW(simt::launch(simt::dim3(1), simt::dim3(32), 0,
                            [] {
                              if (simt::me().thread_idx.x < 16) simt::shfl_xor(1.f, 1);
                              else simt::all(true);
                            }),
               simt::EmulationError);
  // A lane that exits before a collective its warp waits in.
  EXPECT_THROW(simt::launch(simt::dim3(1), simt::dim3(32), 0,
                            [] {
                              if (simt::me().thread_idx.x != 3) simt::shfl_xor(1.f, 1);
                            }),
               simt::EmulationError);
  // ldmatrix from outside shared memory.
  EXPECT_THROW(simt::launch(simt::dim3(1), simt::dim3(32), 64,
                            [] {
                              alignas(16) uint16_t local[8] = {};
                              uint32_t r[4];
                              simt::ldmatrix_x4(r, local, false);
                            }),
               simt::EmulationError);
  // One thread waits in a shuffle its warp never joins; the rest wait at a barrier it never
  // reaches: nothing can move.
  EXPECT_THROW(simt::launch(simt::dim3(1), simt::dim3(64), 0,
                            [] {
                              if (simt::me().thread_idx.x == 40) simt::shfl_xor(1.f, 1);
                              else simt::syncthreads();
                            }),
               simt::EmulationError);
}

TEST(SimtEmulator, CpAsyncLandsOnlyWhenWaitedFor) {
  alignas(16) static float src[4] = {1, 2, 3, 4};
  float before = 0, after = 0;
  simt::launch(simt::dim3(1), simt::dim3(32), 64, [&] {
    auto* dst = reinterpret_cast<float*>(simt::shared_memory());
    if (simt::me().thread_idx.x == 0) {
      simt::cp_async_16(dst, src, 16);
      simt::cp_async_commit();
      before = dst[2];  // not landed: still the NaN poison
      simt::cp_async_wait(0);
      after = dst[2];
    }
  });
  EXPECT_TRUE(std::isnan(before));
  EXPECT_EQ(after, 3.f);
}

// ---- The kernels.

struct Grads {
  torch::Tensor out, dq, dk, dv, dslopes;
};

// One forward and one backward of the emulated kernels; every output starts as NaN.
// hopper: the forward is the sm_90a wgmma kernel (flash_attention_fwd_sm90.cu).
Grads run_emulated(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const torch::Tensor& seg,
                   const torch::Tensor& ages, const torch::Tensor& slopes, const torch::Tensor& dout, bool hopper) {
  const float nan = std::nanf("");
  auto seg_start = kernels::segment_starts(seg);
  Grads g;
  g.out = torch::full_like(q, nan);
  auto lse = torch::full({q.size(0), q.size(1), q.size(2)}, nan, torch::kFloat32);
  kernels::AttnParams p;
  p.q = q.data_ptr();
  p.k = k.data_ptr();
  p.v = v.data_ptr();
  p.o = g.out.data_ptr();
  p.lse = lse.data_ptr<float>();
  p.seg_start = seg_start.data_ptr<int32_t>();
  if (ages.defined()) {
    p.ages = ages.data_ptr<float>();
    p.slopes = slopes.data_ptr<float>();
  }
  p.B = static_cast<int>(q.size(0));
  p.Hq = static_cast<int>(q.size(1));
  p.Hkv = static_cast<int>(k.size(1));
  p.L = static_cast<int>(q.size(2));
  p.D = static_cast<int>(q.size(3));
  p.scale = 1.0f / std::sqrt(static_cast<float>(p.D));
  p.dtype = q.scalar_type() == torch::kBFloat16 ? kernels::AttnDtype::kBF16 : kernels::AttnDtype::kFP16;
  EXPECT_EQ(hopper ? kernels::flash_attention_forward_sm90(p, nullptr) : kernels::flash_attention_forward(p, nullptr), nullptr);
  EXPECT_FALSE(lse.isnan().any().item<bool>()) << "forward left a logsumexp unwritten";

  auto dq_accum = torch::zeros(q.sizes(), torch::kFloat32);
  auto delta = torch::full({q.size(0), q.size(1), q.size(2)}, nan, torch::kFloat32);
  g.dk = torch::full_like(k, nan);
  g.dv = torch::full_like(v, nan);
  p.dout = dout.data_ptr();
  p.delta = delta.data_ptr<float>();
  p.dq_accum = dq_accum.data_ptr<float>();
  p.dk = g.dk.data_ptr();
  p.dv = g.dv.data_ptr();
  if (ages.defined()) {
    g.dslopes = torch::zeros_like(slopes);
    p.dslopes = g.dslopes.data_ptr<float>();
  }
  EXPECT_EQ(kernels::flash_attention_backward(p, nullptr), nullptr);
  g.dq = dq_accum;
  return g;
}

void run_emulated_case(const Case& c, uint64_t schedule_seed = 0, bool hopper = false) {
  SCOPED_TRACE(name(c) + " first_len " + std::to_string(c.first_len) + " schedule " + std::to_string(schedule_seed) +
               (hopper ? " sm90 forward" : ""));
  simt::set_schedule_seed(schedule_seed);
  torch::manual_seed(c.L * 7 + c.D + c.patients);
  auto q = torch::randn({c.B, c.Hq, c.L, c.D}).to(c.dtype);
  auto k = torch::randn({c.B, c.Hkv, c.L, c.D}).to(c.dtype);
  auto v = torch::randn({c.B, c.Hkv, c.L, c.D}).to(c.dtype);
  auto seg = make_segments(c);
  torch::Tensor ages, slopes;
  if (c.bias) {
    ages = (torch::rand({c.B, c.L}) * 3.0).cumsum(1) / 50.0 + 40.0;  // increasing, ~days apart
    slopes = torch::rand({c.Hq}) * 0.5 + 0.05;
  }
  auto dout = torch::randn({c.B, c.Hq, c.L, c.D}).to(c.dtype);
  Grads got = run_emulated(q, k, v, seg, ages, slopes, dout, hopper);
  simt::set_schedule_seed(0);

  auto q32 = q.to(torch::kFloat32).requires_grad_();
  auto k32 = k.to(torch::kFloat32).requires_grad_();
  auto v32 = v.to(torch::kFloat32).requires_grad_();
  torch::Tensor s32;
  if (c.bias) s32 = slopes.clone().requires_grad_();
  auto ref = kernels::attention_reference(q32, k32, v32, seg, ages, s32);
  ref.backward(dout.to(torch::kFloat32));

  const double tol = c.dtype == torch::kBFloat16 ? 2e-2 : 4e-3;  // as the GPU test
  for (const auto* t : {&got.out, &got.dq, &got.dk, &got.dv})
    ASSERT_FALSE(t->isnan().any().item<bool>()) << "a position was left unwritten (NaN)";
  EXPECT_LT(rel_err(got.out, ref), tol);
  EXPECT_LT(rel_err(got.dq, q32.grad()), 2 * tol);
  EXPECT_LT(rel_err(got.dk, k32.grad()), 2 * tol);
  EXPECT_LT(rel_err(got.dv, v32.grad()), 2 * tol);
  if (c.bias) {
    EXPECT_LT(rel_err(got.dslopes, s32.grad()), 4 * tol);
  }
}

TEST(AttentionEmulated, MatchesTheReferenceBf16) {
  for (int64_t D : {64, 128}) {
    run_emulated_case({2, 2, 2, 1, D, 1, false, torch::kBFloat16});
    run_emulated_case({1, 4, 2, 17, D, 1, true, torch::kBFloat16});
    run_emulated_case({2, 2, 1, 127, D, 3, false, torch::kBFloat16});
    run_emulated_case({1, 2, 2, 200, D, 20, true, torch::kBFloat16});  // many short patients per row
    // A patient starting on the last key of a key tile (63), and on a tile edge (64).
    run_emulated_case({1, 2, 2, 130, D, 2, true, torch::kBFloat16, 63});
    run_emulated_case({1, 2, 1, 130, D, 2, false, torch::kBFloat16, 64});
  }
}

TEST(AttentionEmulated, MatchesTheReferenceFp16) {
  for (int64_t D : {64, 128}) {
    run_emulated_case({1, 4, 1, 70, D, 2, true, torch::kFloat16});
    run_emulated_case({2, 2, 2, 129, D, 5, false, torch::kFloat16});
  }
}

TEST(AttentionEmulated, MatchesTheReferenceUnderShuffledSchedules) {
  // Warps drifting apart and cp.async landing early or late: a missing barrier or wait shows.
  run_emulated_case({1, 2, 1, 150, 64, 3, true, torch::kBFloat16}, 7);
  run_emulated_case({1, 2, 1, 300, 64, 1, true, torch::kBFloat16}, 5);  // 4 key tiles: both buffers reused
  run_emulated_case({1, 2, 2, 150, 128, 1, false, torch::kFloat16}, 11);
}

TEST(AttentionEmulated, HopperForwardMatchesTheReference) {
  // The wgmma kernel: 128 query rows per block, 128-byte-swizzled operands read by descriptor.
  for (int64_t D : {64, 128}) {
    run_emulated_case({1, 2, 1, 1, D, 1, false, torch::kBFloat16}, 0, true);
    run_emulated_case({1, 4, 2, 200, D, 20, true, torch::kBFloat16}, 0, true);
    run_emulated_case({2, 2, 2, 130, D, 2, true, torch::kFloat16, 63}, 0, true);
    run_emulated_case({1, 2, 1, 300, D, 1, true, torch::kBFloat16}, 3, true);  // skewed schedule, 5 key tiles
  }
}

TEST(AttentionEmulated, RandomShapes) {
  // Random shapes, patients, GQA ratios, dtypes, kernels and schedules. CI runs a few;
  // CHART_EMULATOR_CASES=N (and CHART_EMULATOR_SEED) runs a longer sweep by hand.
  const char* n_env = std::getenv("CHART_EMULATOR_CASES");
  const char* seed_env = std::getenv("CHART_EMULATOR_SEED");
  const int n = n_env ? std::atoi(n_env) : 4;
  std::mt19937 rng(seed_env ? static_cast<unsigned>(std::atoi(seed_env)) : 2026u);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  for (int i = 0; i < n; ++i) {
    const int64_t hkv = pick(1, 2), hq = hkv * pick(1, 3), L = pick(1, 400);
    Case c{pick(1, 2), hq, hkv, L, pick(0, 1) ? 64 : 128, pick(1, 12), pick(0, 1) == 1,
           pick(0, 1) ? torch::kBFloat16 : torch::kFloat16};
    run_emulated_case(c, pick(0, 2) == 0 ? 0 : static_cast<uint64_t>(pick(1, 1000)), pick(0, 1) == 1);
  }
}

}  // namespace
}  // namespace chart
