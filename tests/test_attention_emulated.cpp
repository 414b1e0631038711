// The flash attention kernels' own source run on the CPU SIMT emulator (kernels/simt_emulator.h)
// against the LibTorch reference in fp32 on upcast inputs: output, dQ, dK, dV and the time-slope
// gradient, bf16 and fp16, head dims 64 and 128, lengths across tile edges, many patients per
// row, with and without the time bias, grouped KV heads, outputs poisoned (NaN) first; then the
// autograd wrapper the model runs (kernels/flash_autograd.h) around the same kernels, forward and
// backward. This is what CI can check of the kernels without a GPU; test_attention_cuda.cpp runs
// them for real. The first tests show the emulator's own checks can fail.
#define CHART_SIMT_EMULATION 1
#include "kernels/flash_attention.h"

#include <gtest/gtest.h>

#include <torch/torch.h>

#include <cstdlib>
#include <cstring>
#include <random>

#include "core/error.h"
#include "kernels/attention.h"
#include "kernels/attention_check.h"
#include "kernels/attention_emulated.h"
#include "kernels/flash_launch.h"
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
  Grads g;
  kernels::FlashTensors t;
  t.q = q, t.k = k, t.v = v, t.ages = ages, t.slopes = slopes;
  t.seg_start = kernels::segment_starts(seg);
  t.o = g.out = torch::full_like(q, nan);
  t.lse = torch::full({q.size(0), q.size(1), q.size(2)}, nan, torch::kFloat32);
  kernels::AttnParams p = kernels::attention_params(t);
  EXPECT_EQ(hopper ? kernels::flash_attention_forward_sm90(p, nullptr) : kernels::flash_attention_forward(p, nullptr), nullptr);
  EXPECT_FALSE(t.lse.isnan().any().item<bool>()) << "forward left a logsumexp unwritten";

  t.dout = dout;
  t.dq_accum = g.dq = torch::zeros(q.sizes(), torch::kFloat32);
  t.delta = torch::full({q.size(0), q.size(1), q.size(2)}, nan, torch::kFloat32);
  t.dk = g.dk = torch::full_like(k, nan);
  t.dv = g.dv = torch::full_like(v, nan);
  if (ages.defined()) t.dslopes = g.dslopes = torch::zeros_like(slopes);
  p = kernels::attention_params(t);
  EXPECT_EQ(kernels::flash_attention_backward(p, nullptr), nullptr);
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

// ---- The autograd wrapper around them (the one kernels::attention() runs on a GPU).

TEST(AttentionEmulated, TheAutogradWrapperMatchesTheReference) {
  // The GPU test's comparison (attention_cases.h) on CPU tensors: output and the gradients of q,
  // k, v and slopes through autograd. Small shapes: the emulator is slow.
  const struct {
    Case c;
    bool sm90;
  } cases[] = {{{1, 4, 2, 70, 64, 2, true, torch::kBFloat16}, false},
               {{2, 2, 1, 33, 128, 1, false, torch::kFloat16}, false},
               {{1, 2, 2, 70, 64, 3, true, torch::kBFloat16}, true}};
  for (const auto& [c, sm90] : cases) {
    SCOPED_TRACE(name(c) + (sm90 ? " sm90 forward" : ""));
    expect_matches_reference(c, torch::kCPU,
                             [sm90 = sm90](const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                           const torch::Tensor& seg, const torch::Tensor& ages,
                                           const torch::Tensor& slopes) {
                               return kernels::attention_emulated(q, k, v, seg, ages, slopes, sm90);
                             });
  }
}

TEST(AttentionEmulated, TheWrapperCopiesStridedAndMisalignedInputs) {
  // q as the model makes it (a transposed [B, L, H, D] view) and k one element into its storage
  // (not 16-byte aligned): the same output and gradients as contiguous, aligned copies.
  torch::manual_seed(5);
  const int64_t B = 1, H = 2, L = 40, D = 64, n = B * H * L * D;
  auto qb = torch::randn({B, L, H, D}).to(torch::kBFloat16).requires_grad_();
  auto kb = torch::randn({n + 1}).to(torch::kBFloat16).requires_grad_();
  auto v = torch::randn({B, H, L, D}).to(torch::kBFloat16);
  auto q = qb.transpose(1, 2), k = kb.narrow(0, 1, n).view({B, H, L, D});
  ASSERT_FALSE(q.is_contiguous());
  ASSERT_NE(reinterpret_cast<uintptr_t>(k.data_ptr()) % 16, 0u);
  auto seg = torch::zeros({B, L}, torch::kInt32);
  auto ages = torch::linspace(40, 41, L).view({B, L});
  auto slopes = torch::full({H}, 0.1f);
  auto dout = torch::randn({B, H, L, D}).to(torch::kBFloat16);
  auto out = kernels::attention_emulated(q, k, v, seg, ages, slopes);
  out.backward(dout);

  auto q2 = q.detach().contiguous().requires_grad_(), k2 = k.detach().clone().requires_grad_();
  auto out2 = kernels::attention_emulated(q2, k2, v, seg, ages, slopes);
  out2.backward(dout);
  EXPECT_TRUE(torch::equal(out, out2));
  EXPECT_TRUE(torch::equal(qb.grad().transpose(1, 2), q2.grad()));
  EXPECT_TRUE(torch::equal(kb.grad().narrow(0, 1, n).view({B, H, L, D}), k2.grad()));
  EXPECT_EQ(kb.grad()[0].item<float>(), 0.f);
}

TEST(AttentionEmulated, TheWrapperRefusesWhatTheKernelsDoNotTake) {
  auto q = torch::zeros({1, 2, 8, 64}, torch::kBFloat16), seg = torch::zeros({1, 8}, torch::kInt32);
  auto call = [&](const torch::Tensor& qq, const torch::Tensor& kv) { kernels::attention_emulated(qq, kv, kv, seg, {}, {}); };
  EXPECT_THROW(call(q.to(torch::kFloat32), q.to(torch::kFloat32)), c10::Error);                 // fp32
  EXPECT_THROW(call(q.narrow(3, 0, 32), q.narrow(3, 0, 32)), c10::Error);                       // head dim 32
  EXPECT_THROW(call(q, torch::zeros({1, 3, 8, 64}, torch::kBFloat16)), c10::Error);             // 2 heads over 3 KV heads
  EXPECT_THROW(kernels::attention_emulated(q, q, q, seg, torch::zeros({1, 8}), torch::zeros({3})), c10::Error);  // slopes not [Hq]
  EXPECT_EQ(kernels::attention_emulated(q.narrow(2, 0, 0), q.narrow(2, 0, 0), q.narrow(2, 0, 0),
                                        seg.narrow(1, 0, 0), {}, {}).sizes(),
            (std::vector<int64_t>{1, 2, 0, 64}));  // empty: no launch
}

// ---- The trainer's start-up self-check (kernels/attention_check.h), on the emulated kernels.

TEST(AttentionEmulated, TheSelfCheckPassesTheKernelsAndCatchesAWrongOne) {
  torch::manual_seed(9);
  const Case c{2, 4, 2, 300, 64, 3, true, torch::kBFloat16};
  auto q = torch::randn({c.B, c.Hq, c.L, c.D}).to(c.dtype), k = torch::randn({c.B, c.Hkv, c.L, c.D}).to(c.dtype);
  auto v = torch::randn({c.B, c.Hkv, c.L, c.D}).to(c.dtype);
  auto seg = make_segments(c);
  auto ages = torch::rand({c.B, c.L}).cumsum(1) * 0.01 + 40.0;
  auto slopes = torch::rand({c.Hq}) * 0.1;
  const kernels::AttentionFn emulated = [](const auto& q_, const auto& k_, const auto& v_, const auto& s_,
                                           const auto& a_, const auto& sl_) {
    return kernels::attention_emulated(q_, k_, v_, s_, a_, sl_);
  };
  const auto good = kernels::compare_attention(emulated, q, k, v, seg, ages, slopes, /*max_len=*/96);
  EXPECT_TRUE(good.ok()) << good.describe();
  EXPECT_GT(good.output_error, 0) << "bf16 kernels against an fp32 reference cannot agree exactly";
  EXPECT_NO_THROW(kernels::require_attention_agrees(good, "emulated kernels"));
  // A kernel that drops the time-decay bias: what a broken build would do, caught and named.
  const kernels::AttentionFn no_bias = [&](const auto& q_, const auto& k_, const auto& v_, const auto& s_,
                                           const auto& a_, const auto& sl_) {
    return kernels::attention_emulated(q_, k_, v_, s_, torch::Tensor(), torch::Tensor()) + 0 * sl_.sum();
  };
  const auto bad = kernels::compare_attention(no_bias, q, k, v, seg, ages, slopes * 50, 96);
  EXPECT_FALSE(bad.ok()) << bad.describe();
  try {
    kernels::require_attention_agrees(bad, "emulated kernels");
    ADD_FAILURE() << "a wrong kernel passed the self-check";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("attention self-check failed: emulated kernels disagrees"), std::string::npos)
        << e.what();
    EXPECT_NE(e.hint().find("model.attention=reference"), std::string::npos);
  }
}

}  // namespace
}  // namespace chart
