// Flash attention forward (FlashAttention-2 style, written for chart): one block per 64 query
// rows of one head; 4 warps, each owning 16 rows; K/V tiles of 64 keys stream through two
// shared-memory buffers (cp.async fills the next while the tensor cores work on this one);
// fragments come from shared memory by ldmatrix; scores, the online softmax and the output
// accumulate in registers.
// Only key tiles that can be visible are visited: from the first key of the block's first
// patient to the block's last query (causal), so packed short patients cost little; and only a
// row whose tile straddles its diagonal, its patient's start or the end is masked element-wise.
#include <cfloat>

#include "kernels/flash_attention.h"
#include "kernels/flash_common.cuh"

namespace chart::kernels {
inline namespace CHART_FLASH_ABI {
namespace flash {

constexpr int kBM = 64, kBN = 64, kWarps = 4;

template <typename T, int D>
__host__ __device__ constexpr size_t forward_smem_bytes() {
  return (kBM + 4 * kBN) * (D + kPad) * sizeof(T) + 2 * kBN * sizeof(float);
}

template <typename T, int D>
__global__ void __launch_bounds__(kWarps * 32) forward_kernel(AttnParams p) {
  constexpr int S = D + kPad;
  T* Qs = dynamic_smem<T>();
  T* Ks = Qs + kBM * S;       // [2][kBN][S]
  T* Vs = Ks + 2 * kBN * S;   // [2][kBN][S]
  float* days_k = reinterpret_cast<float*>(Vs + 2 * kBN * S);  // [2][kBN] key ages in days

  const int m0 = blockIdx.x * kBM;
  const int bh = blockIdx.y, b = bh / p.Hq, h = bh % p.Hq;
  const int hk = h / (p.Hq / p.Hkv);
  const int L = p.L;
  if (m0 >= L) return;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;

  const T* q = static_cast<const T*>(p.q) + (static_cast<int64_t>(b) * p.Hq + h) * L * D;
  const T* k = static_cast<const T*>(p.k) + (static_cast<int64_t>(b) * p.Hkv + hk) * L * D;
  const T* v = static_cast<const T*>(p.v) + (static_cast<int64_t>(b) * p.Hkv + hk) * L * D;
  const int32_t* seg = p.seg_start + static_cast<int64_t>(b) * L;
  const float* ages = p.ages ? p.ages + static_cast<int64_t>(b) * L : nullptr;
  const float slope = p.slopes ? p.slopes[h] : 0.f;

  // Key tiles from the block's first patient's start to its last query.
  const int first = (seg[m0] / kBN) * kBN;
  const int tiles = (min(L, m0 + kBM) - first + kBN - 1) / kBN;
  auto load_kv = [&](int i) {
    const int n0 = first + i * kBN, buf = i & 1;
    load_tile_async<T, D>(Ks + buf * kBN * S, k, n0, kBN, L);
    load_tile_async<T, D>(Vs + buf * kBN * S, v, n0, kBN, L);
    if (ages)
      for (int c = threadIdx.x; c < kBN; c += blockDim.x) days_k[buf * kBN + c] = n0 + c < L ? ages[n0 + c] * kDaysPerYear : 0.f;
  };
  load_tile_async<T, D>(Qs, q, m0, kBM, L);
  load_kv(0);
  cp_async_commit();

  // This thread's two query rows and their patients' first positions.
  const int r0 = m0 + warp * 16 + g, r1 = r0 + 8;
  const int s0 = r0 < L ? seg[r0] : 0, s1 = r1 < L ? seg[r1] : 0;
  const float day0 = ages && r0 < L ? ages[r0] * kDaysPerYear : 0.f, day1 = ages && r1 < L ? ages[r1] * kDaysPerYear : 0.f;

  uint32_t qa[D / 16][4];
  float o[D / 8][4];
#pragma unroll
  for (int j = 0; j < D / 8; ++j) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.f;
  float row_max[2] = {-FLT_MAX, -FLT_MAX}, row_sum[2] = {0.f, 0.f};
  const float scale2 = p.scale * kLog2e;  // scores in log2 units, for exp2f

  for (int i = 0; i < tiles; ++i) {
    if (i + 1 < tiles) {
      load_kv(i + 1);  // into the other buffer, freed by the barrier that ended the last tile
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    sync_block();
    if (i == 0)
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) load_a<T, S>(qa[kk], Qs, warp * 16, kk * 16);
    const int n0 = first + i * kBN;
    const T* Kb = Ks + (i & 1) * kBN * S;
    const T* Vb = Vs + (i & 1) * kBN * S;
    const float* days = days_k + (i & 1) * kBN;

    float s[kBN / 8][4];
#pragma unroll
    for (int j = 0; j < kBN / 8; ++j) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk)
#pragma unroll
      for (int j = 0; j < kBN / 8; j += 2) {
        uint32_t kb[4];
        load_b_rows<T, S>(kb, Kb, j * 8, kk * 16);
        Traits<T>::mma(s[j], qa[kk], kb[0], kb[1]);
        Traits<T>::mma(s[j + 1], qa[kk], kb[2], kb[3]);
      }

    // Scale, bias, mask (only rows this tile does not lie wholly inside); new row maxima.
    const bool whole0 = r0 < L && n0 + kBN - 1 <= r0 && n0 >= s0;
    const bool whole1 = r1 < L && n0 + kBN - 1 <= r1 && n0 >= s1;
    float tile_max[2] = {-FLT_MAX, -FLT_MAX};
#pragma unroll
    for (int j = 0; j < kBN / 8; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int c = j * 8 + 2 * t + (e & 1);
        float x = s[j][e] * scale2;
        if (ages) x -= slope * log2_gap(e < 2 ? day0 : day1, days[c]);
        if (!(e < 2 ? whole0 : whole1) && !allowed(e < 2 ? r0 : r1, n0 + c, e < 2 ? s0 : s1, L)) x = -INFINITY;
        s[j][e] = x;
        tile_max[e / 2] = fmaxf(tile_max[e / 2], x);
      }
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      tile_max[r] = fmaxf(tile_max[r], shfl_xor(tile_max[r], 1));
      tile_max[r] = fmaxf(tile_max[r], shfl_xor(tile_max[r], 2));
    }
    float alpha[2], new_max[2], tile_sum[2] = {0.f, 0.f};
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      new_max[r] = fmaxf(row_max[r], tile_max[r]);
      // Maxima start at -FLT_MAX, not -inf: a row with no visible key yet gets alpha = 1 and
      // p = exp2(-inf) = 0, never inf - inf.
      alpha[r] = exp2f(row_max[r] - new_max[r]);
    }
    uint32_t pa[kBN / 16][4];
#pragma unroll
    for (int j = 0; j < kBN / 8; ++j) {
      float pv[4];
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        pv[e] = exp2f(s[j][e] - new_max[e / 2]);
        tile_sum[e / 2] += pv[e];
      }
      pa[j / 2][(j % 2) * 2 + 0] = Traits<T>::pack(pv[0], pv[1]);
      pa[j / 2][(j % 2) * 2 + 1] = Traits<T>::pack(pv[2], pv[3]);
    }
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      tile_sum[r] += shfl_xor(tile_sum[r], 1);
      tile_sum[r] += shfl_xor(tile_sum[r], 2);
      row_sum[r] = row_sum[r] * alpha[r] + tile_sum[r];
      row_max[r] = new_max[r];
    }
#pragma unroll
    for (int j = 0; j < D / 8; ++j) {
      o[j][0] *= alpha[0];
      o[j][1] *= alpha[0];
      o[j][2] *= alpha[1];
      o[j][3] *= alpha[1];
    }
    // O += P V. The A fragment order above is (row g, k 0-7), (row g+8, k 0-7), (g, 8-15), (g+8, 8-15).
#pragma unroll
    for (int kk = 0; kk < kBN / 16; ++kk)
#pragma unroll
      for (int j = 0; j < D / 8; j += 2) {
        uint32_t vb[4];
        load_b_cols<T, S>(vb, Vb, kk * 16, j * 8);
        Traits<T>::mma(o[j], pa[kk], vb[0], vb[1]);
        Traits<T>::mma(o[j + 1], pa[kk], vb[2], vb[3]);
      }
    sync_block();  // this buffer is refilled by the prefetch two tiles on
  }

  T* out = static_cast<T*>(p.o) + (static_cast<int64_t>(b) * p.Hq + h) * L * D;
  float* lse = p.lse + (static_cast<int64_t>(b) * p.Hq + h) * L;
  const float inv0 = row_sum[0] > 0 ? 1.f / row_sum[0] : 0.f, inv1 = row_sum[1] > 0 ? 1.f / row_sum[1] : 0.f;
#pragma unroll
  for (int j = 0; j < D / 8; ++j) {
    const int c = j * 8 + 2 * t;
    if (r0 < L) *reinterpret_cast<uint32_t*>(out + static_cast<int64_t>(r0) * D + c) = Traits<T>::pack(o[j][0] * inv0, o[j][1] * inv0);
    if (r1 < L) *reinterpret_cast<uint32_t*>(out + static_cast<int64_t>(r1) * D + c) = Traits<T>::pack(o[j][2] * inv1, o[j][3] * inv1);
  }
  if (t == 0) {
    if (r0 < L) lse[r0] = (row_max[0] + log2f(row_sum[0])) * kLn2;
    if (r1 < L) lse[r1] = (row_max[1] + log2f(row_sum[1])) * kLn2;
  }
}

template <typename T, int D>
const char* launch_forward(const AttnParams& p, void* stream) {
  const size_t smem = forward_smem_bytes<T, D>();
  const dim3 grid((p.L + kBM - 1) / kBM, p.B * p.Hq);
  return launch(forward_kernel<T, D>, grid, kWarps * 32, smem, stream, p);
}

}  // namespace flash

const char* flash_attention_forward(const AttnParams& p, void* stream) {
  using namespace flash;
  if (p.D == 64) return p.dtype == AttnDtype::kBF16 ? launch_forward<bf16, 64>(p, stream) : launch_forward<fp16, 64>(p, stream);
  if (p.D == 128) return p.dtype == AttnDtype::kBF16 ? launch_forward<bf16, 128>(p, stream) : launch_forward<fp16, 128>(p, stream);
  return "flash attention: head dim must be 64 or 128";
}

}  // inline namespace CHART_FLASH_ABI
}  // namespace chart::kernels
