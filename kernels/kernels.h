// What the kernels library was built with, for `chart --version` and the GPU tests.
#pragma once
#include <string>

namespace chart::kernels {

// True when this build compiled the CUDA kernels (nvcc was present at configure time).
bool cuda_kernels_built();
// The GPU architectures the kernels were compiled for, e.g. "sm_80 sm_90"; empty if none.
std::string cuda_kernel_archs();
// Fills n floats at device pointer x with v on the current stream: the smallest real kernel,
// used to check that this build's device code loads and runs on the GPU at hand.
void fill_cuda(float* x, float v, long n);

}  // namespace chart::kernels
