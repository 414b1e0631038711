#include "model/device.h"

#include <algorithm>
#include <thread>

#include "core/error.h"
#include "kernels/kernels.h"

namespace chart {

std::string DeviceChoice::describe() const {
  return fmt::format("{} ({})", device.str(), compute_dtype == torch::kBFloat16 ? "bf16" : "fp32");
}

DeviceChoice choose_device(const std::string& device, const std::string& precision, int local_rank) {
  DeviceChoice out;
  bool have_gpu = torch::cuda::is_available();
  if (device == "cuda" && !have_gpu)
    throw Error("train.device=cuda but no CUDA GPU is visible to this process",
                "check nvidia-smi and CUDA_VISIBLE_DEVICES, or use --set train.device=cpu");
  if (device == "cuda" || (device == "auto" && have_gpu)) {
    int n = static_cast<int>(torch::cuda::device_count());
    if (local_rank >= n)
      fail("local rank {} has no GPU: this node shows {} GPU(s)", local_rank, n);
    out.device = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(local_rank));
  }
  bool gpu = out.device.is_cuda();
  if (precision == "bf16" && !gpu)
    throw Error("train.precision=bf16 needs a GPU; the CPU path trains in fp32",
                "use --set train.precision=fp32 (or auto)");
  out.compute_dtype = (precision == "bf16" || (precision == "auto" && gpu)) ? torch::kBFloat16
                                                                             : torch::kFloat32;
  return out;
}

void set_cpu_threads(int64_t threads) {
  torch::set_num_threads(threads > 0 ? static_cast<int>(threads)
                                     : static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
}

}  // namespace chart
