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

#include "core/time.h"
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

// ---- Shared-memory movement: cp.async (global -> shared without registers) and ldmatrix.
// 16 bytes from global src to shared dst, asynchronously; zero-filled instead when !valid (src
// must still be a valid address). Lands for this thread at cp_async_wait; others see it after
// the barrier that follows.
__device__ __forceinline__ void cp_async_16(void* dst, const void* src, bool valid) {
#ifdef CHART_SIMT_EMULATION
  simt::cp_async_16(dst, src, valid ? 16 : 0);
#else
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(src), "r"(valid ? 16 : 0) : "memory");
#endif
}
__device__ __forceinline__ void cp_async_commit() {
#ifdef CHART_SIMT_EMULATION
  simt::cp_async_commit();
#else
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}
// Waits until at most N of this thread's committed groups are still in flight.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
#ifdef CHART_SIMT_EMULATION
  simt::cp_async_wait(N);
#else
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
#endif
}
// Four 8x8 16-bit matrices from shared memory; lane 8i + r gives the address of row r of matrix
// i, and register i receives matrix i's (row lane / 4, columns 2 (lane % 4) + 0, 1), or with
// trans its (rows 2 (lane % 4) + 0, 1, column lane / 4).
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* row) {
#ifdef CHART_SIMT_EMULATION
  simt::ldmatrix_x4(r, row, false);
#else
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(s)
               : "memory");
#endif
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* row) {
#ifdef CHART_SIMT_EMULATION
  simt::ldmatrix_x4(r, row, true);
#else
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(s)
               : "memory");
#endif
}
// log2(x) on the special-function unit (about 2^-22 absolute error near 1; x >= 1 here).
__device__ __forceinline__ float fast_log2(float x) {
#ifdef CHART_SIMT_EMULATION
  return std::log2(x);
#else
  return __log2f(x);
#endif
}

// Launches kernel(p) on grid x threads with smem bytes of dynamic shared memory; returns the CUDA
// error string or nullptr. Params: AttnParams or DecodeParams.
template <typename Kernel, typename Params>
const char* launch(Kernel kernel, dim3 grid, int threads, size_t smem, void* stream, const Params& p) {
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

// The one dtype x head-dim switch of all the kernels (host code): calls launch(Shape<T, D>{}) for
// p's dtype and head dim and returns its error string. The dims are flash_head_dim_supported's.
template <typename T_, int D_>
struct Shape {
  using T = T_;
  static constexpr int D = D_;
};
template <typename Params, typename Launch>
const char* dispatch_shape(const Params& p, Launch launch) {
  const bool bf = p.dtype == AttnDtype::kBF16;
  if (p.D == 64) return bf ? launch(Shape<bf16, 64>{}) : launch(Shape<fp16, 64>{});
  if (p.D == 128) return bf ? launch(Shape<bf16, 128>{}) : launch(Shape<fp16, 128>{});
  return "flash attention: head dim must be 64 or 128";
}

// The A fragment (16 x k16) made of two neighbouring C tiles c[2kk] and c[2kk + 1] (see above).
template <typename T, int N>
__device__ __forceinline__ void c_tiles_to_a(const float (&c)[N][4], int kk, uint32_t (&a)[4]) {
  a[0] = Traits<T>::pack(c[2 * kk][0], c[2 * kk][1]);
  a[1] = Traits<T>::pack(c[2 * kk][2], c[2 * kk][3]);
  a[2] = Traits<T>::pack(c[2 * kk + 1][0], c[2 * kk + 1][1]);
  a[3] = Traits<T>::pack(c[2 * kk + 1][2], c[2 * kk + 1][3]);
}

// ---- Fragments from padded row-major shared-memory tiles (row stride S elements; every row
// start 16-byte aligned, which kPad keeps).
// The A fragment (16 x 16) of rows [r0, r0 + 16), columns [c0, c0 + 16).
template <typename T, int S>
__device__ __forceinline__ void load_a(uint32_t (&a)[4], const T* tile, int r0, int c0) {
  const int lane = threadIdx.x % 32, m = lane / 8;
  ldmatrix_x4(a, tile + (r0 + (m % 2) * 8 + lane % 8) * S + c0 + (m / 2) * 8);
}
// B fragments (16 x 8, k x n) for two neighbouring n tiles, where B[k][n] = tile[n0 + n][k0 + k]
// (B^T is stored row-major, as K is for Q K^T): b[0], b[1] for n tile 0 and b[2], b[3] for 1.
template <typename T, int S>
__device__ __forceinline__ void load_b_rows(uint32_t (&b)[4], const T* tile, int n0, int k0) {
  const int lane = threadIdx.x % 32, m = lane / 8;
  ldmatrix_x4(b, tile + (n0 + (m / 2) * 8 + lane % 8) * S + k0 + (m % 2) * 8);
}
// The same where B[k][n] = tile[k0 + k][n0 + n] (B stored row-major, as V is for P V).
template <typename T, int S>
__device__ __forceinline__ void load_b_cols(uint32_t (&b)[4], const T* tile, int k0, int n0) {
  const int lane = threadIdx.x % 32, m = lane / 8;
  ldmatrix_x4_trans(b, tile + (k0 + (m % 2) * 8 + lane % 8) * S + n0 + (m / 2) * 8);
}
// The A fragment (16 x 16) where A[r][c] = tile[c0 + c][r0 + r] (A^T stored row-major).
template <typename T, int S>
__device__ __forceinline__ void load_a_cols(uint32_t (&a)[4], const T* tile, int r0, int c0) {
  const int lane = threadIdx.x % 32, m = lane / 8;
  ldmatrix_x4_trans(a, tile + (c0 + (m / 2) * 8 + lane % 8) * S + r0 + (m % 2) * 8);
}

// Copies rows [row0, row0 + rows) of a [L, D] matrix into shared memory (row stride D + kPad)
// with cp.async, zero-filling rows past L. All threads of the block take part; the caller
// commits and waits.
template <typename T, int D>
__device__ __forceinline__ void load_tile_async(T* dst, const T* src, int row0, int rows, int L) {
  constexpr int kVec = 16 / sizeof(T);
  constexpr int kPerRow = D / kVec;
  for (int i = threadIdx.x; i < rows * kPerRow; i += blockDim.x) {
    const int r = i / kPerRow, c = (i % kPerRow) * kVec;
    const bool in = row0 + r < L;
    cp_async_16(dst + r * (D + kPad) + c, in ? src + static_cast<int64_t>(row0 + r) * D + c : src, in);
  }
}

// Whether query `q` may attend to key `k`: causal, same patient, both inside the sequence.
__device__ __forceinline__ bool allowed(int q, int k, int q_seg_start, int L) {
  return q < L && k <= q && k >= q_seg_start;
}

// core/time.h's constant as fp32: ages times a double would run on the FP64 units.
constexpr float kDaysPerYearF = static_cast<float>(::chart::kDaysPerYear);
// log2(1 + |gap| in days) for ages in days: the time-decay bias is -slope * ln(1 + gap), which in
// the kernels' log2 units is exactly -slope * this.
__device__ __forceinline__ float log2_gap(float days_q, float days_k) {
  return fast_log2(1.f + fabsf(days_q - days_k));
}

}  // namespace flash
}  // inline namespace CHART_FLASH_ABI
}  // namespace chart::kernels
