// Dynamic batching: requests that arrive together share one forward pass. A worker thread takes
// the first waiting job and, while other requests have announced themselves (they are still being
// tokenized), waits up to `wait` for them (never past `max_batch`); then it runs the batch and
// fulfils each job's future. A request alone is never kept waiting. Jobs are served in arrival
// order; the destructor finishes the queue.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace chart::serve {

// What a batch says of one job: a probability, and for a zero-shot task its 95% interval and
// the number of sampled futures behind it.
struct BatchResult {
  double probability = 0;
  std::optional<std::pair<double, double>> interval;
  int64_t samples = 0;
};

struct BatchJob {
  std::vector<uint32_t> tokens;  // a prefix cut at its prediction time
  std::vector<int64_t> times;
  int64_t birth_us = 0;
  int64_t prediction_time_us = 0;
  int64_t stream = 0;  // a zero-shot job's random stream (infer/sampling.h prompt_stream)
  std::promise<BatchResult> result;
};

class Batcher {
 public:
  // run_batch: one result per job, in order. on_batch: told each batch's size (metrics).
  using RunBatch = std::function<std::vector<BatchResult>(const std::vector<BatchJob*>&)>;
  Batcher(size_t max_batch, double wait_ms, RunBatch run_batch, std::function<void(size_t)> on_batch);
  ~Batcher();
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  // A request on its way: announce() when it arrives, then submit() its job, or drop the
  // Arrival (an error before its job was made) to withdraw it.
  class Arrival {
   public:
    explicit Arrival(Batcher& b);
    ~Arrival();
    std::future<BatchResult> submit(BatchJob job);

   private:
    Batcher& b_;
    bool submitted_ = false;
  };
  std::future<BatchResult> submit(BatchJob job);  // a job that was not announced

 private:
  void loop();
  size_t max_batch_;
  std::chrono::microseconds wait_;
  RunBatch run_batch_;
  std::function<void(size_t)> on_batch_;
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<BatchJob> queue_;
  int64_t arriving_ = 0;  // announced, not yet submitted
  bool stopping_ = false;
  std::thread worker_;
};

}  // namespace chart::serve
