// The order in which an epoch visits a split's subjects, held without a per-subject array.
//
// The split's N subjects, in storage order, fall into blocks of K = ceil(sqrt(N)) consecutive
// subjects. An epoch permutes the blocks, then the subjects inside each block it reaches, each
// by a Fisher-Yates shuffle seeded by (seed, epoch, block). What a rank keeps is the blocks'
// unit counts and this epoch's block order (N/K entries) and the order of the one block it is
// reading (K entries): O(sqrt N) per rank, about 3,200 entries for ten million subjects, where a
// per-subject order would be ten million on every rank. The index is read block by block, in
// storage order, never at random. The cost is a coarser shuffle than a full permutation: subjects
// stored near each other stay within a block of each other in every epoch (docs/training.md).
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "data/token_dataset.h"

namespace chart::data {

class EpochOrder {
 public:
  // units(entry): how many units a subject yields (its tokens when packing, else its windows).
  using Units = std::function<int64_t(const SubjectEntry&)>;
  EpochOrder(const std::vector<TokenShard>& shards, Units units, bool shuffle, uint64_t seed);

  // One subject of the epoch's order: where it is in that order and which units it covers.
  struct Position {
    int64_t block = 0;  // index into this epoch's block order
    int64_t local = 0;  // index into that block's subject order
    int64_t start = 0;  // units of the epoch before this subject
    int64_t units = 0;
    SubjectRef ref{};
  };

  void set_epoch(int64_t epoch);  // cheap when the epoch does not change
  int64_t total_units() const { return total_; }
  int64_t n_subjects() const { return n_; }
  Position locate(int64_t unit);          // the subject whose units cover `unit` (< total_units)
  Position next(const Position& p);       // the subject after p in the epoch's order
  int64_t entries_held() const;           // the state above, in entries (for the test of its size)

 private:
  int64_t block_begin(int64_t b) const { return b * k_; }
  int64_t block_size(int64_t b) const;
  SubjectRef ref_of(int64_t subject) const;  // storage index -> (shard, entry)
  const SubjectEntry& entry_of(int64_t subject) const;
  void read_block(int64_t block);  // this epoch's order of the subjects in block_order_[block]
  Position position(int64_t block, int64_t local) const;

  const std::vector<TokenShard>& shards_;
  Units units_;
  bool shuffle_;
  uint64_t seed_;
  int64_t n_ = 0, k_ = 1, n_blocks_ = 0, total_ = 0, epoch_ = -1;
  std::vector<int64_t> shard_start_;   // storage index of each shard's first subject
  std::vector<int64_t> block_units_;   // per block in storage order; fixed for the run
  std::vector<int64_t> block_order_;   // this epoch's order of blocks
  std::vector<int64_t> block_prefix_;  // units before each block of that order
  int64_t read_ = -1;                  // the block (index into block_order_) read into:
  std::vector<int64_t> local_order_;   //   its subjects' storage indices in this epoch's order
  std::vector<int64_t> local_prefix_;  //   units before each of them within the block
};

}  // namespace chart::data
