// Batches of training windows from a token dataset, as LibTorch tensors.
//
// Each epoch orders the split's subjects by (seed, epoch) (data/epoch_order.h). With packing, their
// token streams are laid end to end and cut into windows of `context` tokens (a subject may
// continue into the next window); without it, each window holds one subject (long subjects are
// cut into several windows) padded to `context`. Step s of the run takes windows
// [s*W*B, (s+1)*W*B) of the epoch; rank r gets the r-th block of B of them. So the windows a step
// sees do not depend on how many ranks share it, and resuming needs only (epoch, step).
#pragma once
#include <torch/types.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "data/epoch_order.h"
#include "data/token_dataset.h"

namespace chart::data {

struct Batch {
  torch::Tensor tokens;      // [B, L] int64, [PAD] after the data ends
  torch::Tensor targets;     // [B, L] int64, the next token of the same subject, or -1 (ignore)
  torch::Tensor ages;        // [B, L] float32, years since birth (or first event)
  torch::Tensor target_dt;   // [B, L] float32, days from this token to its target (0 without one)
  torch::Tensor segments;    // [B, L] int32, which subject of the row a position belongs to; -1 pad
  torch::Tensor cu_seqlens;  // [n+1] int32, segment boundaries in the flattened [B*L] positions
  int64_t epoch = 0, step = 0;
  int64_t n_targets = 0;     // positions with a real target
};

struct LoaderOptions {
  int64_t context = 256;
  int64_t batch_size = 8;  // windows per rank per step
  bool packing = true;
  bool shuffle = true;
  uint64_t seed = 0;
  int rank = 0, world_size = 1;
  int prefetch = 2;        // batches built ahead on a background thread; 0: none
  bool pin_memory = false; // page-locked batches, so that copies to a GPU are truly asynchronous
};

struct LoaderState {
  int64_t epoch = 0;
  int64_t step = 0;  // steps already taken within the epoch
};

class Loader {
 public:
  Loader(const TokenDataset& dataset, std::string split, LoaderOptions options, LoaderState state = {});
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  Batch next();
  LoaderState state() const { return state_; }  // of the batches handed out so far
  // Goes back (or on) to `state` without rebuilding the split's index: an evaluation loader is
  // built once and sought back to the start before each evaluation. Needs prefetch 0.
  void seek(LoaderState state);
  int64_t steps_per_epoch() const { return steps_per_epoch_; }
  int64_t windows_per_epoch() const { return n_windows_; }
  int64_t order_entries_held() const { return order_.entries_held(); }  // O(sqrt(subjects))

 private:
  Batch build(int64_t epoch, int64_t step);
  void fill_row(int64_t window, int64_t row, Batch& b, std::vector<int32_t>& cu);
  void producer();

  const TokenDataset& ds_;
  std::string split_;
  LoaderOptions opt_;
  LoaderState state_;
  EpochOrder order_;  // units: tokens when packing, else windows
  int64_t n_windows_ = 0, steps_per_epoch_ = 0;

  // Background prefetch.
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Batch> queue_;
  LoaderState produce_at_;
  bool stop_ = false;
  std::exception_ptr error_;
};

}  // namespace chart::data
