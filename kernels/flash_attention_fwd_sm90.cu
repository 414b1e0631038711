// Flash attention forward for Hopper (sm_90a): the same function as flash_attention_fwd.cu, with
// the two matrix products on warpgroup MMA (wgmma) instead of mma.sync. One block = two
// warpgroups = 128 query rows of one head (64 per warpgroup); K/V tiles of 64 keys stream through
// two shared-memory buffers filled by cp.async, stored in the 128-byte-swizzled layout wgmma
// reads through matrix descriptors:
//   S = Q K^T: A = Q and B = K from shared memory (both K-major), fp32 accumulators in registers;
//   softmax, mask and time bias in registers (the accumulator layout is mma.sync's, per warp);
//   O += P V: A = P from registers, B = V from shared memory (N-major).
// Built for sm_90a only (-gencode arch=compute_90a,code=sm_90a); on other GPUs the launcher is
// never called (kernels/attention_dispatch.cpp decides). Also compiled for the CPU SIMT emulator,
// which implements wgmma, so CI runs it.
#include <cfloat>
#include <type_traits>

#include "kernels/flash_attention.h"
#include "kernels/flash_common.cuh"
#include "kernels/flash_forward_tile.cuh"

#if !defined(CHART_SIMT_EMULATION)
#include "kernels/wgmma.cuh"
#endif

namespace chart::kernels {
inline namespace CHART_FLASH_ABI {
namespace flash {
namespace sm90 {

constexpr int kWarpgroups = 2, kBM = 64 * kWarpgroups, kBN = 64, kThreads = 128 * kWarpgroups;
constexpr int kRowBytes = 128;  // one swizzled row: 64 16-bit elements

#if defined(CHART_SIMT_EMULATION) || (defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL))
#define CHART_SM90_DEVICE_CODE 1
#endif

// ---- wgmma and its descriptors (device spelling / emulator spelling).
__device__ __forceinline__ uint32_t smem_address(const void* p) {
#ifdef CHART_SIMT_EMULATION
  return simt::shared_address(p);
#else
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
#endif
}
// A shared-memory matrix descriptor for a 128-byte-swizzled operand at p: sbo = the byte stride
// between 8-row atoms, lbo = between 64-element blocks of an N-major operand (unused K-major).
__device__ __forceinline__ uint64_t descriptor(const void* p, uint32_t lbo, uint32_t sbo) {
  return static_cast<uint64_t>((smem_address(p) >> 4) & 0x3fff) | static_cast<uint64_t>((lbo >> 4) & 0x3fff) << 16 |
         static_cast<uint64_t>((sbo >> 4) & 0x3fff) << 32 | static_cast<uint64_t>(1) << 62;
}
template <int N, typename T>
__device__ __forceinline__ void wgmma_ss(float (&d)[N / 8][4], uint64_t desc_a, uint64_t desc_b, bool scale_d) {
#ifdef CHART_SIMT_EMULATION
  simt::wgmma(N, std::is_same_v<T, bf16>, &d[0][0], desc_a, nullptr, desc_b, scale_d, false);
#elif defined(CHART_SM90_DEVICE_CODE)
  wgmma_ptx::ss<N, std::is_same_v<T, bf16>>(&d[0][0], desc_a, desc_b, scale_d);
#endif
}
template <int N, typename T>
__device__ __forceinline__ void wgmma_rs(float (&d)[N / 8][4], const uint32_t (&a)[4], uint64_t desc_b, bool scale_d) {
#ifdef CHART_SIMT_EMULATION
  simt::wgmma(N, std::is_same_v<T, bf16>, &d[0][0], 0, a, desc_b, scale_d, true);
#elif defined(CHART_SM90_DEVICE_CODE)
  wgmma_ptx::rs<N, std::is_same_v<T, bf16>>(&d[0][0], a, desc_b, scale_d);
#endif
}
// Orders this thread's register writes (accumulators, A operands) before the wgmmas after it.
__device__ __forceinline__ void wgmma_fence() {
#ifdef CHART_SIMT_EMULATION
  simt::wgmma_fence();
#elif defined(CHART_SM90_DEVICE_CODE)
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void wgmma_commit() {
#ifdef CHART_SIMT_EMULATION
  simt::wgmma_commit();
#elif defined(CHART_SM90_DEVICE_CODE)
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#endif
}
template <int N>
__device__ __forceinline__ void wgmma_wait() {
#ifdef CHART_SIMT_EMULATION
  simt::wgmma_wait(N);
#elif defined(CHART_SM90_DEVICE_CODE)
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
#endif
}
// The accumulators are written by the wgmma asynchronously, behind the compiler's back: this
// empty asm after a wait makes every later use of them depend on it, so none is hoisted above
// the wait.
// Used before each wgmma.fence too, so that no write to an operand sinks below it.
template <int N>
__device__ __forceinline__ void fence_registers(float (&d)[N][4]) {
#if !defined(CHART_SIMT_EMULATION)
#pragma unroll
  for (int i = 0; i < N; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) asm volatile("" : "+f"(d[i][j])::"memory");
#endif
}
template <int N>
__device__ __forceinline__ void fence_registers(uint32_t (&a)[N][4]) {
#if !defined(CHART_SIMT_EMULATION)
#pragma unroll
  for (int i = 0; i < N; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) asm volatile("" : "+r"(a[i][j])::"memory");
#endif
}
// Makes this thread's shared-memory writes (plain stores, cp.async) visible to the async proxy
// that wgmma reads through; then a barrier makes everyone's visible.
__device__ __forceinline__ void fence_proxy_async() {
#if !defined(CHART_SIMT_EMULATION) && defined(CHART_SM90_DEVICE_CODE)
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}

// Rows [row0, row0 + rows) of a [L, D] matrix into shared memory as D/64 column blocks of
// [rows][64], each row 128 bytes with its 16-byte chunks swizzled (chunk c of row r at c ^ r%8):
// the layout of a 128B-swizzled wgmma operand. Rows past L are zero-filled. cp.async; the caller
// commits and waits.
template <typename T, int D>
__device__ __forceinline__ void load_swizzled(unsigned char* dst, const T* src, int row0, int rows, int L) {
  constexpr int kChunks = D / 8;  // 16-byte chunks per row
  for (int i = threadIdx.x; i < rows * kChunks; i += blockDim.x) {
    const int r = i / kChunks, c = i % kChunks;
    const bool in = row0 + r < L;
    unsigned char* to = dst + (c / 8) * rows * kRowBytes + r * kRowBytes + ((c % 8) ^ (r % 8)) * 16;
    cp_async_16(to, in ? src + static_cast<int64_t>(row0 + r) * D + c * 8 : src, in);
  }
}

template <typename T, int D>
__host__ __device__ constexpr size_t smem_bytes() {
  return static_cast<size_t>(kBM + 4 * kBN) * D * sizeof(T) + 2 * kBN * sizeof(float);
}

template <typename T, int D>
__global__ void __launch_bounds__(kThreads) forward_kernel(AttnParams p) {
#ifdef CHART_SM90_DEVICE_CODE
  constexpr int kTile = kBN * D * sizeof(T);  // bytes of one K or V tile
  // Every operand starts on a 1024-byte boundary (the swizzle atom), as the descriptors require.
#ifdef CHART_SIMT_EMULATION
  unsigned char* smem = simt::shared_memory();
#else
  extern __shared__ __align__(1024) unsigned char smem_sm90[];
  unsigned char* smem = smem_sm90;
#endif
#ifndef CHART_SIMT_EMULATION
  if ((smem_address(smem) & 1023) != 0) __trap();  // the descriptors assume 1024-byte atoms
#endif
  unsigned char* Qs = smem;                       // D/64 blocks of [kBM][64]
  unsigned char* Ks = Qs + kBM * D * sizeof(T);   // [2] tiles of D/64 blocks of [kBN][64]
  unsigned char* Vs = Ks + 2 * kTile;             // [2] tiles, the same
  float* days_k = reinterpret_cast<float*>(Vs + 2 * kTile);  // [2][kBN]

  const int m0 = blockIdx.x * kBM;
  const int bh = blockIdx.y, b = bh / p.Hq, h = bh % p.Hq;
  const int hk = h / (p.Hq / p.Hkv);
  const int L = p.L;
  if (m0 >= L) return;
  const int wg = threadIdx.x / 128, warp = threadIdx.x % 128 / 32, lane = threadIdx.x % 32, g = lane / 4;

  const T* q = static_cast<const T*>(p.q) + (static_cast<int64_t>(b) * p.Hq + h) * L * D;
  const T* k = static_cast<const T*>(p.k) + (static_cast<int64_t>(b) * p.Hkv + hk) * L * D;
  const T* v = static_cast<const T*>(p.v) + (static_cast<int64_t>(b) * p.Hkv + hk) * L * D;
  const int32_t* seg = p.seg_start + static_cast<int64_t>(b) * L;
  const float* ages = p.ages ? p.ages + static_cast<int64_t>(b) * L : nullptr;
  const float slope = p.slopes ? p.slopes[h] : 0.f;

  const int first = (seg[m0] / kBN) * kBN;
  const int tiles = (min(L, m0 + kBM) - first + kBN - 1) / kBN;
  auto load_kv = [&](int i) {
    const int n0 = first + i * kBN, buf = i & 1;
    load_swizzled<T, D>(Ks + buf * kTile, k, n0, kBN, L);
    load_swizzled<T, D>(Vs + buf * kTile, v, n0, kBN, L);
    if (ages)
      for (int c = threadIdx.x; c < kBN; c += blockDim.x) days_k[buf * kBN + c] = n0 + c < L ? ages[n0 + c] * kDaysPerYearF : 0.f;
  };
  load_swizzled<T, D>(Qs, q, m0, kBM, L);
  load_kv(0);
  cp_async_commit();

  // This thread's two query rows (the accumulator layout: warp w of warpgroup wg holds rows
  // 64 wg + 16 w + g and + 8).
  QueryRows rows;
  rows.r[0] = m0 + wg * 64 + warp * 16 + g;
  rows.r[1] = rows.r[0] + 8;
  for (int r = 0; r < 2; ++r) {
    rows.seg[r] = rows.r[r] < L ? seg[rows.r[r]] : 0;
    rows.day[r] = ages && rows.r[r] < L ? ages[rows.r[r]] * kDaysPerYearF : 0.f;
  }

  float o[D / 8][4];
#pragma unroll
  for (int j = 0; j < D / 8; ++j) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.f;
  const float scale2 = p.scale * kLog2e;
  // Q's descriptor rows for this warpgroup: 64 rows from 64 wg, K-major, 8-row atoms 1024 B apart.
  const unsigned char* q_rows = Qs + wg * 64 * kRowBytes;

  for (int i = 0; i < tiles; ++i) {
    if (i + 1 < tiles) {
      load_kv(i + 1);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    fence_proxy_async();
    sync_block();
    const int n0 = first + i * kBN;
    const unsigned char* Kb = Ks + (i & 1) * kTile;
    const unsigned char* Vb = Vs + (i & 1) * kTile;
    const float* days = days_k + (i & 1) * kBN;

    // S = Q K^T over D in k16 steps: step kk is 32 bytes into 64-column block kk / 4.
    float s[kBN / 8][4];
    fence_registers(o);
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      const uint64_t da = descriptor(q_rows + (kk / 4) * kBM * kRowBytes + (kk % 4) * 32, 16, 1024);
      const uint64_t db = descriptor(Kb + (kk / 4) * kBN * kRowBytes + (kk % 4) * 32, 16, 1024);
      wgmma_ss<kBN, T>(s, da, db, kk > 0);
    }
    wgmma_commit();
    wgmma_wait<0>();
    fence_registers(s);

    uint32_t pa[kBN / 16][4];
    softmax_tile<T, kBN, D>(s, o, pa, rows, n0, days, ages != nullptr, slope, scale2, L);
    // O += P V over the tile's keys in k16 steps: keys 16kk.. are two 8-row atoms (2048 B in);
    // V is N-major, its 64-column blocks kBN rows apart.
    fence_registers(o);
    fence_registers(pa);
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < kBN / 16; ++kk)
      wgmma_rs<D, T>(o, pa[kk], descriptor(Vb + kk * 16 * kRowBytes, kBN * kRowBytes, 1024), true);
    wgmma_commit();
    wgmma_wait<0>();
    fence_registers(o);
    sync_block();  // this buffer is refilled by the prefetch two tiles on
  }

  const int64_t head = static_cast<int64_t>(b) * p.Hq + h;
  write_output<T, D>(o, rows, static_cast<T*>(p.o) + head * L * D, p.lse + head * L, L);
#elif defined(__CUDA_ARCH__)
  __trap();  // built for a GPU without wgmma (not sm_90a): fail loudly, never return garbage
#endif  // CHART_SM90_DEVICE_CODE
}

template <typename T, int D>
const char* launch(const AttnParams& p, void* stream) {
  const dim3 grid((p.L + kBM - 1) / kBM, p.B * p.Hq);
  return flash::launch(forward_kernel<T, D>, grid, kThreads, smem_bytes<T, D>(), stream, p);
}

}  // namespace sm90
}  // namespace flash

const char* flash_attention_forward_sm90(const AttnParams& p, void* stream) {
  return flash::dispatch_shape(p, [&](auto s) {
    return flash::sm90::launch<typename decltype(s)::T, decltype(s)::D>(p, stream);
  });
}

}  // inline namespace CHART_FLASH_ABI
}  // namespace chart::kernels
