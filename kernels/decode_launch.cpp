#include "kernels/decode_launch.h"

#include <algorithm>
#include <cmath>

namespace chart::kernels {

int decode_splits(int64_t N, int64_t Hkv, int64_t max_length, int sm_count) {
  constexpr int64_t kMinKeys = 64;
  const int64_t blocks = std::max<int64_t>(1, N * Hkv);
  const int64_t want = (2 * static_cast<int64_t>(std::max(sm_count, 1)) + blocks - 1) / blocks;
  const int64_t most = std::max<int64_t>(1, (max_length + kMinKeys - 1) / kMinKeys);
  return static_cast<int>(std::clamp<int64_t>(want, 1, std::min<int64_t>(most, 64)));
}

DecodeTensors decode_inputs(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                            const torch::Tensor& positions, int64_t end, const torch::Tensor& valid,
                            const torch::Tensor& ages, const torch::Tensor& slopes, const torch::Tensor& block_table,
                            int64_t splits, int sm_count) {
  TORCH_CHECK(q.scalar_type() == torch::kBFloat16 || q.scalar_type() == torch::kFloat16,
              "decode attention: the kernel takes bf16 or fp16, not ", q.scalar_type());
  TORCH_CHECK(k.scalar_type() == q.scalar_type() && v.scalar_type() == q.scalar_type(),
              "decode attention: q, k, v must share a dtype");
  TORCH_CHECK(q.dim() == 3 && k.dim() == 4 && k.sizes() == v.sizes() && k.size(3) == q.size(2),
              "decode attention: q [N, Hq, D] and k, v [blocks, Hkv, block_size, D] disagree: ", q.sizes(), " ",
              k.sizes(), " ", v.sizes());
  TORCH_CHECK(flash_head_dim_supported(q.size(2)), "decode attention: head dim must be 64 or 128, not ", q.size(2));
  TORCH_CHECK(k.size(1) > 0 && q.size(1) % k.size(1) == 0 && decode_group_supported(q.size(1) / k.size(1)),
              "decode attention: ", q.size(1), " query heads over ", k.size(1), " KV heads (1, 2, 4 or 8 per KV head)");
  const int64_t N = q.size(0);
  TORCH_CHECK(positions.dim() == 1 && positions.size(0) == N, "decode attention: positions must be [N]");
  TORCH_CHECK(N <= 65535, "decode attention: ", N, " rows exceed the grid limit (65535)");
  DecodeTensors t;
  t.q = q.contiguous();
  t.k = k.contiguous();
  t.v = v.contiguous();
  t.block_size = k.size(2);
  const int64_t capacity = block_table.defined() ? block_table.size(1) * t.block_size : t.block_size;
  TORCH_CHECK(end >= 1 && end <= capacity, "decode attention: keys up to ", end, " in rows of ", capacity);
  if (block_table.defined()) {
    TORCH_CHECK(block_table.dim() == 2 && block_table.size(0) == N, "decode attention: block_table must be [N, pages]");
    t.block_table = block_table.to(q.device(), torch::kInt32).contiguous();
  } else {
    TORCH_CHECK(k.size(0) == N, "decode attention: without a block table k holds one block per row");
  }
  t.lengths = (positions.to(q.device(), torch::kInt64) + 1).to(torch::kInt32).contiguous();
  auto per_row = [&](const torch::Tensor& x, torch::ScalarType type, const char* what) {
    TORCH_CHECK(x.dim() == 2 && x.size(0) == N && x.size(1) >= end, "decode attention: ", what,
                " must be [N, >= keys], not ", x.sizes());
    return x.to(q.device(), type).contiguous();
  };
  // The cache's bool flags are read as bytes in place (same size): no copy per layer and step.
  if (valid.defined())
    t.valid = per_row(valid.scalar_type() == torch::kBool ? valid.view(torch::kUInt8) : valid, torch::kUInt8, "valid");
  if (ages.defined() && slopes.defined()) {
    t.ages = per_row(ages, torch::kFloat32, "ages");
    TORCH_CHECK(!t.valid.defined() || t.valid.size(1) == t.ages.size(1), "decode attention: valid and ages differ in width");
    TORCH_CHECK(slopes.dim() == 1 && slopes.size(0) == q.size(1), "decode attention: slopes must be [Hq]");
    t.slopes = slopes.to(q.device(), torch::kFloat32).contiguous();
  }
  t.splits = splits > 0 ? splits : decode_splits(N, k.size(1), end, sm_count);
  t.keys_per_split = (end + t.splits - 1) / t.splits;
  t.o = torch::empty_like(t.q);
  if (t.splits > 1) {
    auto f32 = q.options().dtype(torch::kFloat32);
    t.o_split = torch::empty({N, q.size(1), t.splits, q.size(2)}, f32);
    t.lse_split = torch::empty({N, q.size(1), t.splits}, f32);
  }
  return t;
}

DecodeParams decode_params(const DecodeTensors& t) {
  DecodeParams p;
  p.q = t.q.data_ptr();
  p.k = t.k.data_ptr();
  p.v = t.v.data_ptr();
  p.o = t.o.data_ptr();
  p.lengths = t.lengths.data_ptr<int32_t>();
  p.block_table = t.block_table.defined() ? t.block_table.data_ptr<int32_t>() : nullptr;
  p.valid = t.valid.defined() ? t.valid.data_ptr<uint8_t>() : nullptr;
  p.ages = t.ages.defined() ? t.ages.data_ptr<float>() : nullptr;
  p.slopes = t.slopes.defined() ? t.slopes.data_ptr<float>() : nullptr;
  p.o_split = t.o_split.defined() ? t.o_split.data_ptr<float>() : nullptr;
  p.lse_split = t.lse_split.defined() ? t.lse_split.data_ptr<float>() : nullptr;
  p.N = static_cast<int>(t.q.size(0));
  p.Hq = static_cast<int>(t.q.size(1));
  p.Hkv = static_cast<int>(t.k.size(1));
  p.D = static_cast<int>(t.q.size(2));
  p.block_size = static_cast<int>(t.block_size);
  p.table_stride = t.block_table.defined() ? static_cast<int>(t.block_table.size(1)) : 0;
  p.row_stride = t.ages.defined() ? static_cast<int>(t.ages.size(1)) : t.valid.defined() ? static_cast<int>(t.valid.size(1)) : 0;
  p.splits = static_cast<int>(t.splits);
  p.keys_per_split = static_cast<int>(t.keys_per_split);
  p.scale = 1.0f / std::sqrt(static_cast<float>(p.D));
  p.dtype = t.q.scalar_type() == torch::kBFloat16 ? AttnDtype::kBF16 : AttnDtype::kFP16;
  return p;
}

}  // namespace chart::kernels
