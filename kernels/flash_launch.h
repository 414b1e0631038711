// What a launch of the flash attention kernels needs, built from tensors in one place for the GPU
// and the emulated kernels alike: the input checks, contiguous 16-byte-aligned inputs, the output
// and gradient buffers, and the AttnParams pointing at them. Plain LibTorch, no CUDA headers.
#pragma once
#include <torch/types.h>

#include "kernels/flash_attention.h"

namespace chart::kernels {

// Every tensor a launch reads or writes (layouts in kernels/flash_attention.h); undefined ones
// give null pointers (ages and slopes: no time bias).
struct FlashTensors {
  torch::Tensor q, k, v, seg_start, ages, slopes;       // inputs
  torch::Tensor o, lse;                                 // forward outputs, backward inputs
  torch::Tensor dout, delta, dq_accum, dk, dv, dslopes;  // backward only
};

// The kernels' parameters for t: pointers, shapes from q and k, scale 1/sqrt(D), dtype from q.
AttnParams attention_params(const FlashTensors& t);

// attention()'s arguments checked against what the kernels take, segments turned into seg_start,
// ages and slopes into fp32 on q's device (left undefined without a time bias).
FlashTensors flash_inputs(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                          const torch::Tensor& segments, const torch::Tensor& ages, const torch::Tensor& slopes);
// The forward's: q, k, v contiguous and 16-byte aligned (the kernels read rows as 16-byte
// vectors, so a view with an odd storage offset is copied), o and lse allocated.
FlashTensors flash_forward_buffers(FlashTensors t);
// The backward's, from the forward's tensors and the output gradient: dout aligned in q's dtype,
// dq_accum and dslopes zeroed (the kernels add into them), delta, dk and dv allocated.
FlashTensors flash_backward_buffers(FlashTensors t, const torch::Tensor& dout);

// Throws the kernels' error string, if there is one, saying which launch failed.
void check_launch(const char* error, const char* what);

}  // namespace chart::kernels
