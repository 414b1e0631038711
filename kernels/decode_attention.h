// Decode attention (flash-decoding) for the generation engine: one new query token per row
// against that row's KV cache, split along the keys so that a few long rows still fill the GPU.
// bf16/fp16 in, fp32 accumulation, head dims 64 and 128, grouped KV heads (G = Hq / Hkv query
// heads of one KV head read its keys once), the time-decay bias computed in the kernel.
// Plain CUDA, no torch: kernels/decode_launch.h builds the parameters from tensors.
//
//   o[n, h] = sum_j softmax_j(q[n, h] . k[n, h / G, j] / sqrt(D) - slope[h] ln(1 + |gap_j| days)) v[n, h / G, j]
//   over keys j < length[n] with valid[n, j]   (the query is the row's key length[n] - 1)
//
// Layouts (contiguous): q, o: [N, Hq, D]. k, v: a pool of blocks [blocks, Hkv, block_size, D];
// key j of row n lives in block block_table[n, j / block_size] at offset j % block_size. Without
// a block table, row n is block n and block_size is the cache's capacity: the engine's
// [N, Hkv, capacity, D] cache as it is. ages (fp32 years) and valid (bytes) are per row,
// [N, row_stride], by logical position; slopes [Hq]. A null valid means every key is real, null
// ages or slopes no time bias.
#pragma once
#include <cstdint>

#include "kernels/flash_attention.h"  // AttnDtype, CHART_FLASH_ABI

namespace chart::kernels {

struct DecodeParams {
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  void* o = nullptr;
  const int32_t* lengths = nullptr;      // [N]: keys of each row, its query's included
  const int32_t* block_table = nullptr;  // [N, table_stride] or null
  const uint8_t* valid = nullptr;        // [N, row_stride] or null
  const float* ages = nullptr;           // [N, row_stride] or null
  const float* slopes = nullptr;         // [Hq] or null
  float* o_split = nullptr;              // [N, Hq, splits, D] fp32 scratch (splits > 1)
  float* lse_split = nullptr;            // [N, Hq, splits] fp32 scratch, log2 units (splits > 1)
  int N = 0, Hq = 0, Hkv = 0, D = 0;
  int block_size = 0, table_stride = 0, row_stride = 0;
  int splits = 1, keys_per_split = 0;    // split s covers keys [s, s + 1) * keys_per_split
  float scale = 0;                       // 1/sqrt(D)
  AttnDtype dtype = AttnDtype::kBF16;
};

// The query heads per KV head the kernel is instantiated for.
constexpr bool decode_group_supported(int64_t g) { return g == 1 || g == 2 || g == 4 || g == 8; }

// How many key splits a launch should use: enough blocks (N x Hkv x splits) to fill sm_count
// SMs about twice over, none shorter than 64 keys.
int decode_splits(int64_t N, int64_t Hkv, int64_t max_length, int sm_count);

inline namespace CHART_FLASH_ABI {

// Runs on `stream` (a cudaStream_t); returns a CUDA error string, or nullptr on success.
const char* decode_attention(const DecodeParams& p, void* stream);

}  // inline namespace CHART_FLASH_ABI
}  // namespace chart::kernels
