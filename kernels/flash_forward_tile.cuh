// The part of the attention forward both kernels share (flash_attention_fwd.cu on mma.sync,
// flash_attention_fwd_sm90.cu on wgmma): their score and output accumulators have the same
// per-thread layout (mma.sync's C fragment: C tile j holds this thread's two rows g and g + 8,
// columns 8j + 2t + 0, 1), so the online softmax of one key tile and the final write are one
// piece of code.
#pragma once
#include <cfloat>

#include "kernels/flash_common.cuh"

namespace chart::kernels {
inline namespace CHART_FLASH_ABI {
namespace flash {

// This thread's two query rows, their patients' first positions and ages in days, and the
// running softmax state.
struct QueryRows {
  int r[2];
  int seg[2];
  float day[2];
  float max[2] = {-FLT_MAX, -FLT_MAX};  // -FLT_MAX, not -inf: never inf - inf below
  float sum[2] = {0.f, 0.f};
};

// One key tile [n0, n0 + BN) of scores s (raw Q K^T) for the rows: scales into log2 units, adds
// the time bias when `bias` (days: the tile's key ages in days), masks (only rows the tile does not
// lie wholly inside), updates the running max and sum, rescales the output accumulators o, and
// leaves the probabilities as the A fragments of P V in pa.
template <typename T, int BN, int D>
__device__ __forceinline__ void softmax_tile(float (&s)[BN / 8][4], float (&o)[D / 8][4], uint32_t (&pa)[BN / 16][4],
                                             QueryRows& q, int n0, const float* days, bool bias, float slope, float scale2, int L) {
  const int t = threadIdx.x % 4;
  const bool whole[2] = {q.r[0] < L && n0 + BN - 1 <= q.r[0] && n0 >= q.seg[0],
                         q.r[1] < L && n0 + BN - 1 <= q.r[1] && n0 >= q.seg[1]};
  float tile_max[2] = {-FLT_MAX, -FLT_MAX};
#pragma unroll
  for (int j = 0; j < BN / 8; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int c = j * 8 + 2 * t + (e & 1), i = e / 2;
      float x = s[j][e] * scale2;
      if (bias) x -= slope * log2_gap(q.day[i], days[c]);
      if (!whole[i] && !allowed(q.r[i], n0 + c, q.seg[i], L)) x = -INFINITY;
      s[j][e] = x;
      tile_max[i] = fmaxf(tile_max[i], x);
    }
  float alpha[2], tile_sum[2] = {0.f, 0.f};
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    tile_max[i] = fmaxf(tile_max[i], shfl_xor(tile_max[i], 1));
    tile_max[i] = fmaxf(tile_max[i], shfl_xor(tile_max[i], 2));
    tile_max[i] = fmaxf(q.max[i], tile_max[i]);  // the new running max
    // A row with no visible key yet gets alpha = 1 and p = exp2(-inf) = 0.
    alpha[i] = exp2f(q.max[i] - tile_max[i]);
    q.max[i] = tile_max[i];
  }
  // C tiles 2kk and 2kk + 1 are exactly the A fragment of k16 slice kk.
#pragma unroll
  for (int j = 0; j < BN / 8; ++j) {
    float pv[4];
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      pv[e] = exp2f(s[j][e] - q.max[e / 2]);
      tile_sum[e / 2] += pv[e];
    }
    pa[j / 2][(j % 2) * 2 + 0] = Traits<T>::pack(pv[0], pv[1]);
    pa[j / 2][(j % 2) * 2 + 1] = Traits<T>::pack(pv[2], pv[3]);
  }
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    tile_sum[i] += shfl_xor(tile_sum[i], 1);
    tile_sum[i] += shfl_xor(tile_sum[i], 2);
    q.sum[i] = q.sum[i] * alpha[i] + tile_sum[i];
  }
#pragma unroll
  for (int j = 0; j < D / 8; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) o[j][e] *= alpha[e / 2];
}

// O / sum into out ([L, D] of this head) and the natural-log logsumexp into lse ([L]).
template <typename T, int D>
__device__ __forceinline__ void write_output(const float (&o)[D / 8][4], const QueryRows& q, T* out, float* lse, int L) {
  const int t = threadIdx.x % 4;
  const float inv0 = q.sum[0] > 0 ? 1.f / q.sum[0] : 0.f, inv1 = q.sum[1] > 0 ? 1.f / q.sum[1] : 0.f;
#pragma unroll
  for (int j = 0; j < D / 8; ++j) {
    const int c = j * 8 + 2 * t;
    if (q.r[0] < L) *reinterpret_cast<uint32_t*>(out + static_cast<int64_t>(q.r[0]) * D + c) = Traits<T>::pack(o[j][0] * inv0, o[j][1] * inv0);
    if (q.r[1] < L) *reinterpret_cast<uint32_t*>(out + static_cast<int64_t>(q.r[1]) * D + c) = Traits<T>::pack(o[j][2] * inv1, o[j][3] * inv1);
  }
  if (t == 0) {
    if (q.r[0] < L) lse[q.r[0]] = (q.max[0] + log2f(q.sum[0])) * kLn2;
    if (q.r[1] < L) lse[q.r[1]] = (q.max[1] + log2f(q.sum[1])) * kLn2;
  }
}

}  // namespace flash
}  // inline namespace CHART_FLASH_ABI
}  // namespace chart::kernels
