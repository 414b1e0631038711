// The smallest kernel: proves that this build's device code loads and runs on the GPU at hand.
#include <cuda_runtime.h>

#include "core/error.h"
#include "kernels/kernels.h"

namespace chart::kernels {

__global__ void fill_kernel(float* x, float v, long n) {
  long i = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x;
  if (i < n) x[i] = v;
}

void fill_cuda(float* x, float v, long n) {
  if (n <= 0) return;
  int threads = 256;
  long blocks = (n + threads - 1) / threads;
  fill_kernel<<<static_cast<unsigned>(blocks), threads>>>(x, v, n);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) fail("fill_cuda: kernel launch failed: {}", cudaGetErrorString(err));
}

}  // namespace chart::kernels
