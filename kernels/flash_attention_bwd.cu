// Flash attention backward (FlashAttention-2 style, written for chart). One block per 64 keys of
// one KV head; 4 warps, each owning 16 keys, accumulate dK and dV in registers over every query
// head of the group (grouped-query attention needs no atomics for dK/dV) and over the query tiles
// that can see those keys (from the keys onwards, until a tile's first query belongs to a later
// patient). Per (key tile, query tile), with P recomputed from the saved logsumexp:
//   P^T = exp(K Q^T scale + bias^T - lse)      dV += P^T dO
//   dP^T = V dO^T     dS^T = P^T (dP^T - delta)   dK += dS^T Q scale
//   dQ += dS K scale  (through shared memory, atomically into an fp32 buffer)
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

// acc (16 x N) = R T^T for 16 rows R of a padded [*, D] shared-memory matrix (this warp's keys)
// and the first N rows of another, T (the query tile): both operands are rows, loaded as pairs.
template <typename T, int D, int N>
__device__ __forceinline__ void rows_times_tile_t(const T* rows, const T* tile, float (&acc)[N / 8][4]) {
  constexpr int S = D + kPad;
  const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
#pragma unroll
  for (int j = 0; j < N / 8; ++j) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.f;
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
    const T* ra = rows + g * S + kk * 16 + 2 * t;
    const uint32_t a[4] = {ld_pair(ra), ld_pair(ra + 8 * S), ld_pair(ra + 8), ld_pair(ra + 8 * S + 8)};
#pragma unroll
    for (int j = 0; j < N / 8; ++j) {
      const T* tb = tile + (j * 8 + g) * S + kk * 16 + 2 * t;
      Traits<T>::mma(acc[j], a, ld_pair(tb), ld_pair(tb + 8));
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
  constexpr int BM = bwd_bm<D>(), BN = kBwdBN, S = D + kPad;
  T* Ks = dynamic_smem<T>();
  T* Vs = Ks + BN * S;
  T* Qs = Vs + BN * S;
  T* dOs = Qs + BM * S;
  float* dSs = reinterpret_cast<float*>(dOs + BM * S);  // [BN][BM + 1]
  float* lse_s = dSs + BN * (BM + 1);
  float* delta_s = lse_s + BM;
  float* ages_q = delta_s + BM;
  int* seg_q = reinterpret_cast<int*>(ages_q + BM);

  const int n0 = blockIdx.x * BN;
  const int bk = blockIdx.y, b = bk / p.Hkv, hk = bk % p.Hkv;
  const int G = p.Hq / p.Hkv, L = p.L;
  if (n0 >= L) return;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int64_t kv_off = (static_cast<int64_t>(b) * p.Hkv + hk) * L * D;
  const int32_t* seg = p.seg_start + static_cast<int64_t>(b) * L;
  const float* ages = p.ages ? p.ages + static_cast<int64_t>(b) * L : nullptr;

  load_tile<T, D>(Ks, static_cast<const T*>(p.k) + kv_off, n0, BN, L);
  load_tile<T, D>(Vs, static_cast<const T*>(p.v) + kv_off, n0, BN, L);
  // This thread's two keys (rows of the transposed score tile).
  const int k0 = n0 + warp * 16 + g, k1 = k0 + 8;
  const float agek0 = ages && k0 < L ? ages[k0] : 0.f, agek1 = ages && k1 < L ? ages[k1] : 0.f;
  const int last_key = min(L, n0 + BN) - 1;

  float dk[D / 8][4], dv[D / 8][4];
#pragma unroll
  for (int j = 0; j < D / 8; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) dk[j][e] = dv[j][e] = 0.f;

  for (int h = hk * G; h < (hk + 1) * G; ++h) {
    const int64_t q_off = (static_cast<int64_t>(b) * p.Hq + h) * L;
    const T* q = static_cast<const T*>(p.q) + q_off * D;
    const T* dout = static_cast<const T*>(p.dout) + q_off * D;
    const float slope = p.slopes ? p.slopes[h] : 0.f;
    float dslope = 0.f;
    for (int m0 = (n0 / BM) * BM; m0 < L; m0 += BM) {
      // Queries from here on start at or after a patient beginning past our last key: done.
      if (seg[m0] > last_key) break;
      sync_block();
      load_tile<T, D>(Qs, q, m0, BM, L);
      load_tile<T, D>(dOs, dout, m0, BM, L);
      for (int i = threadIdx.x; i < BM; i += blockDim.x) {
        const bool in = m0 + i < L;
        lse_s[i] = in ? p.lse[q_off + m0 + i] : 0.f;
        delta_s[i] = in ? p.delta[q_off + m0 + i] : 0.f;
        ages_q[i] = in && ages ? ages[m0 + i] : 0.f;
        seg_q[i] = in ? seg[m0 + i] : L;  // past the end: matches no key
      }
      sync_block();

      // S^T = K Q^T for this warp's 16 keys x BM queries.
      float st[BM / 8][4];
      rows_times_tile_t<T, D, BM>(Ks + warp * 16 * S, Qs, st);
      // P^T. (The time gaps are recomputed where needed: cheaper than holding them in registers.)
#pragma unroll
      for (int j = 0; j < BM / 8; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int key = e < 2 ? k0 : k1, qi = j * 8 + 2 * t + (e & 1), query = m0 + qi;
          float pr = 0.f;
          if (key < L && allowed(query, key, seg_q[qi], L)) {
            const float bias = ages ? slope * time_gap(ages_q[qi], e < 2 ? agek0 : agek1) : 0.f;
            pr = exp2f((st[j][e] * p.scale - bias - lse_s[qi]) * kLog2e);
          }
          st[j][e] = pr;
        }
      // dV += P^T dO  (A = P^T from registers, B = dO[query][d])
#pragma unroll
      for (int kk = 0; kk < BM / 16; ++kk) {
        uint32_t a[4];
        c_tiles_to_a<T>(st, kk, a);
#pragma unroll
        for (int j = 0; j < D / 8; ++j) {
          const T* db = dOs + (kk * 16 + 2 * t) * S + j * 8 + g;
          Traits<T>::mma(dv[j], a, ld_col_pair(db, S), ld_col_pair(db + 8 * S, S));
        }
      }
      // dP^T = V dO^T  (A = V rows of our keys, B = dO[query][d] pairs)
      float dpt[BM / 8][4];
      rows_times_tile_t<T, D, BM>(Vs + warp * 16 * S, dOs, dpt);
      // dS^T = P^T (dP^T - delta); the slope gradient; dS^T to shared memory for dQ.
#pragma unroll
      for (int j = 0; j < BM / 8; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int qi = j * 8 + 2 * t + (e & 1);
          const float ds = st[j][e] * (dpt[j][e] - delta_s[qi]);
          if (ages && ds != 0.f) dslope -= ds * time_gap(ages_q[qi], e < 2 ? agek0 : agek1);
          st[j][e] = ds;
          dSs[(warp * 16 + g + (e < 2 ? 0 : 8)) * (BM + 1) + qi] = ds;
        }
      // dK += dS^T Q scale  (A = dS^T from registers, B = Q[query][d])
#pragma unroll
      for (int kk = 0; kk < BM / 16; ++kk) {
        uint32_t a[4];
        c_tiles_to_a<T>(st, kk, a);
#pragma unroll
        for (int j = 0; j < D / 8; ++j) {
          const T* qb = Qs + (kk * 16 + 2 * t) * S + j * 8 + g;
          Traits<T>::mma(dk[j], a, ld_col_pair(qb, S), ld_col_pair(qb + 8 * S, S));
        }
      }
      sync_block();
      // dQ[query][d] += sum_key dS[query][key] K[key][d] scale: warps split the queries into 16-row
      // slices (BM / 16 of them) and the key dimension in k16 steps.
      for (int slice = warp; slice < BM / 16; slice += kBwdWarps) {
        float dq[D / 8][4];
#pragma unroll
        for (int j = 0; j < D / 8; ++j) dq[j][0] = dq[j][1] = dq[j][2] = dq[j][3] = 0.f;
#pragma unroll
        for (int kk = 0; kk < BN / 16; ++kk) {
          const int qr = slice * 16 + g, kc = kk * 16 + 2 * t;
          auto ds = [&](int key, int query) { return dSs[key * (BM + 1) + query]; };
          const uint32_t a[4] = {Traits<T>::pack(ds(kc, qr), ds(kc + 1, qr)), Traits<T>::pack(ds(kc, qr + 8), ds(kc + 1, qr + 8)),
                                 Traits<T>::pack(ds(kc + 8, qr), ds(kc + 9, qr)),
                                 Traits<T>::pack(ds(kc + 8, qr + 8), ds(kc + 9, qr + 8))};
#pragma unroll
          for (int j = 0; j < D / 8; ++j) {
            const T* kb = Ks + (kk * 16 + 2 * t) * S + j * 8 + g;
            Traits<T>::mma(dq[j], a, ld_col_pair(kb, S), ld_col_pair(kb + 8 * S, S));
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
    }
    if (p.dslopes) {
      for (int off = 16; off > 0; off /= 2) dslope += shfl_xor(dslope, off);
      if (lane == 0) atomic_add(p.dslopes + h, dslope);
    }
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
  constexpr int BM = bwd_bm<D>();
  const int64_t rows = static_cast<int64_t>(p.B) * p.Hq * p.L;
  const char* err = launch(delta_kernel<T, D>, dim3(static_cast<unsigned>((rows * 32 + 255) / 256)), 256, 0, stream, p);
  if (err) return err;
  const size_t smem = (2 * kBwdBN + 2 * BM) * (D + kPad) * sizeof(T) + kBwdBN * (BM + 1) * sizeof(float) +
                      3 * BM * sizeof(float) + BM * sizeof(int);
  const dim3 grid((p.L + kBwdBN - 1) / kBwdBN, p.B * p.Hkv);
  return launch(backward_kernel<T, D>, grid, kBwdWarps * 32, smem, stream, p);
}

}  // namespace flash

const char* flash_attention_backward(const AttnParams& p, void* stream) {
  using namespace flash;
  if (p.D == 64) return p.dtype == AttnDtype::kBF16 ? launch_backward<bf16, 64>(p, stream) : launch_backward<fp16, 64>(p, stream);
  if (p.D == 128) return p.dtype == AttnDtype::kBF16 ? launch_backward<bf16, 128>(p, stream) : launch_backward<fp16, 128>(p, stream);
  return "flash attention: head dim must be 64 or 128";
}

}  // inline namespace CHART_FLASH_ABI
}  // namespace chart::kernels
