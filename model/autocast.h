// bf16 (or fp16) autocast on the GPU for a forward pass; a no-op in fp32 and on the CPU.
#pragma once
#include <ATen/autocast_mode.h>

#include "model/device.h"

namespace chart {

struct AutocastGuard {
  bool on;
  explicit AutocastGuard(const DeviceChoice& d) : on(d.compute_dtype != torch::kFloat32) {
    if (!on) return;
    at::autocast::set_autocast_enabled(at::kCUDA, true);
    at::autocast::set_autocast_dtype(at::kCUDA, d.compute_dtype);
  }
  ~AutocastGuard() {
    if (!on) return;
    at::autocast::set_autocast_enabled(at::kCUDA, false);
    at::autocast::clear_cache();
  }
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;
};

}  // namespace chart
