#include "serve/batcher.h"

#include <exception>

namespace chart::serve {

Batcher::Batcher(size_t max_batch, double wait_ms, RunBatch run_batch, std::function<void(size_t)> on_batch)
    : max_batch_(max_batch),
      wait_(static_cast<int64_t>(wait_ms * 1000)),
      run_batch_(std::move(run_batch)),
      on_batch_(std::move(on_batch)),
      worker_([this] { loop(); }) {}

Batcher::~Batcher() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  ready_.notify_all();
  worker_.join();
}

std::future<BatchResult> Batcher::submit(BatchJob job) {
  std::future<BatchResult> f = job.result.get_future();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    queue_.push_back(std::move(job));
  }
  ready_.notify_all();
  return f;
}

Batcher::Arrival::Arrival(Batcher& b) : b_(b) {
  std::lock_guard<std::mutex> lock(b_.mutex_);
  ++b_.arriving_;
}

Batcher::Arrival::~Arrival() {
  if (submitted_) return;
  {
    std::lock_guard<std::mutex> lock(b_.mutex_);
    --b_.arriving_;
  }
  b_.ready_.notify_all();
}

std::future<BatchResult> Batcher::Arrival::submit(BatchJob job) {
  std::future<BatchResult> f = job.result.get_future();
  {
    std::lock_guard<std::mutex> lock(b_.mutex_);
    --b_.arriving_;
    submitted_ = true;
    b_.queue_.push_back(std::move(job));
  }
  b_.ready_.notify_all();
  return f;
}

void Batcher::loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    ready_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, and nothing left to serve
    // A short deadline from the first job, for requests already on their way to join; none on
    // the way, no wait.
    const auto deadline = std::chrono::steady_clock::now() + wait_;
    ready_.wait_until(lock, deadline,
                      [&] { return stopping_ || queue_.size() >= max_batch_ || arriving_ == 0; });
    std::vector<BatchJob> batch;
    while (!queue_.empty() && batch.size() < max_batch_) {
      batch.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    lock.unlock();
    std::vector<BatchJob*> jobs;
    for (auto& j : batch) jobs.push_back(&j);
    try {
      const std::vector<BatchResult> p = run_batch_(jobs);
      on_batch_(jobs.size());
      for (size_t i = 0; i < jobs.size(); ++i) jobs[i]->result.set_value(p.at(i));
    } catch (...) {
      for (auto* j : jobs) j->result.set_exception(std::current_exception());
    }
    lock.lock();
  }
}

}  // namespace chart::serve
