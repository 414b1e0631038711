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
#include "kernels/flash_forward_tile.cuh"

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
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4;

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
      for (int c = threadIdx.x; c < kBN; c += blockDim.x) days_k[buf * kBN + c] = n0 + c < L ? ages[n0 + c] * kDaysPerYearF : 0.f;
  };
  load_tile_async<T, D>(Qs, q, m0, kBM, L);
  load_kv(0);
  cp_async_commit();

  // This thread's two query rows (warp w holds rows 16w + g and + 8).
  QueryRows rows;
  rows.r[0] = m0 + warp * 16 + g;
  rows.r[1] = rows.r[0] + 8;
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    rows.seg[i] = rows.r[i] < L ? seg[rows.r[i]] : 0;
    rows.day[i] = ages && rows.r[i] < L ? ages[rows.r[i]] * kDaysPerYearF : 0.f;
  }

  uint32_t qa[D / 16][4];
  float o[D / 8][4];
#pragma unroll
  for (int j = 0; j < D / 8; ++j) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.f;
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

    uint32_t pa[kBN / 16][4];
    softmax_tile<T, kBN, D>(s, o, pa, rows, n0, days, ages != nullptr, slope, scale2, L);
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

  const int64_t head = static_cast<int64_t>(b) * p.Hq + h;
  write_output<T, D>(o, rows, static_cast<T*>(p.o) + head * L * D, p.lse + head * L, L);
}

template <typename T, int D>
const char* launch_forward(const AttnParams& p, void* stream) {
  const size_t smem = forward_smem_bytes<T, D>();
  const dim3 grid((p.L + kBM - 1) / kBM, p.B * p.Hq);
  return launch(forward_kernel<T, D>, grid, kWarps * 32, smem, stream, p);
}

}  // namespace flash

const char* flash_attention_forward(const AttnParams& p, void* stream) {
  return flash::dispatch_shape(p, [&](auto s) {
    return flash::launch_forward<typename decltype(s)::T, decltype(s)::D>(p, stream);
  });
}

}  // inline namespace CHART_FLASH_ABI
}  // namespace chart::kernels
