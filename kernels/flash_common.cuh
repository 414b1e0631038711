// Device helpers shared by the flash attention kernels: the m16n8k16 tensor-core MMA, fragment
// packing, masking and the time-decay bias. Fragment layouts follow the PTX ISA for
// mma.m16n8k16 (g = lane / 4, t = lane % 4):
//   A (16x16, row): reg0 = A[g][2t..2t+1], reg1 = A[g+8][2t..], reg2 = A[g][2t+8..], reg3 = A[g+8][2t+8..]
//   B (16x8, col):  reg0 = B[2t..2t+1][g], reg1 = B[2t+8..2t+9][g]
//   C (16x8, f32):  c0,c1 = C[g][2t..2t+1], c2,c3 = C[g+8][2t..2t+1]
// Two neighbouring C tiles (columns 0-7 and 8-15) are exactly one A fragment over k = 16: the
// probabilities computed for S = Q K^T feed P V without leaving registers.
// The same source also compiles as plain C++ against the CPU SIMT emulator
// (CHART_SIMT_EMULATION, kernels/simt_emulator.h), which is how CI runs these kernels without a
// GPU: every CUDA intrinsic the kernels use goes through a wrapper below with both spellings.
#pragma once
#include <cstdint>

#include "kernels/flash_attention.h"

#ifdef CHART_SIMT_EMULATION
#include "kernels/simt_cuda.h"
#else
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#endif

namespace chart::kernels {
inline namespace CHART_FLASH_ABI {
namespace flash {

#ifdef CHART_SIMT_EMULATION
using bf16 = simt::bf16;
using fp16 = simt::fp16;
#else
using bf16 = __nv_bfloat16;
using fp16 = __half;
#endif

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;
constexpr int kPad = 8;  // elements of padding per shared-memory row: spreads rows over banks

template <typename T> struct Traits;
template <> struct Traits<bf16> {
  static __device__ __forceinline__ uint32_t pack(float a, float b) {
#ifdef CHART_SIMT_EMULATION
    return static_cast<uint32_t>(simt::to_bf16(a).bits) | (static_cast<uint32_t>(simt::to_bf16(b).bits) << 16);
#else
    __nv_bfloat162 v = __floats2bfloat162_rn(a, b);
    return *reinterpret_cast<uint32_t*>(&v);
#endif
  }
#ifdef CHART_SIMT_EMULATION
  static float to_float(bf16 x) { return simt::to_float(x); }
  static bf16 from_float(float x) { return simt::to_bf16(x); }
  static void mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) { simt::mma_m16n8k16(true, c, a, b0, b1); }
#else
  static __device__ __forceinline__ float to_float(bf16 x) { return __bfloat162float(x); }
  static __device__ __forceinline__ bf16 from_float(float x) { return __float2bfloat16(x); }
  static __device__ __forceinline__ void mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
#endif
};
template <> struct Traits<fp16> {
  static __device__ __forceinline__ uint32_t pack(float a, float b) {
#ifdef CHART_SIMT_EMULATION
    return static_cast<uint32_t>(simt::to_fp16(a).bits) | (static_cast<uint32_t>(simt::to_fp16(b).bits) << 16);
#else
    __half2 v = __floats2half2_rn(a, b);
    return *reinterpret_cast<uint32_t*>(&v);
#endif
  }
#ifdef CHART_SIMT_EMULATION
  static float to_float(fp16 x) { return simt::to_float(x); }
  static fp16 from_float(float x) { return simt::to_fp16(x); }
  static void mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) { simt::mma_m16n8k16(false, c, a, b0, b1); }
#else
  static __device__ __forceinline__ float to_float(fp16 x) { return __half2float(x); }
  static __device__ __forceinline__ fp16 from_float(float x) { return __float2half(x); }
  static __device__ __forceinline__ void mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
#endif
};

// ---- Thread-model intrinsics (device spelling / emulator spelling).
__device__ __forceinline__ void sync_block() {
#ifdef CHART_SIMT_EMULATION
  simt::syncthreads();
#else
  __syncthreads();
#endif
}
__device__ __forceinline__ float shfl_xor(float v, int lane_mask) {
#ifdef CHART_SIMT_EMULATION
  return simt::shfl_xor(v, lane_mask);
#else
  return __shfl_xor_sync(0xffffffff, v, lane_mask);
#endif
}
__device__ __forceinline__ void atomic_add(float* p, float v) {
#ifdef CHART_SIMT_EMULATION
  *p += v;  // fibers never switch inside it
#else
  atomicAdd(p, v);
#endif
}
// The block's dynamic shared memory.
template <typename T>
__device__ __forceinline__ T* dynamic_smem() {
#ifdef CHART_SIMT_EMULATION
  return reinterpret_cast<T*>(simt::shared_memory());
#else
  extern __shared__ __align__(16) unsigned char smem_raw[];
  return reinterpret_cast<T*>(smem_raw);
#endif
}

// Launches kernel(p) on grid x threads with smem bytes of dynamic shared memory; returns the CUDA
// error string or nullptr.
template <typename Kernel>
const char* launch(Kernel kernel, dim3 grid, int threads, size_t smem, void* stream, const AttnParams& p) {
#ifdef CHART_SIMT_EMULATION
  (void)stream;
  simt::launch(grid, dim3(threads), smem, [&] { kernel(p); });
  return nullptr;
#else
  cudaError_t err = cudaSuccess;
  if (smem > 48 * 1024) err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
  if (err != cudaSuccess) return cudaGetErrorString(err);
  kernel<<<grid, threads, smem, static_cast<cudaStream_t>(stream)>>>(p);
  err = cudaGetLastError();
  return err == cudaSuccess ? nullptr : cudaGetErrorString(err);
#endif
}

// The A fragment (16 x k16) made of two neighbouring C tiles c[2kk] and c[2kk + 1] (see above).
template <typename T, int N>
__device__ __forceinline__ void c_tiles_to_a(const float (&c)[N][4], int kk, uint32_t (&a)[4]) {
  a[0] = Traits<T>::pack(c[2 * kk][0], c[2 * kk][1]);
  a[1] = Traits<T>::pack(c[2 * kk][2], c[2 * kk][3]);
  a[2] = Traits<T>::pack(c[2 * kk + 1][0], c[2 * kk + 1][1]);
  a[3] = Traits<T>::pack(c[2 * kk + 1][2], c[2 * kk + 1][3]);
}

// Two consecutive elements of a shared-memory row as one 32-bit register.
template <typename T>
__device__ __forceinline__ uint32_t ld_pair(const T* p) {
  return *reinterpret_cast<const uint32_t*>(p);
}
// Two elements one row apart (a column pair) as one register.
template <typename T>
__device__ __forceinline__ uint32_t ld_col_pair(const T* p, int row_stride) {
  T lo = p[0], hi = p[row_stride];
  uint16_t a = *reinterpret_cast<uint16_t*>(&lo), b = *reinterpret_cast<uint16_t*>(&hi);
  return static_cast<uint32_t>(a) | (static_cast<uint32_t>(b) << 16);
}

// Copies rows [row0, row0 + rows) of a [L, D] matrix into shared memory with padded rows,
// zero-filling rows past L. 16-byte vectors, all threads of the block.
template <typename T, int D>
__device__ __forceinline__ void load_tile(T* dst, const T* src, int row0, int rows, int L) {
  constexpr int kVec = 16 / sizeof(T);
  constexpr int kPerRow = D / kVec;
  for (int i = threadIdx.x; i < rows * kPerRow; i += blockDim.x) {
    int r = i / kPerRow, c = (i % kPerRow) * kVec;
    uint4 v = make_uint4(0, 0, 0, 0);
    if (row0 + r < L) v = *reinterpret_cast<const uint4*>(src + static_cast<int64_t>(row0 + r) * D + c);
    *reinterpret_cast<uint4*>(dst + r * (D + kPad) + c) = v;
  }
}

// Whether query `q` may attend to key `k`: causal, same patient, both inside the sequence.
__device__ __forceinline__ bool allowed(int q, int k, int q_seg_start, int L) {
  return q < L && k <= q && k >= q_seg_start;
}

// log(1 + |age_q - age_k| in days): the time-decay bias is -slope * this.
__device__ __forceinline__ float time_gap(float age_q, float age_k) {
  return log1pf(fabsf(age_q - age_k) * 365.25f);
}

}  // namespace flash
}  // inline namespace CHART_FLASH_ABI
}  // namespace chart::kernels
