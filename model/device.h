// Which device and precision the model runs on, from train.device / train.precision.
#pragma once
#include <torch/torch.h>

#include <string>

namespace chart {

struct DeviceChoice {
  torch::Device device{torch::kCPU};
  torch::ScalarType compute_dtype = torch::kFloat32;  // autocast dtype for matmuls
  std::string describe() const;                       // "cuda:0 (NVIDIA H100 ..., bf16)"
};

// device: auto | cpu | cuda; precision: auto | fp32 | bf16. "cuda" with no usable GPU, or bf16
// on a CPU, is an error that says so. local_rank picks the GPU under torchrun/SLURM.
// LibTorch CPU threads from train.threads (0: every core).
void set_cpu_threads(int64_t threads);

DeviceChoice choose_device(const std::string& device, const std::string& precision, int local_rank = 0);

}  // namespace chart
