// What a launch of the decode attention kernel (kernels/decode_attention.h) needs, built from
// tensors in one place for the GPU and the emulated kernel alike: the checks, the lengths, the
// split count and its scratch, and the DecodeParams pointing at them. Plain LibTorch.
#pragma once
#include <torch/types.h>

#include "kernels/decode_attention.h"

namespace chart::kernels {

struct DecodeTensors {
  torch::Tensor q, k, v, lengths, block_table, valid, ages, slopes;  // inputs
  torch::Tensor o, o_split, lse_split;                               // output and scratch
  int64_t block_size = 0, splits = 1, keys_per_split = 1;
};

// q [N, Hq, D]; k, v [blocks, Hkv, block_size, D]; positions [N] int64 (the query's position in
// its row: keys 0..position); end: max(positions) + 1; valid [N, W] bool, ages [N, W] fp32 years
// and slopes [Hq] (undefined: all real, no bias); block_table [N, pages] int (undefined: row n
// is block n). splits 0: decode_splits for sm_count SMs. Checks every shape, naming it.
DecodeTensors decode_inputs(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                            const torch::Tensor& positions, int64_t end, const torch::Tensor& valid,
                            const torch::Tensor& ages, const torch::Tensor& slopes, const torch::Tensor& block_table,
                            int64_t splits, int sm_count);
DecodeParams decode_params(const DecodeTensors& t);

}  // namespace chart::kernels
