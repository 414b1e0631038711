// Several processes training one model (data parallelism): the rendezvous through a c10d
// TCPStore, the process group (ProcessGroupNCCL on GPUs, ProcessGroupGloo on CPUs), blocking
// collectives, and the watchdog (watchdog.cpp) that turns a dead or hung rank into an error
// naming it on every rank. A process started without a launcher (launch_env.h) is world size 1
// and never touches the network.
#pragma once
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>
#include <torch/torch.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "core/config.h"
#include "train/distributed/launch_env.h"

namespace chart {

class Dist {
 public:
  // world size 1 without a launcher: an inactive Dist (no store, no process group). Otherwise
  // rendezvous (every rank arrives, all agree on WORLD_SIZE) and the process group for `device`.
  Dist(const LaunchEnv& env, const DistConfig& cfg, torch::Device device);
  ~Dist();
  Dist(const Dist&) = delete;
  Dist& operator=(const Dist&) = delete;

  bool active() const { return backend_ != nullptr; }
  int rank() const { return env_.rank; }
  int world_size() const { return env_.world_size; }
  bool is_main() const { return env_.rank == 0; }
  bool zero1() const { return active() && cfg_.zero1; }
  const LaunchEnv& env() const { return env_; }
  const std::string& backend_name() const { return backend_name_; }
  c10d::Backend& backend() { return *backend_; }

  // Blocking collectives (no-ops when inactive). Tensors live on the process group's device.
  void all_reduce_sum(torch::Tensor& t);
  void all_reduce_max(torch::Tensor& t);
  void broadcast(torch::Tensor& t, int root);
  void barrier();
  // Sums a few doubles across ranks (metrics, target counts), through a device tensor.
  std::vector<double> sum(std::vector<double> values);
  // A sum of a few numbers started now and finished later, so that work in between hides it:
  // start_sum() issues the all-reduce of a float64 tensor on the group's device; wait() makes
  // its result safe to use (on a GPU without blocking the host). Every rank calls both, in the
  // same order as its other collectives. Inactive: values as given.
  struct PendingSum {
    torch::Tensor values;
    c10::intrusive_ptr<c10d::Work> work;
    torch::Tensor& wait();
  };
  PendingSum start_sum(const std::vector<double>& values);
  // Every rank gets root's value (exact for any int64).
  int64_t broadcast_int(int64_t value, int root = 0);

  void set_step(int64_t step) { step_ = step; }  // shown in failure messages
  // This rank failed with `message`: tell the others (they exit naming this rank) and return.
  void report_failure(const std::string& message);
  // A collective threw `e`: wait (bounded) for the watchdog to name the rank at fault, which ends
  // the process; if it does not, throw chart::Error with e's text.
  [[noreturn]] void collective_failed(const std::exception& e);
  // Whether e comes from communication (c10d, Gloo, NCCL, a socket) rather than this rank's own work.
  static bool is_communication_error(const std::exception& e);
  // Orderly end: the watchdog stops and every rank passes a last barrier before any exits.
  void finish();

 private:
  void rendezvous();
  void watchdog_loop();
  std::string key(const std::string& k) const { return env_.store_prefix + k; }

  LaunchEnv env_;
  DistConfig cfg_;
  torch::Device device_;
  std::string backend_name_;
  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<c10d::Backend> backend_;
  std::thread watchdog_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> suspect_{false};  // a collective failed: judge heartbeats sooner
  bool finished_ = false;
  std::atomic<int64_t> step_{0};
};

}  // namespace chart
