#include "data/epoch_order.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "core/mix.h"

namespace chart::data {
namespace {

// Fisher-Yates with our own generator: the same order on every platform.
void shuffle_in_place(std::vector<int64_t>& v, uint64_t key) {
  uint64_t s = mix(key);
  for (size_t i = v.size(); i > 1; --i) {
    s = mix(s);
    std::swap(v[i - 1], v[s % i]);
  }
}

// Index of the last element of the ascending `prefix` that is <= x.
size_t last_not_above(const std::vector<int64_t>& prefix, int64_t x) {
  return static_cast<size_t>(std::upper_bound(prefix.begin(), prefix.end(), x) - prefix.begin() - 1);
}

}  // namespace

EpochOrder::EpochOrder(const std::vector<TokenShard>& shards, Units units, bool shuffle, uint64_t seed)
    : shards_(shards), units_(std::move(units)), shuffle_(shuffle), seed_(seed) {
  shard_start_.push_back(0);
  for (const auto& s : shards_) shard_start_.push_back(shard_start_.back() + static_cast<int64_t>(s.n_subjects()));
  n_ = shard_start_.back();
  k_ = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(n_)))));
  n_blocks_ = (n_ + k_ - 1) / k_;
  block_units_.assign(n_blocks_, 0);
  for (int64_t i = 0; i < n_; ++i) block_units_[i / k_] += units_(entry_of(i));  // one sequential pass
  total_ = std::accumulate(block_units_.begin(), block_units_.end(), int64_t{0});
}

int64_t EpochOrder::block_size(int64_t b) const { return std::min(k_, n_ - b * k_); }

SubjectRef EpochOrder::ref_of(int64_t subject) const {
  const size_t shard = last_not_above(shard_start_, subject);
  return {static_cast<uint32_t>(shard), static_cast<uint32_t>(subject - shard_start_[shard])};
}

const SubjectEntry& EpochOrder::entry_of(int64_t subject) const {
  const SubjectRef r = ref_of(subject);
  return shards_[r.shard].subject(r.entry);
}

void EpochOrder::set_epoch(int64_t epoch) {
  if (epoch == epoch_) return;
  epoch_ = epoch;
  read_ = -1;
  block_order_.resize(n_blocks_);
  std::iota(block_order_.begin(), block_order_.end(), int64_t{0});
  if (shuffle_) shuffle_in_place(block_order_, seed_ ^ mix(static_cast<uint64_t>(epoch) + 1));
  block_prefix_.assign(n_blocks_ + 1, 0);
  for (int64_t p = 0; p < n_blocks_; ++p) block_prefix_[p + 1] = block_prefix_[p] + block_units_[block_order_[p]];
}

void EpochOrder::read_block(int64_t block) {
  if (block == read_) return;
  read_ = block;
  const int64_t b = block_order_[block];
  local_order_.resize(block_size(b));
  std::iota(local_order_.begin(), local_order_.end(), block_begin(b));
  if (shuffle_)
    shuffle_in_place(local_order_, seed_ ^ mix(static_cast<uint64_t>(epoch_) + 1) ^ mix(~static_cast<uint64_t>(b)));
  local_prefix_.assign(local_order_.size() + 1, block_prefix_[block]);
  for (size_t j = 0; j < local_order_.size(); ++j)
    local_prefix_[j + 1] = local_prefix_[j] + units_(entry_of(local_order_[j]));
}

EpochOrder::Position EpochOrder::position(int64_t block, int64_t local) const {
  Position p;
  p.block = block;
  p.local = local;
  p.start = local_prefix_[local];
  p.units = local_prefix_[local + 1] - local_prefix_[local];
  p.ref = ref_of(local_order_[local]);
  return p;
}

EpochOrder::Position EpochOrder::locate(int64_t unit) {
  if (epoch_ < 0 || unit < 0 || unit >= total_)
    fail("epoch order: unit {} outside the epoch's {} units (epoch {})", unit, total_, epoch_);
  const int64_t block = static_cast<int64_t>(last_not_above(block_prefix_, unit));
  read_block(block);  // a block with no units is never found: upper_bound skips it
  return position(block, static_cast<int64_t>(last_not_above(local_prefix_, unit)));
}

EpochOrder::Position EpochOrder::next(const Position& p) {
  read_block(p.block);
  if (p.local + 1 < static_cast<int64_t>(local_order_.size())) return position(p.block, p.local + 1);
  if (p.block + 1 >= n_blocks_) fail("epoch order: no subject after the last of epoch {}", epoch_);
  read_block(p.block + 1);
  return position(p.block + 1, 0);
}

int64_t EpochOrder::entries_held() const {
  return static_cast<int64_t>(shard_start_.size() + block_units_.size() + block_order_.size() +
                              block_prefix_.size() + local_order_.size() + local_prefix_.size());
}

}  // namespace chart::data
