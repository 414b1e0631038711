// Flash attention for packed patient timelines on NVIDIA GPUs (sm_80+): forward and backward,
// bf16/fp16 in, fp32 accumulation, head dims 64 and 128, causal within each patient, grouped KV
// heads, and an optional time-decay bias computed in the kernel from per-token ages.
// Plain CUDA, no torch: kernels/flash_autograd.h wraps these in an autograd Function.
//
// Layouts (contiguous): q, o, do, dq: [B, Hq, L, D]; k, v, dk, dv: [B, Hkv, L, D];
// seg_start: [B, L] int32, the first position of each position's patient (patients are
// contiguous runs, as the loader packs them); ages: [B, L] fp32 years; slopes: [Hq] fp32.
// lse: [B, Hq, L] fp32, the natural-log softmax normaliser saved for the backward.
#pragma once
#include <cstdint>

// The kernels compile for a GPU (nvcc) or, as plain C++, for the CPU SIMT emulator that CI tests
// them with; the two builds' kernels live in different inline namespaces so one binary can hold both.
#ifdef CHART_SIMT_EMULATION
#define CHART_FLASH_ABI simt_emulated
#else
#define CHART_FLASH_ABI cuda
#endif

namespace chart::kernels {

// The launch parameters are the same plain struct in both builds (kernels/flash_launch.h builds
// them from tensors); only the kernels differ.
enum class AttnDtype { kBF16, kFP16 };

// The head dims the kernels are instantiated for (flash_common.cuh, dispatch_shape).
constexpr bool flash_head_dim_supported(int64_t D) { return D == 64 || D == 128; }

struct AttnParams {
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  void* o = nullptr;
  float* lse = nullptr;
  const int32_t* seg_start = nullptr;
  const float* ages = nullptr;    // null: no time bias
  const float* slopes = nullptr;  // null: no time bias
  int B = 0, Hq = 0, Hkv = 0, L = 0, D = 0;
  float scale = 0;                // 1/sqrt(D)
  AttnDtype dtype = AttnDtype::kBF16;
  // Backward only.
  const void* dout = nullptr;
  float* delta = nullptr;         // [B, Hq, L] scratch: rowsum(dO * O)
  float* dq_accum = nullptr;      // [B, Hq, L, D] fp32, zeroed by the caller
  void* dk = nullptr;
  void* dv = nullptr;
  float* dslopes = nullptr;       // [Hq] fp32, zeroed by the caller; null without time bias
};

inline namespace CHART_FLASH_ABI {

// Both run on `stream` (a cudaStream_t) and return a CUDA error string, or nullptr on success.
const char* flash_attention_forward(const AttnParams& p, void* stream);
const char* flash_attention_backward(const AttnParams& p, void* stream);
// The forward on Hopper warpgroup MMA (kernels/flash_attention_fwd_sm90.cu): sm_90 GPUs only,
// built for sm_90a; the same contract as flash_attention_forward.
const char* flash_attention_forward_sm90(const AttnParams& p, void* stream);

}  // inline namespace CHART_FLASH_ABI
}  // namespace chart::kernels
