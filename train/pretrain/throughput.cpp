#include "train/pretrain/throughput.h"

#ifdef CHART_HAVE_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include <cstdlib>

namespace chart {

double peak_flops(const DeviceChoice& d) {
  if (!d.device.is_cuda()) return 0;
  if (const char* tflops = std::getenv("CHART_GPU_PEAK_TFLOPS")) return std::atof(tflops) * 1e12;
  return 989e12;
}

double peak_gpu_gib(const DeviceChoice& d) {
#ifdef CHART_HAVE_CUDA
  if (d.device.is_cuda()) {
    auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(d.device.index());
    return stats.allocated_bytes[static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE)].peak /
           double(1 << 30);
  }
#endif
  return 0;
}

}  // namespace chart
