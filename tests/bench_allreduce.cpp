// All-reduce bandwidth of chart's process group, the communication input of docs/scaling.md.
// Launch as training is launched, one process per rank:
//   torchrun --nproc-per-node=2 --no-python build/bench_allreduce [cpu|cuda] [fp32|bf16]
// Prints, per message size, the time of one blocking all-reduce (median of 10) and the bus
// bandwidth 2 (W-1)/W x bytes / time, the figure NCCL's nccl-tests report.
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>

#include "core/config.h"
#include "core/error.h"
#include "train/distributed/dist.h"

int main(int argc, char** argv) try {
  const std::string where = argc > 1 ? argv[1] : "cpu";
  const auto dtype = argc > 2 && std::string(argv[2]) == "bf16" ? torch::kBFloat16 : torch::kFloat32;
  torch::set_num_threads(1);
  chart::LaunchEnv env = chart::launch_env();
  torch::Device device = where == "cuda" ? torch::Device(torch::kCUDA, env.local_rank) : torch::Device(torch::kCPU);
  chart::DistConfig cfg;
  chart::Dist dist(env, cfg, device);
  if (!dist.active()) chart::fail("launch with torchrun (or RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT)");
  const int W = dist.world_size();
  if (dist.is_main()) std::printf("| MiB | ms per all-reduce | bus GB/s |\n| --- | --- | --- |\n");
  for (double mib : {0.25, 1.0, 4.0, 16.0, 64.0}) {
    const int64_t n = static_cast<int64_t>(mib * (1 << 20)) / static_cast<int64_t>(c10::elementSize(dtype));
    auto t = torch::ones({n}, torch::TensorOptions().dtype(dtype).device(device));
    std::vector<double> ms;
    for (int i = 0; i < 13; ++i) {
      dist.barrier();
      auto start = std::chrono::steady_clock::now();
      dist.all_reduce_sum(t);
      if (device.is_cuda()) t.sum().item<float>();  // waits for the collective
      double el = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
      if (i >= 3) ms.push_back(el);
    }
    std::sort(ms.begin(), ms.end());
    const double med = ms[ms.size() / 2];
    const double bus = 2.0 * (W - 1) / W * static_cast<double>(n * c10::elementSize(dtype)) / (med / 1e3) / 1e9;
    if (dist.is_main()) std::printf("| %.2f | %.3f | %.2f |\n", mib, med, bus);
  }
  dist.finish();
  return 0;
} catch (const chart::Error& e) {
  std::fprintf(stderr, "error: %s\n", e.what());
  return 1;
}
