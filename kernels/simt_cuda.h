// CUDA's spellings for kernel source compiled as plain C++ against the SIMT emulator
// (kernels/simt_emulator.h): included by flash_common.cuh when CHART_SIMT_EMULATION is defined,
// never by code that nvcc compiles.
#pragma once
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>

#include "kernels/simt_emulator.h"

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define threadIdx (::chart::simt::me().thread_idx)
#define blockIdx (::chart::simt::me().block_idx)
#define blockDim (::chart::simt::me().block_dim)
#define gridDim (::chart::simt::me().grid_dim)

using ::chart::simt::dim3;
using std::max;
using std::min;

struct alignas(16) uint4 {
  unsigned x, y, z, w;
};
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }
