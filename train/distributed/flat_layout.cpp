#include "train/distributed/flat_layout.h"

#include <algorithm>

namespace chart {

int64_t bucket_capacity(const DistConfig& cfg) {
  const size_t bytes = cfg.reduce_dtype == "bf16" ? 2 : 4;
  return std::max<int64_t>(1, static_cast<int64_t>(cfg.bucket_mb * (1 << 20)) / static_cast<int64_t>(bytes));
}

FlatLayout make_flat_layout(const std::vector<torch::Tensor>& params, int64_t cap_elems, int world_size) {
  FlatLayout l;
  l.world_size = std::max(1, world_size);
  l.bucket_of.resize(params.size());
  // Reverse definition order: the output layers' gradients come first in backward.
  for (size_t k = params.size(); k-- > 0;) {
    const int64_t n = params[k].numel();
    if (l.buckets.empty() || l.buckets.back().numel + n > cap_elems) l.buckets.emplace_back();
    FlatBucket& b = l.buckets.back();
    b.params.push_back(k);
    b.offsets.push_back(b.numel);
    b.numel += n;
    l.bucket_of[k] = l.buckets.size() - 1;
  }
  for (FlatBucket& b : l.buckets) {
    b.padded = (b.numel + l.world_size - 1) / l.world_size * l.world_size;
    b.shard_offset = l.shard_numel;
    l.shard_numel += b.chunk(l.world_size);
  }
  return l;
}

std::vector<ShardPiece> FlatLayout::pieces(int rank) const {
  std::vector<ShardPiece> out;
  for (size_t bi = 0; bi < buckets.size(); ++bi) {
    const FlatBucket& b = buckets[bi];
    const int64_t lo = rank * b.chunk(world_size), hi = lo + b.chunk(world_size);
    for (size_t i = 0; i < b.params.size(); ++i) {
      const int64_t p_lo = b.offsets[i];
      const int64_t p_hi = i + 1 < b.params.size() ? b.offsets[i + 1] : b.numel;
      const int64_t from = std::max(lo, p_lo), to = std::min(hi, p_hi);
      if (from >= to) continue;
      out.push_back({b.params[i], bi, from - p_lo, to - p_lo, b.shard_offset + (from - lo)});
    }
  }
  return out;
}

}  // namespace chart
