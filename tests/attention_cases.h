// Attention test cases shared by the GPU kernel tests (test_attention_cuda.cpp) and the CPU
// emulator tests (test_attention_emulated.cpp): shapes, packed patient segments, error measure.
#pragma once
#include <torch/torch.h>

#include <fmt/format.h>

#include <algorithm>
#include <string>

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

}  // namespace chart
