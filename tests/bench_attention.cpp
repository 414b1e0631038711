// Attention kernel benchmark (GPU): chart's flash attention against LibTorch's
// scaled_dot_product_attention backends (flash, cuDNN, memory-efficient) on the same inputs in
// one run, causal, forward and forward+backward TFLOP/s, for L = 1k..16k and head dims 64/128;
// then the clinical workload (many patients packed per row, time-decay bias) against SDPA with
// the equivalent materialised mask. Prints markdown tables. Not a test: scripts/gpu_check.sh.
#include <ATen/Context.h>
#include <torch/torch.h>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>

#include "kernels/attention.h"

namespace {

using Fn = std::function<torch::Tensor()>;

// Median milliseconds of fn over `iters` runs after warm-up; -1 if it throws (backend refused).
double time_ms(const Fn& fn, int iters = 10) {
  try {
    for (int i = 0; i < 3; ++i) fn();
    torch::cuda::synchronize();
    std::vector<double> t;
    for (int i = 0; i < iters; ++i) {
      auto start = std::chrono::steady_clock::now();
      fn();
      torch::cuda::synchronize();
      t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
    }
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
  } catch (const std::exception&) {
    return -1;
  }
}

void only_backend(const char* name) {
  auto& c = at::globalContext();
  c.setSDPUseFlash(std::string(name) == "flash");
  c.setSDPUseCuDNN(std::string(name) == "cudnn");
  c.setSDPUseMemEfficient(std::string(name) == "efficient");
  c.setSDPUseMath(std::string(name) == "math");
}

std::string cell(double flops, double ms) { return ms < 0 ? "n/a" : fmt::format("{:.0f}", flops / (ms * 1e-3) / 1e12); }

}  // namespace

int main() {
  if (!torch::cuda::is_available()) {
    std::fprintf(stderr, "bench_attention: no CUDA GPU\n");
    return 2;
  }
  auto opts = torch::dtype(torch::kBFloat16).device(torch::kCUDA);
  std::printf("### Causal attention, bf16, one sequence per row (TFLOP/s; fwd+bwd counts 3.5x fwd)\n\n");
  std::printf("| L | D | B x H | chart fwd | sdpa flash fwd | sdpa cudnn fwd | sdpa mem-eff fwd | chart fwd+bwd | sdpa flash fwd+bwd | sdpa cudnn fwd+bwd | sdpa mem-eff fwd+bwd |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|\n");
  const char* backends[] = {"flash", "cudnn", "efficient"};
  for (int64_t D : {64, 128})
    for (int64_t L : {1024, 2048, 4096, 8192, 16384}) {
      const int64_t H = 2048 / D, B = std::max<int64_t>(1, 16384 / L);
      auto q = torch::randn({B, H, L, D}, opts).requires_grad_();
      auto k = torch::randn({B, H, L, D}, opts).requires_grad_();
      auto v = torch::randn({B, H, L, D}, opts).requires_grad_();
      auto seg = torch::zeros({B, L}, torch::dtype(torch::kInt32).device(torch::kCUDA));
      auto dout = torch::randn({B, H, L, D}, opts);
      const double fwd_flops = 4.0 * B * H * L * L * D / 2;  // causal: half the square
      std::vector<std::string> fwd, both;
      fwd.push_back(cell(fwd_flops, time_ms([&] { torch::NoGradGuard g; return chart::kernels::attention(q, k, v, seg, {}, {}); })));
      both.push_back(cell(3.5 * fwd_flops, time_ms([&] {
        auto o = chart::kernels::attention(q, k, v, seg, {}, {});
        o.backward(dout);
        return o;
      })));
      for (const char* b : backends) {
        only_backend(b);
        fwd.push_back(cell(fwd_flops, time_ms([&] { torch::NoGradGuard g; return at::scaled_dot_product_attention(q, k, v, {}, 0.0, true); })));
        both.push_back(cell(3.5 * fwd_flops, time_ms([&] {
          auto o = at::scaled_dot_product_attention(q, k, v, {}, 0.0, true);
          o.backward(dout);
          return o;
        })));
      }
      std::printf("| %lld | %lld | %lld x %lld | %s | %s | %s | %s | %s | %s | %s | %s |\n", (long long)L, (long long)D,
                  (long long)B, (long long)H, fwd[0].c_str(), fwd[1].c_str(), fwd[2].c_str(), fwd[3].c_str(),
                  both[0].c_str(), both[1].c_str(), both[2].c_str(), both[3].c_str());
    }

  std::printf("\n### Packed patients with time-decay bias, bf16, D=64 (ms; SDPA gets the materialised [B,H,L,L] mask)\n\n");
  std::printf("| L | patients/row | chart fwd | sdpa fwd (best backend) | speed-up | chart fwd+bwd | sdpa fwd+bwd | speed-up |\n|---|---|---|---|---|---|---|---|\n");
  for (int64_t L : {2048, 4096, 8192}) {
    const int64_t B = std::max<int64_t>(1, 8192 / L), H = 12, D = 64, P = L / 64;
    auto q = torch::randn({B, H, L, D}, opts).requires_grad_();
    auto k = torch::randn({B, H, L, D}, opts).requires_grad_();
    auto v = torch::randn({B, H, L, D}, opts).requires_grad_();
    auto seg = (torch::arange(L, torch::dtype(torch::kInt32).device(torch::kCUDA)) / (L / P)).expand({B, L}).contiguous();
    auto ages = (torch::rand({B, L}, torch::dtype(torch::kFloat32).device(torch::kCUDA)) * 3).cumsum(1) / 50 + 40;
    auto slopes = torch::rand({H}, torch::dtype(torch::kFloat32).device(torch::kCUDA)).requires_grad_();
    auto dout = torch::randn({B, H, L, D}, opts);
    double ours_f = time_ms([&] { torch::NoGradGuard g; return chart::kernels::attention(q, k, v, seg, ages, slopes); });
    double ours_b = time_ms([&] {
      auto o = chart::kernels::attention(q, k, v, seg, ages, slopes);
      o.backward(dout);
      return o;
    });
    double best_f = 1e30, best_b = 1e30;
    for (const char* b : {"efficient", "cudnn", "math"}) {
      only_backend(b);
      double f = time_ms([&] { torch::NoGradGuard g; return chart::kernels::attention_reference(q, k, v, seg, ages, slopes); }, 5);
      double fb = time_ms([&] {
        auto o = chart::kernels::attention_reference(q, k, v, seg, ages, slopes);
        o.backward(dout);
        return o;
      }, 5);
      if (f > 0) best_f = std::min(best_f, f);
      if (fb > 0) best_b = std::min(best_b, fb);
    }
    std::printf("| %lld | %lld | %.2f | %.2f | %.1fx | %.2f | %.2f | %.1fx |\n", (long long)L, (long long)P, ours_f, best_f,
                best_f / ours_f, ours_b, best_b, best_b / ours_b);
  }
  return 0;
}
