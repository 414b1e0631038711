// Attention test cases shared by the GPU kernel tests (test_attention_cuda.cpp) and the CPU
// emulator tests (test_attention_emulated.cpp): shapes, packed patient segments, error measure,
// and the comparison of an attention function's output and gradients with the reference.
#pragma once
#include <gtest/gtest.h>

#include <torch/torch.h>

#include <fmt/format.h>

#include <algorithm>
#include <functional>
#include <string>

#include "kernels/attention.h"

namespace chart {

struct Case {
  int64_t B, Hq, Hkv, L, D;
  int64_t patients;  // per row; 1: one patient fills the row
  bool bias;
  torch::ScalarType dtype;
  int64_t first_len = 0;  // > 0: exactly two patients per row, the first this long
};

inline std::string name(const Case& c) {
  return fmt::format("B{} Hq{} Hkv{} L{} D{} patients{} bias{} {}", c.B, c.Hq, c.Hkv, c.L, c.D, c.patients,
                     c.bias, c.dtype == torch::kBFloat16 ? "bf16" : "fp16");
}

// Contiguous patients of random lengths per row, the last row ending in padding (-1).
inline torch::Tensor make_segments(const Case& c) {
  auto seg = torch::empty({c.B, c.L}, torch::kInt32);
  if (c.first_len > 0) {
    seg.fill_(1);
    seg.narrow(1, 0, c.first_len).fill_(0);
    return seg;
  }
  for (int64_t b = 0; b < c.B; ++b) {
    int64_t pos = 0;
    for (int64_t s = 0; s < c.patients && pos < c.L; ++s) {
      int64_t len = s + 1 == c.patients ? c.L - pos : std::max<int64_t>(1, torch::randint(1, std::max<int64_t>(2, 2 * c.L / c.patients + 1), {1}).item<int64_t>());
      len = std::min(len, c.L - pos);
      seg[b].narrow(0, pos, len).fill_(static_cast<int>(s));
      pos += len;
    }
    if (b == c.B - 1 && c.L > 4) seg[b].narrow(0, c.L - c.L / 4, c.L / 4).fill_(-1);
  }
  return seg;
}

// Relative error of a against b: max |a - b| / max |b|. A gradient that is zero in exact
// arithmetic (with one visible key the softmax is constant, so dQ = dK = 0) is measured against
// 1e-2 instead of its own rounding noise (found by the emulator: L = 1 failed on 1e-7 noise).
inline double rel_err(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a.to(torch::kFloat32) - b.to(torch::kFloat32)).abs().max() / b.abs().max().clamp_min(1e-2)).item<double>();
}

// An attention function with kernels::attention's signature.
using AttentionFn = std::function<torch::Tensor(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                                const torch::Tensor& segments, const torch::Tensor& ages,
                                                const torch::Tensor& slopes)>;

// attention on c's inputs on `dev`, forward and backward through autograd, against the reference
// in fp32 on the same (upcast) inputs: the output and the gradients of q, k, v and slopes.
inline void expect_matches_reference(const Case& c, torch::Device dev, const AttentionFn& attention) {
  torch::manual_seed(c.L * 7 + c.D + c.patients);
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
  auto out = attention(q, k, v, seg, ages, slopes);
  auto dout = torch::randn_like(out);
  out.backward(dout);

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

}  // namespace chart
