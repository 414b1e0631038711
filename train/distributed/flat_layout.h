// The flat parameter space that gradient buckets and ZeRO-1 share. Parameters, in reverse order
// of definition (about the order backward produces their gradients), are concatenated into
// buckets of at most a given number of elements; a bucket is one flat buffer. With ZeRO-1 each
// bucket is padded to a multiple of the world size and rank r owns the r-th equal chunk of every
// bucket: a reduce-scatter of the bucket gives each rank exactly its chunk, and a rank's shard
// (its chunks, one after the other) is 1/world of the parameters however the tensors are sized.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "core/config.h"

namespace chart {

struct FlatBucket {
  std::vector<size_t> params;    // indices into the parameter list, in bucket order
  std::vector<int64_t> offsets;  // each parameter's first element within the bucket
  int64_t numel = 0;             // the parameters' elements
  int64_t padded = 0;            // numel rounded up to a multiple of the world size
  int64_t shard_offset = 0;      // where this bucket's chunk starts in every rank's shard
  int64_t chunk(int world_size) const { return padded / world_size; }
};

// The part of one parameter inside one rank's shard: elements [begin, end) of the flattened
// parameter, stored at shard_offset in the rank's shard.
struct ShardPiece {
  size_t param = 0;
  size_t bucket = 0;
  int64_t begin = 0, end = 0;
  int64_t shard_offset = 0;
};

struct FlatLayout {
  int world_size = 1;
  std::vector<FlatBucket> buckets;
  std::vector<size_t> bucket_of;  // parameter index -> bucket
  int64_t shard_numel = 0;        // elements of one rank's shard (the same on every rank)

  std::vector<ShardPiece> pieces(int rank) const;  // in shard order
};

// Elements of dist.bucket_mb MiB in the reduce dtype (dist.reduce_dtype), at least 1.
int64_t bucket_capacity(const DistConfig& cfg);

// cap_elems bounds a bucket (a larger parameter gets a bucket of its own); world_size 1 pads
// nothing (plain data parallelism).
FlatLayout make_flat_layout(const std::vector<torch::Tensor>& params, int64_t cap_elems, int world_size);

}  // namespace chart
