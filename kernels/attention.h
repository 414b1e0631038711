// Attention for packed patient timelines: the one dispatch point the model calls.
//
//   out[b,h,i] = sum_j softmax_j( q[b,h,i].k[b,g(h),j] / sqrt(D) + bias[b,h,i,j] ) v[b,g(h),j]
//   over j <= i with segments[b,j] == segments[b,i]   (causal, never across patients)
//   bias[b,h,i,j] = -slopes[h] * log(1 + |age_i - age_j| in days)   (optional time decay)
//   g(h) = h / (Hq / Hkv)                                        (grouped-query attention)
//
// On a GPU with the custom kernels built and a supported dtype and head dim, the CUDA kernels run;
// otherwise the LibTorch reference below, which is also the oracle the kernel tests compare
// against. kernels/attention_dispatch.h makes that choice and says why (for the log).
#pragma once
#include <torch/types.h>

#include "kernels/attention_dispatch.h"

namespace chart::kernels {

// q: [B, Hq, L, D]; k, v: [B, Hkv, L, D]; segments: [B, L] int32 (padding: -1, a segment of its
// own); ages: [B, L] float32 years, and slopes: [Hq] float32, both undefined for no time bias.
// Returns [B, Hq, L, D] in q's dtype. mode: model.attention.
torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const torch::Tensor& segments, const torch::Tensor& ages,
                        const torch::Tensor& slopes, AttentionMode mode = AttentionMode::kAuto);

// The same function in plain LibTorch ops (scaled_dot_product_attention with a mask).
torch::Tensor attention_reference(const torch::Tensor& q, const torch::Tensor& k,
                                  const torch::Tensor& v, const torch::Tensor& segments,
                                  const torch::Tensor& ages, const torch::Tensor& slopes);

// Decode attention (the generation engine's step): one new query per row against that row's KV
// cache. q [N, Hq, D]; k, v the cache [N, Hkv, capacity, D]; positions [N] int64, each row's query
// position (it sees keys 0..position, its own included); end = max(positions) + 1; valid
// [N, capacity] bool marks real keys (undefined: all are); ages [N, capacity] float years and
// slopes [Hq] as above (undefined: no time bias). Returns [N, Hq, D] in q's dtype. On a GPU with
// the kernels built the decode kernel runs (kernels/decode_attention.h), otherwise the reference;
// mode kKernels where the kernel cannot run (dtype, head dim, a KV group other than 1, 2, 4, 8)
// is an error.
torch::Tensor decode_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               const torch::Tensor& positions, int64_t end, const torch::Tensor& valid,
                               const torch::Tensor& ages, const torch::Tensor& slopes,
                               AttentionMode mode = AttentionMode::kAuto);
torch::Tensor decode_attention_reference(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                         const torch::Tensor& positions, int64_t end, const torch::Tensor& valid,
                                         const torch::Tensor& ages, const torch::Tensor& slopes);

// The time-decay bias -slopes[h] * log(1 + |age_i - age_j| in days), [B, Hq, Lq, Lk] float32, for
// queries aged query_ages [B, Lq] and keys aged key_ages [B, Lk] (float years): the one formula of
// the reference and the KV-cache decode (the kernels compute it in place, kernels/flash_common.cuh).
torch::Tensor time_decay_bias(const torch::Tensor& query_ages, const torch::Tensor& key_ages,
                              const torch::Tensor& slopes);

// [B, L] int32: the first position of each position's patient (patients are contiguous runs of
// equal segment ids, as the loader packs them); what the kernels take instead of segment ids.
torch::Tensor segment_starts(const torch::Tensor& segments);

}  // namespace chart::kernels
