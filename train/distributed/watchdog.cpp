// The failure half of Dist: heartbeats through the rendezvous store, so that a dead, stopped or
// unreachable rank becomes an error naming it on every rank within about dist.timeout_s, and
// the judgement of whether an exception came from communication or from this rank's own work.
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <thread>

#include "core/error.h"
#include "train/distributed/dist.h"

namespace chart {
namespace {
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Ends the process at once from the watchdog thread: the main thread may be blocked inside a
// collective that never returns.
[[noreturn]] void die(int rank, const std::string& message) {
  std::fprintf(stderr, "error: rank %d: %s\n", rank, message.c_str());
  std::fflush(stderr);
  std::_Exit(1);
}

}  // namespace

// Every rank writes hb/<rank> ("<beat> <step>") each interval. Rank 0 watches all the others and
// every rank watches rank 0; a heartbeat that stops changing for dist.timeout_s (or a few
// intervals once a collective has already failed) is a dead or stopped rank: the watcher
// publishes `failed`, and every rank that reads it exits naming that rank.
void Dist::watchdog_loop() {
  const double interval_s = std::clamp(cfg_.timeout_s / 10.0, 0.05, 1.0);
  const auto timeout = milliseconds(static_cast<int64_t>(cfg_.timeout_s * 1000));
  c10::intrusive_ptr<c10d::Store> store;
  try {
    c10d::TCPStoreOptions o;
    o.port = static_cast<uint16_t>(env_.master_port);
    o.timeout = timeout;
    store = c10::make_intrusive<c10d::PrefixStore>(env_.store_prefix,
                                                   c10::make_intrusive<c10d::TCPStore>(env_.master_addr, o));
  } catch (const std::exception& e) {
    die(env_.rank, fmt::format("watchdog cannot reach the rendezvous store: {}", first_line(e.what())));
  }
  struct Seen {
    std::string value;
    Clock::time_point changed;
  };
  std::map<int, Seen> seen;
  const auto start = Clock::now();
  for (int k = 0; k < env_.world_size; ++k)
    if (k != env_.rank && (env_.rank == 0 || k == 0)) seen[k] = {"", start};
  int64_t beat = 0;
  const std::string hb = "hb/" + std::to_string(env_.rank);
  while (!stop_) {
    try {
      store->set(hb, fmt::format("{} {}", ++beat, step_.load()));
      if (store->check({"failed"})) die(env_.rank, store->get_to_str("failed"));
      const double limit_s = suspect_ ? std::min(cfg_.timeout_s, 5 * interval_s + 2.0) : cfg_.timeout_s;
      for (auto& [k, s] : seen) {
        const std::string key = "hb/" + std::to_string(k);
        std::string v = store->check({key}) ? store->get_to_str(key) : "";
        if (v == "done") continue;
        const auto now = Clock::now();
        if (v != s.value) {
          s = {v, now};
        } else if (std::chrono::duration<double>(now - s.changed).count() > limit_s) {
          std::string step = v.empty() ? "before its first heartbeat" : "at step " + v.substr(v.find(' ') + 1);
          std::string verdict = fmt::format(
              "rank {} stopped responding: no heartbeat for {:.0f} s, last {} (it died, was stopped, or its "
              "host is unreachable; see its log)",
              k, std::chrono::duration<double>(now - s.changed).count(), step);
          store->set("failed", verdict);
          die(env_.rank, verdict);
        }
      }
    } catch (const std::exception& e) {
      if (stop_) break;
      die(env_.rank, fmt::format("lost the rendezvous store at {}:{} ({}): rank 0 exited or its host is unreachable",
                                 env_.master_addr, env_.master_port, first_line(e.what())));
    }
    for (auto t = Clock::now(); !stop_ && std::chrono::duration<double>(Clock::now() - t).count() < interval_s;)
      std::this_thread::sleep_for(milliseconds(20));
  }
  try {
    store->set(hb, "done");
  } catch (const std::exception&) {
  }
}

void Dist::report_failure(const std::string& message) {
  if (!active()) return;
  try {
    store_->set("failed", fmt::format("rank {} failed at step {}: {}", env_.rank, step_.load(), message));
  } catch (const std::exception&) {
    return;
  }
  // Rank 0 serves the store: give the others' watchdogs time to read the message before it goes.
  if (env_.rank == 0 && !env_.agent_store)
    std::this_thread::sleep_for(milliseconds(static_cast<int64_t>(std::clamp(cfg_.timeout_s / 10.0, 0.05, 1.0) * 3000)));
}

void Dist::collective_failed(const std::exception& e) {
  suspect_ = true;
  // The watchdog exits the process once it knows which rank is at fault. Under load its thread
  // may be late, so this thread also compares every heartbeat before and after the wait: one
  // that never moved names the rank that stopped responding.
  const double wait_s = std::min(cfg_.timeout_s, 5 * std::clamp(cfg_.timeout_s / 10.0, 0.05, 1.0) + 2.0) + 3.0;
  auto heartbeats = [&] {
    std::map<int, std::string> hb;
    try {
      for (int k = 0; k < env_.world_size; ++k) {
        const std::string key = "hb/" + std::to_string(k);
        if (k != env_.rank && store_->check({key})) hb[k] = store_->get_to_str(key);
      }
    } catch (const std::exception&) {
    }
    return hb;
  };
  const auto before = heartbeats();
  std::this_thread::sleep_for(milliseconds(static_cast<int64_t>(wait_s * 1000)));
  const auto after = heartbeats();
  std::string stopped, behind;
  for (const auto& [k, v] : after) {
    if (v == "done") continue;
    auto it = before.find(k);
    if (it != before.end() && it->second == v)
      stopped += fmt::format("{}{}", stopped.empty() ? "" : ", ", k);
    else if (v.find(' ') != std::string::npos && std::stoll(v.substr(v.find(' ') + 1)) != step_.load())
      behind += fmt::format("{}rank {} at step {}", behind.empty() ? "" : ", ", k, v.substr(v.find(' ') + 1));
  }
  if (!stopped.empty())
    throw Error(fmt::format("rank {} stopped responding: no heartbeat for {:.0f} s after a collective failed at step {} "
                            "(it died, was stopped, or its host is unreachable; see its log): {}",
                            stopped, wait_s, step_.load(), first_line(e.what())),
                "dist.timeout_s bounds how long ranks wait for each other");
  throw Error(fmt::format("rank {}: a collective failed at step {}{}: {}", env_.rank, step_.load(),
                          behind.empty() ? "" : " (" + behind + ")", first_line(e.what())),
              "another rank probably failed first (see its log); dist.timeout_s bounds how long ranks wait");
}

bool Dist::is_communication_error(const std::exception& e) {
  if (dynamic_cast<const c10::DistError*>(&e)) return true;
  const std::string w = e.what();
  // Gloo's own exceptions (gloo::IoException: "Application timeout caused pair closure", "Connection
  // closed by peer", ...) reach us as plain std::runtime_error, so their messages are matched too.
  for (const char* s : {"gloo", "Gloo", "NCCL", "nccl", "Connection", "connection", "Timed out", "timed out", "timeout",
                        "Socket", "socket", "pair closure", "closed by peer", "reset by peer", "Broken pipe"})
    if (w.find(s) != std::string::npos) return true;
  return false;
}

}  // namespace chart
