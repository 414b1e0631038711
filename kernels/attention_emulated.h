// kernels::attention()'s CUDA path with the kernels run by the CPU SIMT emulator on CPU tensors:
// the same autograd wrapper (kernels/flash_autograd.h) around the same kernel source, so the
// tests check the wrapper too (tests/test_attention_emulated.cpp). Slow: small shapes only.
#pragma once
#include <torch/types.h>

namespace chart::kernels {

// As attention(): bf16/fp16 CPU tensors, head dim 64 or 128; sm90 runs the wgmma forward.
torch::Tensor attention_emulated(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                 const torch::Tensor& segments, const torch::Tensor& ages, const torch::Tensor& slopes,
                                 bool sm90 = false);

// As decode_attention(), on the emulated decode kernel, with its two knobs exposed for the tests:
// block_table (k, v are then a pool of blocks; kernels/decode_attention.h) and splits (0: as many
// as a 132-SM GPU would use).
torch::Tensor decode_attention_emulated(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                        const torch::Tensor& positions, int64_t end, const torch::Tensor& valid,
                                        const torch::Tensor& ages, const torch::Tensor& slopes,
                                        const torch::Tensor& block_table, int64_t splits);

}  // namespace chart::kernels
