// What a training step costs the hardware: the GPU's peak for MFU, and peak memory.
//   MFU = flops_per_token x tokens/s per device / peak_flops, with flops_per_token from
//   ClinicalTransformer::flops_per_token: 6 x matrix parameters (the output projection included,
//   the embedding lookup not) + 12 x layers x d_model x context (attention scores and values),
//   forward and backward, as PaLM's appendix B counts them.
#pragma once
#include "model/device.h"

namespace chart {

// Dense bf16 peak of the GPU in FLOP/s; 0 on the CPU (no MFU is reported there).
// CHART_GPU_PEAK_TFLOPS overrides the H100/H200 SXM figure of 989 TFLOP/s.
double peak_flops(const DeviceChoice& d);
// Peak GPU memory allocated by this process's tensors, GiB; 0 on the CPU.
double peak_gpu_gib(const DeviceChoice& d);

}  // namespace chart
