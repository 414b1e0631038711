// Decode attention (kernels/decode_attention.h), flash-decoding style, written for chart.
// Grid (splits, Hkv, N): a block takes one KV head of one row over one split of its keys, for
// all G query heads of that KV head at once, so each key is read from memory once per group.
// Inside a block each warp takes every 4th group of keys; a warp reads kKeysPerWarp keys at a
// time, kLanes lanes per key, 16 bytes (8 elements) per lane, so a key row is one coalesced read.
// Each lane group keeps its own online softmax (max, sum, output in fp32); the groups of a warp
// then merge by shuffles and the warps through shared memory. With one split the block writes
// the output; with more, each split writes its normalised output and log-sum-exp, and a second
// kernel merges the splits of every (row, head).
// Decode is memory-bound (one query row per key read), so there is no tensor-core MMA here: the
// work per key is G dot products of D elements.
#include <cfloat>

#include "kernels/decode_attention.h"
#include "kernels/flash_common.cuh"

namespace chart::kernels {
inline namespace CHART_FLASH_ABI {
namespace flash {

constexpr int kDecodeWarps = 4;

// One (row, KV head, split)'s pointers and key range.
struct DecodeSlice {
  int n, hk, start, end, length;
  const float* ages;  // the row's, or null
  const uint8_t* valid;
  float query_day;
};

template <typename T>
__device__ __forceinline__ const T* key_row(const DecodeParams& p, const T* pool, int n, int hk, int j) {
  const int block = p.block_table ? p.block_table[static_cast<int64_t>(n) * p.table_stride + j / p.block_size] : n;
  return pool + ((static_cast<int64_t>(block) * p.Hkv + hk) * p.block_size + j % p.block_size) * p.D;
}

// 8 consecutive 16-bit elements as floats, read as one 16-byte vector.
template <typename T>
__device__ __forceinline__ void load8(float (&out)[8], const T* src) {
  const uint4 raw = *reinterpret_cast<const uint4*>(src);
  const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
  for (int i = 0; i < 8; ++i) out[i] = Traits<T>::to_float(e[i]);
}

// The running softmax of one lane group for G heads: max and sum in log2 units, and this lane's
// 8 output elements.
template <int G>
struct Softmax {
  float m[G], l[G], acc[G][8];
  __device__ __forceinline__ void clear() {
#pragma unroll
    for (int g = 0; g < G; ++g) {
      m[g] = -INFINITY;
      l[g] = 0.f;
#pragma unroll
      for (int i = 0; i < 8; ++i) acc[g][i] = 0.f;
    }
  }
  // Folds in another state (m2, l2, acc2) of head g.
  __device__ __forceinline__ void merge(int g, float m2, float l2, const float (&acc2)[8]) {
    const float mn = fmaxf(m[g], m2);
    if (mn == -INFINITY) return;  // both empty
    const float a = exp2f(m[g] - mn), b = exp2f(m2 - mn);
    l[g] = l[g] * a + l2 * b;
#pragma unroll
    for (int i = 0; i < 8; ++i) acc[g][i] = acc[g][i] * a + acc2[i] * b;
    m[g] = mn;
  }
};

// Scores and accumulates this lane group's keys of the slice (every kDecodeWarps * kKeysPerWarp-th
// key group, from the warp's own).
template <typename T, int D, int G>
__device__ __forceinline__ void accumulate_keys(const DecodeParams& p, const DecodeSlice& s, const float (&q)[G][8],
                                                Softmax<G>& sm) {
  constexpr int kLanes = D / 8, kKeysPerWarp = 32 / kLanes;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, sub = lane % kLanes;
  const T* kpool = static_cast<const T*>(p.k);
  const T* vpool = static_cast<const T*>(p.v);
  constexpr int kStride = kDecodeWarps * kKeysPerWarp;
  // Every lane runs the same trip count (the shuffles need the whole warp); keys past the end
  // are masked.
  for (int j0 = s.start + warp * kKeysPerWarp; j0 < s.end; j0 += kStride) {
    const int j = j0 + lane / kLanes;
    const bool in = j < s.end && (s.valid == nullptr || s.valid[j]);
    float kx[8], vx[8];
    if (in) {
      load8<T>(kx, key_row<T>(p, kpool, s.n, s.hk, j) + sub * 8);
      load8<T>(vx, key_row<T>(p, vpool, s.n, s.hk, j) + sub * 8);
    } else {
#pragma unroll
      for (int i = 0; i < 8; ++i) kx[i] = vx[i] = 0.f;
    }
    const float bias_log2 = in && s.ages ? log2_gap(s.query_day, s.ages[j] * kDaysPerYearF) : 0.f;
#pragma unroll
    for (int g = 0; g < G; ++g) {
      float dot = 0.f;
#pragma unroll
      for (int i = 0; i < 8; ++i) dot += q[g][i] * kx[i];
#pragma unroll
      for (int mask = 1; mask < kLanes; mask <<= 1) dot += shfl_xor(dot, mask);
      if (!in) continue;
      const float slope = s.ages ? p.slopes[s.hk * G + g] : 0.f;
      const float score = dot - slope * bias_log2;  // log2 units (q carries scale * log2 e)
      const float mn = fmaxf(sm.m[g], score);
      const float a = exp2f(sm.m[g] - mn), w = exp2f(score - mn);
      sm.l[g] = sm.l[g] * a + w;
#pragma unroll
      for (int i = 0; i < 8; ++i) sm.acc[g][i] = sm.acc[g][i] * a + w * vx[i];
      sm.m[g] = mn;
    }
  }
}

// Merges the lane groups of each warp (shuffles), then the warps (shared memory): afterwards
// warp 0's first kLanes lanes hold the block's state, lane `sub` its elements [8 sub, 8 sub + 8).
template <int D, int G>
__device__ __forceinline__ void merge_block(Softmax<G>& sm, float* smem) {
  constexpr int kLanes = D / 8;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
#pragma unroll
  for (int mask = kLanes; mask < 32; mask <<= 1)
#pragma unroll
    for (int g = 0; g < G; ++g) {
      float acc2[8];
#pragma unroll
      for (int i = 0; i < 8; ++i) acc2[i] = shfl_xor(sm.acc[g][i], mask);
      const float m2 = shfl_xor(sm.m[g], mask), l2 = shfl_xor(sm.l[g], mask);
      sm.merge(g, m2, l2, acc2);
    }
  // Shared memory: per warp and head, m, l and D output elements.
  constexpr int kPerHead = D + 2;
  if (lane < kLanes)
#pragma unroll
    for (int g = 0; g < G; ++g) {
      float* slot = smem + (warp * G + g) * kPerHead;
      if (lane == 0) slot[0] = sm.m[g], slot[1] = sm.l[g];
#pragma unroll
      for (int i = 0; i < 8; ++i) slot[2 + lane * 8 + i] = sm.acc[g][i];
    }
  sync_block();
  if (warp == 0 && lane < kLanes)
    for (int w = 1; w < kDecodeWarps; ++w)
#pragma unroll
      for (int g = 0; g < G; ++g) {
        const float* slot = smem + (w * G + g) * kPerHead;
        float acc2[8];
#pragma unroll
        for (int i = 0; i < 8; ++i) acc2[i] = slot[2 + lane * 8 + i];
        sm.merge(g, slot[0], slot[1], acc2);
      }
}

template <typename T, int D, int G>
__global__ void __launch_bounds__(kDecodeWarps * 32) decode_kernel(DecodeParams p) {
  constexpr int kLanes = D / 8;
  const int split = blockIdx.x, hk = blockIdx.y, n = blockIdx.z;
  const int tid = threadIdx.x, lane = tid % 32, sub = lane % kLanes;
  DecodeSlice s;
  s.n = n;
  s.hk = hk;
  s.length = p.lengths[n];
  s.start = split * p.keys_per_split;
  s.end = min(s.length, s.start + p.keys_per_split);
  s.ages = p.ages && p.slopes ? p.ages + static_cast<int64_t>(n) * p.row_stride : nullptr;
  s.valid = p.valid ? p.valid + static_cast<int64_t>(n) * p.row_stride : nullptr;
  s.query_day = s.ages && s.length > 0 ? s.ages[s.length - 1] * kDaysPerYearF : 0.f;

  // This lane's 8 elements of each of the group's G queries, scaled for log2 scores.
  float q[G][8];
  const float scale2 = p.scale * kLog2e;
#pragma unroll
  for (int g = 0; g < G; ++g) {
    load8<T>(q[g], static_cast<const T*>(p.q) + (static_cast<int64_t>(n) * p.Hq + hk * G + g) * D + sub * 8);
#pragma unroll
    for (int i = 0; i < 8; ++i) q[g][i] *= scale2;
  }
  Softmax<G> sm;
  sm.clear();
  accumulate_keys<T, D, G>(p, s, q, sm);
  merge_block<D, G>(sm, dynamic_smem<float>());
  if (tid >= kLanes) return;

#pragma unroll
  for (int g = 0; g < G; ++g) {
    const int64_t nh = static_cast<int64_t>(n) * p.Hq + hk * G + g;
    const float inv = sm.l[g] > 0.f ? 1.f / sm.l[g] : 0.f;
    if (p.splits == 1) {
      T* o = static_cast<T*>(p.o) + nh * D + sub * 8;
#pragma unroll
      for (int i = 0; i < 8; ++i) o[i] = Traits<T>::from_float(sm.acc[g][i] * inv);
    } else {
      float* o = p.o_split + (nh * p.splits + split) * D + sub * 8;
#pragma unroll
      for (int i = 0; i < 8; ++i) o[i] = sm.acc[g][i] * inv;
      if (sub == 0) p.lse_split[nh * p.splits + split] = sm.l[g] > 0.f ? sm.m[g] + fast_log2(sm.l[g]) : -INFINITY;
    }
  }
}

// Grid N x Hq, D threads: thread d merges element d of every split's output, weighted by the
// splits' softmax sums.
template <typename T, int D>
__global__ void __launch_bounds__(D) decode_combine_kernel(DecodeParams p) {
  const int64_t nh = blockIdx.x;
  const int d = static_cast<int>(threadIdx.x);
  const float* lse = p.lse_split + nh * p.splits;
  float m = -INFINITY;
  for (int s = 0; s < p.splits; ++s) m = fmaxf(m, lse[s]);
  float sum = 0.f, out = 0.f;
  if (m != -INFINITY)
    for (int s = 0; s < p.splits; ++s) {
      if (lse[s] == -INFINITY) continue;
      const float w = exp2f(lse[s] - m);
      sum += w;
      out += w * p.o_split[(nh * p.splits + s) * D + d];
    }
  static_cast<T*>(p.o)[nh * D + d] = Traits<T>::from_float(sum > 0.f ? out / sum : 0.f);
}

template <typename T, int D, int G>
const char* launch_decode(const DecodeParams& p, void* stream) {
  const size_t smem = static_cast<size_t>(kDecodeWarps) * G * (D + 2) * sizeof(float);
  const char* err = launch(decode_kernel<T, D, G>, dim3(p.splits, p.Hkv, p.N), kDecodeWarps * 32, smem, stream, p);
  if (err != nullptr || p.splits == 1) return err;
  return launch(decode_combine_kernel<T, D>, dim3(p.N * p.Hq), D, 0, stream, p);
}

}  // namespace flash

const char* decode_attention(const DecodeParams& p, void* stream) {
  if (p.N == 0) return nullptr;
  if (p.splits < 1 || p.keys_per_split < 1) return "decode attention: splits and keys_per_split must be positive";
  if (p.splits > 1 && (p.o_split == nullptr || p.lse_split == nullptr)) return "decode attention: splits need scratch";
  const int G = p.Hkv > 0 ? p.Hq / p.Hkv : 0;
  return flash::dispatch_shape(p, [&](auto shape) -> const char* {
    using S = decltype(shape);
    switch (G) {
      case 1: return flash::launch_decode<typename S::T, S::D, 1>(p, stream);
      case 2: return flash::launch_decode<typename S::T, S::D, 2>(p, stream);
      case 4: return flash::launch_decode<typename S::T, S::D, 4>(p, stream);
      case 8: return flash::launch_decode<typename S::T, S::D, 8>(p, stream);
      default: return "decode attention: query heads per KV head must be 1, 2, 4 or 8";
    }
  });
}

}  // inline namespace CHART_FLASH_ABI
}  // namespace chart::kernels
