// Flash attention backward (FlashAttention-2 style, written for chart). One block per 64 keys of
// one KV head; 4 warps, each owning 16 keys, accumulate dK and dV in registers over every query
// head of the group (grouped-query attention needs no atomics for dK/dV) and over the query tiles
// that can see those keys (from the keys onwards, until a tile's first query belongs to a later
// patient). Query tiles stream through two shared-memory buffers (cp.async prefetches the next
// (head, tile) while this one computes); fragments come by ldmatrix. Per (key tile, query tile),
// with P recomputed from the saved logsumexp:
//   P^T = exp(K Q^T scale + bias^T - lse)      dV += P^T dO
//   dP^T = V dO^T     dS^T = P^T (dP^T - delta)   dK += dS^T Q scale
//   dQ += dS K scale  (dS through shared memory, atomically into an fp32 buffer)
//   dslope_h -= sum dS * log(1 + |gap| days)
// delta = rowsum(dO * O) comes from a small kernel first.
#include <cfloat>

#include "kernels/flash_attention.h"
#include "kernels/flash_common.cuh"

namespace chart::kernels {
inline namespace CHART_FLASH_ABI {
namespace flash {

constexpr int kBwdBN = 64, kBwdWarps = 4;
template <int D> __host__ __device__ constexpr int bwd_bm() { return D == 64 ? 64 : 32; }  // fits registers at D=128

template <typename T, int D>
__host__ __device__ constexpr size_t backward_smem_bytes() {
  constexpr int BM = bwd_bm<D>();
  return (2 * kBwdBN + 4 * BM) * (D + kPad) * sizeof(T) + kBwdBN * (BM + kPad) * sizeof(T) + 2 * 4 * BM * sizeof(float);
}

// acc (16 x N) = R T^T for the 16 rows R of a padded [*, D] shared-memory matrix starting at
// `rows` (this warp's keys) and the first N rows of another, `tile` (the query tile).
template <typename T, int D, int N>
__device__ __forceinline__ void rows_times_tile_t(const T* rows, const T* tile, float (&acc)[N / 8][4]) {
  constexpr int S = D + kPad;
#pragma unroll
  for (int j = 0; j < N / 8; ++j) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.f;
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
    uint32_t a[4];
    load_a<T, S>(a, rows, 0, kk * 16);
#pragma unroll
    for (int j = 0; j < N / 8; j += 2) {
      uint32_t b[4];
      load_b_rows<T, S>(b, tile, j * 8, kk * 16);
      Traits<T>::mma(acc[j], a, b[0], b[1]);
      Traits<T>::mma(acc[j + 1], a, b[2], b[3]);
    }
  }
}

// acc (16 x D) += A B, A (16 x BM) the fragments c (C tiles over BM columns), B the [BM, D] tile
// at `tile`: the dV += P^T dO and dK += dS^T Q products.
template <typename T, int D, int BM>
__device__ __forceinline__ void regs_times_tile(const float (&c)[BM / 8][4], const T* tile, float (&acc)[D / 8][4]) {
  constexpr int S = D + kPad;
#pragma unroll
  for (int kk = 0; kk < BM / 16; ++kk) {
    uint32_t a[4];
    c_tiles_to_a<T>(c, kk, a);
#pragma unroll
    for (int j = 0; j < D / 8; j += 2) {
      uint32_t b[4];
      load_b_cols<T, S>(b, tile, kk * 16, j * 8);
      Traits<T>::mma(acc[j], a, b[0], b[1]);
      Traits<T>::mma(acc[j + 1], a, b[2], b[3]);
    }
  }
}

template <typename T, int D>
__global__ void delta_kernel(AttnParams p) {
  // One warp per query row: delta = sum_d dO * O.
  const int64_t row = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (row >= static_cast<int64_t>(p.B) * p.Hq * p.L) return;
  const T* o = static_cast<const T*>(p.o) + row * D;
  const T* d = static_cast<const T*>(p.dout) + row * D;
  float acc = 0.f;
  for (int c = lane; c < D; c += 32) acc += Traits<T>::to_float(o[c]) * Traits<T>::to_float(d[c]);
  for (int off = 16; off > 0; off /= 2) acc += shfl_xor(acc, off);
  if (lane == 0) p.delta[row] = acc;
}

template <typename T, int D>
__global__ void __launch_bounds__(kBwdWarps * 32) backward_kernel(AttnParams p) {
  constexpr int BM = bwd_bm<D>(), BN = kBwdBN, S = D + kPad, SD = BM + kPad;
  T* Ks = dynamic_smem<T>();
  T* Vs = Ks + BN * S;
  T* Qs = Vs + BN * S;         // [2][BM][S]
  T* dOs = Qs + 2 * BM * S;    // [2][BM][S]
  T* dSs = dOs + 2 * BM * S;   // [BN][SD]: dS^T, keys x queries
  float* lse_s = reinterpret_cast<float*>(dSs + BN * SD);  // [2][BM], log2 units
  float* delta_s = lse_s + 2 * BM;                         // [2][BM]
  float* days_q = delta_s + 2 * BM;                        // [2][BM]
  int* seg_q = reinterpret_cast<int*>(days_q + 2 * BM);    // [2][BM]

  const int n0 = blockIdx.x * BN;
  const int bk = blockIdx.y, b = bk / p.Hkv, hk = bk % p.Hkv;
  const int G = p.Hq / p.Hkv, L = p.L;
  if (n0 >= L) return;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int64_t kv_off = (static_cast<int64_t>(b) * p.Hkv + hk) * L * D;
  const int32_t* seg = p.seg_start + static_cast<int64_t>(b) * L;
  const float* ages = p.ages ? p.ages + static_cast<int64_t>(b) * L : nullptr;
  const float scale2 = p.scale * kLog2e;

  // The (head, query tile) items this block visits, in order: every head of the group, and per
  // head the tiles from the one holding key n0 until one whose first query starts a patient after
  // our last key (seg_start never decreases along a row).
  const int last_key = min(L, n0 + BN) - 1;
  const int m_first = (n0 / BM) * BM;
  auto advance = [&](int& h, int& m0) {
    m0 += BM;
    if (m0 < L && seg[m0] <= last_key) return true;
    m0 = m_first;
    return ++h < (hk + 1) * G;
  };
  auto load_q = [&](int buf, int h, int m0) {
    const int64_t q_off = (static_cast<int64_t>(b) * p.Hq + h) * L;
    load_tile_async<T, D>(Qs + buf * BM * S, static_cast<const T*>(p.q) + q_off * D, m0, BM, L);
    load_tile_async<T, D>(dOs + buf * BM * S, static_cast<const T*>(p.dout) + q_off * D, m0, BM, L);
    for (int i = threadIdx.x; i < BM; i += blockDim.x) {
      const bool in = m0 + i < L;
      lse_s[buf * BM + i] = in ? p.lse[q_off + m0 + i] * kLog2e : 0.f;
      delta_s[buf * BM + i] = in ? p.delta[q_off + m0 + i] : 0.f;
      days_q[buf * BM + i] = in && ages ? ages[m0 + i] * kDaysPerYearF : 0.f;
      seg_q[buf * BM + i] = in ? seg[m0 + i] : L;  // past the end: matches no key
    }
  };

  const T* k = static_cast<const T*>(p.k) + kv_off;
  const T* v = static_cast<const T*>(p.v) + kv_off;
  load_tile_async<T, D>(Ks, k, n0, BN, L);
  load_tile_async<T, D>(Vs, v, n0, BN, L);
  int h = hk * G, m0 = m_first;
  load_q(0, h, m0);
  cp_async_commit();

  // This thread's two keys (rows of the transposed score tile).
  const int k0 = n0 + warp * 16 + g, k1 = k0 + 8;
  const float dayk0 = ages && k0 < L ? ages[k0] * kDaysPerYearF : 0.f, dayk1 = ages && k1 < L ? ages[k1] * kDaysPerYearF : 0.f;

  float dk[D / 8][4], dv[D / 8][4];
#pragma unroll
  for (int j = 0; j < D / 8; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) dk[j][e] = dv[j][e] = 0.f;
  float dslope = 0.f;

  for (int buf = 0;; buf ^= 1) {
    int next_h = h, next_m0 = m0;
    const bool more = advance(next_h, next_m0);
    if (more) {
      load_q(buf ^ 1, next_h, next_m0);  // the other buffer, free since the last tile's barrier
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    sync_block();
    const T* Qb = Qs + buf * BM * S;
    const T* dOb = dOs + buf * BM * S;
    const float* lse_b = lse_s + buf * BM;
    const float* delta_b = delta_s + buf * BM;
    const float* days_b = days_q + buf * BM;
    const int* seg_b = seg_q + buf * BM;
    const float slope = p.slopes ? p.slopes[h] : 0.f;

    // S^T = K Q^T for this warp's 16 keys x BM queries, then P^T. A key sees the whole tile when
    // every query is at or after it, inside the sequence, and in its patient.
    float st[BM / 8][4];
    rows_times_tile_t<T, D, BM>(Ks + warp * 16 * S, Qb, st);
    const bool tile_in = m0 + BM <= L;
    const bool whole0 = tile_in && k0 <= m0 && seg_b[BM - 1] <= k0;
    const bool whole1 = tile_in && k1 <= m0 && seg_b[BM - 1] <= k1;
#pragma unroll
    for (int j = 0; j < BM / 8; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int key = e < 2 ? k0 : k1, qi = j * 8 + 2 * t + (e & 1);
        float x = st[j][e] * scale2 - lse_b[qi];
        if (ages) x -= slope * log2_gap(days_b[qi], e < 2 ? dayk0 : dayk1);
        const bool whole = e < 2 ? whole0 : whole1;
        st[j][e] = whole || (key < L && allowed(m0 + qi, key, seg_b[qi], L)) ? exp2f(x) : 0.f;
      }
    // dV += P^T dO
    regs_times_tile<T, D, BM>(st, dOb, dv);
    // dP^T = V dO^T
    float dpt[BM / 8][4];
    rows_times_tile_t<T, D, BM>(Vs + warp * 16 * S, dOb, dpt);
    // dS^T = P^T (dP^T - delta); the slope gradient; dS^T to shared memory for dQ.
#pragma unroll
    for (int j = 0; j < BM / 8; ++j) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int qi = j * 8 + 2 * t + (e & 1);
        const float ds = st[j][e] * (dpt[j][e] - delta_b[qi]);
        if (ages && ds != 0.f) dslope -= ds * log2_gap(days_b[qi], e < 2 ? dayk0 : dayk1) * kLn2;
        st[j][e] = ds;
      }
      const int qi = j * 8 + 2 * t;
      *reinterpret_cast<uint32_t*>(dSs + (warp * 16 + g) * SD + qi) = Traits<T>::pack(st[j][0], st[j][1]);
      *reinterpret_cast<uint32_t*>(dSs + (warp * 16 + g + 8) * SD + qi) = Traits<T>::pack(st[j][2], st[j][3]);
    }
    // dK += dS^T Q (scaled at the end)
    regs_times_tile<T, D, BM>(st, Qb, dk);
    sync_block();
    // dQ[query][d] += sum_key dS[query][key] K[key][d] scale: warps split the queries into 16-row
    // slices (BM / 16 of them) and the key dimension in k16 steps.
    const int64_t q_off = (static_cast<int64_t>(b) * p.Hq + h) * L;
    for (int slice = warp; slice < BM / 16; slice += kBwdWarps) {
      float dq[D / 8][4];
#pragma unroll
      for (int j = 0; j < D / 8; ++j) dq[j][0] = dq[j][1] = dq[j][2] = dq[j][3] = 0.f;
#pragma unroll
      for (int kk = 0; kk < BN / 16; ++kk) {
        uint32_t a[4];
        load_a_cols<T, SD>(a, dSs, slice * 16, kk * 16);
#pragma unroll
        for (int j = 0; j < D / 8; j += 2) {
          uint32_t kb[4];
          load_b_cols<T, S>(kb, Ks, kk * 16, j * 8);
          Traits<T>::mma(dq[j], a, kb[0], kb[1]);
          Traits<T>::mma(dq[j + 1], a, kb[2], kb[3]);
        }
      }
      const int qa = m0 + slice * 16 + g, qb = qa + 8;
      float* dq_out = p.dq_accum + q_off * D;
#pragma unroll
      for (int j = 0; j < D / 8; ++j) {
        const int c = j * 8 + 2 * t;
        if (qa < L) {
          atomic_add(dq_out + static_cast<int64_t>(qa) * D + c, dq[j][0] * p.scale);
          atomic_add(dq_out + static_cast<int64_t>(qa) * D + c + 1, dq[j][1] * p.scale);
        }
        if (qb < L) {
          atomic_add(dq_out + static_cast<int64_t>(qb) * D + c, dq[j][2] * p.scale);
          atomic_add(dq_out + static_cast<int64_t>(qb) * D + c + 1, dq[j][3] * p.scale);
        }
      }
    }
    if (p.dslopes && (!more || next_h != h)) {  // this head is done
      for (int off = 16; off > 0; off /= 2) dslope += shfl_xor(dslope, off);
      if (lane == 0) atomic_add(p.dslopes + h, dslope);
      dslope = 0.f;
    }
    if (!more) break;
    h = next_h;
    m0 = next_m0;
  }

  T* dk_out = static_cast<T*>(p.dk) + kv_off;
  T* dv_out = static_cast<T*>(p.dv) + kv_off;
#pragma unroll
  for (int j = 0; j < D / 8; ++j) {
    const int c = j * 8 + 2 * t;
    if (k0 < L) {
      *reinterpret_cast<uint32_t*>(dk_out + static_cast<int64_t>(k0) * D + c) = Traits<T>::pack(dk[j][0] * p.scale, dk[j][1] * p.scale);
      *reinterpret_cast<uint32_t*>(dv_out + static_cast<int64_t>(k0) * D + c) = Traits<T>::pack(dv[j][0], dv[j][1]);
    }
    if (k1 < L) {
      *reinterpret_cast<uint32_t*>(dk_out + static_cast<int64_t>(k1) * D + c) = Traits<T>::pack(dk[j][2] * p.scale, dk[j][3] * p.scale);
      *reinterpret_cast<uint32_t*>(dv_out + static_cast<int64_t>(k1) * D + c) = Traits<T>::pack(dv[j][2], dv[j][3]);
    }
  }
}

template <typename T, int D>
const char* launch_backward(const AttnParams& p, void* stream) {
  const int64_t rows = static_cast<int64_t>(p.B) * p.Hq * p.L;
  const char* err = launch(delta_kernel<T, D>, dim3(static_cast<unsigned>((rows * 32 + 255) / 256)), 256, 0, stream, p);
  if (err) return err;
  const size_t smem = backward_smem_bytes<T, D>();
  const dim3 grid((p.L + kBwdBN - 1) / kBwdBN, p.B * p.Hkv);
  return launch(backward_kernel<T, D>, grid, kBwdWarps * 32, smem, stream, p);
}

}  // namespace flash

const char* flash_attention_backward(const AttnParams& p, void* stream) {
  return flash::dispatch_shape(p, [&](auto s) {
    return flash::launch_backward<typename decltype(s)::T, decltype(s)::D>(p, stream);
  });
}

}  // inline namespace CHART_FLASH_ABI
}  // namespace chart::kernels
