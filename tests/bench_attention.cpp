// Attention kernel benchmark (GPU): chart's flash attention against LibTorch's
// scaled_dot_product_attention backends (flash, cuDNN, memory-efficient) on the same inputs in
// one run, causal, forward and forward+backward TFLOP/s, for L = 512..16k and head dims 64/128.
// Prints a markdown table. Not a test: scripts/gpu_check.sh. The clinical workload (patients
// packed per row, time-decay bias) is scripts/bench_attention_packed.py, which can put chart's
// kernels beside FlexAttention and varlen attention, Python's, in one process.
#include <ATen/Context.h>
#include <ATen/cuda/CUDAContext.h>
#include <torch/torch.h>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
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


}  // namespace

int main() {
  if (!torch::cuda::is_available()) {
    std::fprintf(stderr, "bench_attention: no CUDA GPU\n");
    return 2;
  }
  auto opts = torch::dtype(torch::kBFloat16).device(torch::kCUDA);
  const bool hopper = at::cuda::getCurrentDeviceProperties()->major == 9;
  std::printf("### Causal attention, bf16, one sequence per row (TFLOP/s; fwd+bwd counts 3.5x fwd)\n\n");
  std::printf("chart sm80: the mma.sync kernels; chart sm90: the wgmma forward (CHART_ATTENTION_SM90=1, sm_90 GPUs "
              "only) with the same backward; ratio: the best chart column over the best SDPA backend.\n\n");
  std::printf("| L | D | B x H | chart sm80 fwd | chart sm90 fwd | sdpa flash fwd | sdpa cudnn fwd | sdpa mem-eff fwd | "
              "fwd ratio | chart sm80 fwd+bwd | chart sm90 fwd+bwd | sdpa flash fwd+bwd | sdpa cudnn fwd+bwd | "
              "sdpa mem-eff fwd+bwd | fwd+bwd ratio |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  const char* backends[] = {"flash", "cudnn", "efficient"};
  for (int64_t D : {64, 128})
    for (int64_t L : {512, 1024, 2048, 4096, 8192, 16384}) {
      const int64_t H = 2048 / D, B = std::max<int64_t>(1, 16384 / L);
      auto q = torch::randn({B, H, L, D}, opts).requires_grad_();
      auto k = torch::randn({B, H, L, D}, opts).requires_grad_();
      auto v = torch::randn({B, H, L, D}, opts).requires_grad_();
      auto seg = torch::zeros({B, L}, torch::dtype(torch::kInt32).device(torch::kCUDA));
      auto dout = torch::randn({B, H, L, D}, opts);
      const double fwd_flops = 4.0 * B * H * L * L * D / 2;  // causal: half the square
      auto tflops = [](double flops, double ms) { return ms < 0 ? -1.0 : flops / (ms * 1e-3) / 1e12; };
      std::vector<double> fwd, both;  // chart sm80, chart sm90, then the SDPA backends
      for (bool sm90 : {false, true}) {
        if (sm90 && !hopper) {
          fwd.push_back(-1);
          both.push_back(-1);
          continue;
        }
        if (sm90) ::setenv("CHART_ATTENTION_SM90", "1", 1);
        fwd.push_back(tflops(fwd_flops, time_ms([&] { torch::NoGradGuard g; return chart::kernels::attention(q, k, v, seg, {}, {}); })));
        both.push_back(tflops(3.5 * fwd_flops, time_ms([&] {
          auto o = chart::kernels::attention(q, k, v, seg, {}, {});
          o.backward(dout);
          return o;
        })));
        ::unsetenv("CHART_ATTENTION_SM90");
      }
      for (const char* b : backends) {
        only_backend(b);
        fwd.push_back(tflops(fwd_flops, time_ms([&] { torch::NoGradGuard g; return at::scaled_dot_product_attention(q, k, v, {}, 0.0, true); })));
        both.push_back(tflops(3.5 * fwd_flops, time_ms([&] {
          auto o = at::scaled_dot_product_attention(q, k, v, {}, 0.0, true);
          o.backward(dout);
          return o;
        })));
      }
      auto show = [](double x) { return x < 0 ? std::string("n/a") : fmt::format("{:.0f}", x); };
      auto ratio = [](const std::vector<double>& x) {
        const double ours = std::max(x[0], x[1]), best = *std::max_element(x.begin() + 2, x.end());
        return ours <= 0 || best <= 0 ? std::string("n/a") : fmt::format("{:.2f}x", ours / best);
      };
      std::printf("| %lld | %lld | %lld x %lld |", (long long)L, (long long)D, (long long)B, (long long)H);
      for (double x : fwd) std::printf(" %s |", show(x).c_str());
      std::printf(" %s |", ratio(fwd).c_str());
      for (double x : both) std::printf(" %s |", show(x).c_str());
      std::printf(" %s |\n", ratio(both).c_str());
    }

  return 0;
}
