#include "train/distributed.h"

// The torch wheel compiles c10d with Gloo (and NCCL in CUDA builds) but its headers only declare
// the backends when these are defined. Gloo's own headers come from Debian's libgloo-dev (the
// wheel does not ship them); docs/scaling.md explains.
#ifndef USE_C10D_GLOO  // TorchConfig.cmake already defines both for its users
#define USE_C10D_GLOO 1
#endif
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef CHART_HAVE_NCCL
#ifndef USE_C10D_NCCL
#define USE_C10D_NCCL 1
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>

#include "core/error.h"
#include "core/log.h"

namespace chart {
namespace {
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

int env_int(const std::function<const char*(const char*)>& getenv, const char* name, const char* launcher) {
  const char* v = getenv(name);
  if (!v || !*v)
    throw Error(fmt::format("{} is not set, but {} launched this process", name, launcher),
                "torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT; srun sets SLURM_PROCID, "
                "SLURM_NTASKS, SLURM_LOCALID: set the missing one, or launch as docs/scaling.md shows");
  char* end = nullptr;
  long n = std::strtol(v, &end, 10);
  if (*end || n < 0 || n > (1 << 24)) fail("{}={} is not a non-negative integer", name, v);
  return static_cast<int>(n);
}

// First line of an exception text (c10 errors append a C++ backtrace).
std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

std::string hostname() {
  char buf[256] = {};
  gethostname(buf, sizeof buf - 1);
  return buf;
}

// Ends the process at once from the watchdog thread: the main thread may be blocked inside a
// collective that never returns.
[[noreturn]] void die(int rank, const std::string& message) {
  std::fprintf(stderr, "error: rank %d: %s\n", rank, message.c_str());
  std::fflush(stderr);
  std::_Exit(1);
}

}  // namespace

std::string first_slurm_host(const std::string& nodelist) {
  // The first entry ends at a comma outside brackets.
  size_t end = 0;
  int depth = 0;
  for (; end < nodelist.size(); ++end) {
    if (nodelist[end] == '[') ++depth;
    if (nodelist[end] == ']') --depth;
    if (nodelist[end] == ',' && depth == 0) break;
  }
  std::string first = nodelist.substr(0, end);
  auto open = first.find('[');
  if (open == std::string::npos) return first;
  // prefix[003-005,9]suffix -> prefix003suffix
  auto close = first.find(']', open);
  if (close == std::string::npos) fail("SLURM_JOB_NODELIST={}: unbalanced '['", nodelist);
  std::string range = first.substr(open + 1, close - open - 1);
  range = range.substr(0, range.find(','));
  range = range.substr(0, range.find('-'));
  return first.substr(0, open) + range + first.substr(close + 1);
}

LaunchEnv launch_env(const std::function<const char*(const char*)>& getenv) {
  LaunchEnv e;
  auto has = [&](const char* n) { return getenv(n) && *getenv(n); };
  if (has("RANK") || has("WORLD_SIZE") || has("LOCAL_RANK")) {
    e.launcher = "torchrun";
    e.rank = env_int(getenv, "RANK", "torchrun (RANK, WORLD_SIZE or LOCAL_RANK is set)");
    e.world_size = env_int(getenv, "WORLD_SIZE", "torchrun (RANK, WORLD_SIZE or LOCAL_RANK is set)");
    e.local_rank = has("LOCAL_RANK") ? env_int(getenv, "LOCAL_RANK", "torchrun") : 0;
    if (!has("MASTER_ADDR"))
      throw Error("MASTER_ADDR is not set, but RANK/WORLD_SIZE are",
                  "set MASTER_ADDR to the host of rank 0 (torchrun sets it), e.g. MASTER_ADDR=127.0.0.1");
    e.master_addr = getenv("MASTER_ADDR");
    e.master_port = env_int(getenv, "MASTER_PORT", "torchrun (RANK, WORLD_SIZE or LOCAL_RANK is set)");
    // torchrun's agent serves a TCPStore on MASTER_PORT itself; workers join it as clients.
    e.agent_store = has("TORCHELASTIC_USE_AGENT_STORE") &&
                    std::string(getenv("TORCHELASTIC_USE_AGENT_STORE")) == "True";
    e.store_prefix = std::string("chart/") + (has("TORCHELASTIC_RESTART_COUNT") ? getenv("TORCHELASTIC_RESTART_COUNT") : "0");
  } else if (has("SLURM_PROCID") && (has("SLURM_STEP_NUM_TASKS") || has("SLURM_NTASKS"))) {
    // srun: one task per rank. (A batch script run without srun has no SLURM_STEP_NUM_TASKS and
    // SLURM_NTASKS of the whole allocation; it is started as one process, so a world of 1.)
    e.launcher = "slurm";
    e.rank = env_int(getenv, "SLURM_PROCID", "srun");
    e.world_size = env_int(getenv, has("SLURM_STEP_NUM_TASKS") ? "SLURM_STEP_NUM_TASKS" : "SLURM_NTASKS", "srun");
    if (!has("SLURM_STEP_NUM_TASKS") && e.world_size > 1 && e.rank == 0 && !has("SLURM_STEP_ID")) {
      e = LaunchEnv{};  // the batch script itself, not an srun task
      return e;
    }
    e.local_rank = has("SLURM_LOCALID") ? env_int(getenv, "SLURM_LOCALID", "srun") : 0;
    if (has("MASTER_ADDR")) {
      e.master_addr = getenv("MASTER_ADDR");
    } else if (has("SLURM_JOB_NODELIST") || has("SLURM_NODELIST")) {
      e.master_addr = first_slurm_host(getenv(has("SLURM_JOB_NODELIST") ? "SLURM_JOB_NODELIST" : "SLURM_NODELIST"));
    } else {
      throw Error("neither MASTER_ADDR nor SLURM_JOB_NODELIST is set under srun",
                  "export MASTER_ADDR=<host of rank 0> (scripts/launch_slurm.sh does)");
    }
    e.master_port = has("MASTER_PORT") ? env_int(getenv, "MASTER_PORT", "srun") : 29500;
    e.store_prefix = std::string("chart/") + (has("SLURM_STEP_ID") ? getenv("SLURM_STEP_ID") : "0");
  } else {
    return e;
  }
  if (e.world_size < 1) fail("WORLD_SIZE is {}: it must be at least 1", e.world_size);
  if (e.rank >= e.world_size)
    throw Error(fmt::format("RANK={} is not below WORLD_SIZE={}", e.rank, e.world_size),
                "ranks are numbered 0 .. WORLD_SIZE-1");
  if (e.master_port < 1 || e.master_port > 65535) fail("MASTER_PORT={} is not a TCP port (1-65535)", e.master_port);
  return e;
}

Dist::Dist(const LaunchEnv& env, const DistConfig& cfg, torch::Device device)
    : env_(env), cfg_(cfg), device_(device) {
  if (env_.launcher == "none") return;
  const auto timeout = milliseconds(static_cast<int64_t>(cfg_.timeout_s * 1000));
  c10d::TCPStoreOptions o;
  o.port = static_cast<uint16_t>(env_.master_port);
  o.isServer = env_.rank == 0 && !env_.agent_store;
  o.waitWorkers = false;
  o.timeout = timeout;
  try {
    store_ = c10::make_intrusive<c10d::PrefixStore>(env_.store_prefix,
                                                    c10::make_intrusive<c10d::TCPStore>(env_.master_addr, o));
  } catch (const std::exception& e) {
    if (o.isServer)
      throw Error(fmt::format("rank 0 cannot serve the rendezvous store on {}:{}: {}", env_.master_addr,
                              env_.master_port, first_line(e.what())),
                  "the port is in use (another job, or an earlier run still exiting): choose another MASTER_PORT");
    throw Error(fmt::format("rank {} could not reach the rendezvous store at {}:{} within {} s: {}", env_.rank,
                            env_.master_addr, env_.master_port, cfg_.timeout_s, first_line(e.what())),
                "is rank 0 running? MASTER_ADDR must name its host and MASTER_PORT be the same on every rank");
  }
  rendezvous();

  backend_name_ = cfg_.backend == "auto" ? (device_.is_cuda() ? "nccl" : "gloo") : cfg_.backend;
  auto pg_store = c10::make_intrusive<c10d::PrefixStore>("pg", store_);
  try {
    if (backend_name_ == "gloo") {
      if (device_.is_cuda()) fail("dist.backend=gloo with train.device on a GPU: use nccl (or auto)");
      auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
      const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
      const bool loopback = env_.master_addr == "localhost" || env_.master_addr.rfind("127.", 0) == 0;
      opts->devices.push_back(ifname && *ifname ? c10d::ProcessGroupGloo::createDeviceForInterface(ifname)
                              : loopback        ? c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")
                                                : c10d::ProcessGroupGloo::createDefaultDevice());
      backend_ = c10::make_intrusive<c10d::ProcessGroupGloo>(pg_store, env_.rank, env_.world_size, opts);
    } else {
#ifdef CHART_HAVE_NCCL
      if (!device_.is_cuda()) fail("dist.backend=nccl needs train.device on a GPU (cuda or auto with a GPU)");
      auto opts = c10d::ProcessGroupNCCL::Options::create();
      opts->timeout = timeout;
      backend_ = c10::make_intrusive<c10d::ProcessGroupNCCL>(pg_store, env_.rank, env_.world_size, opts);
#else
      fail("dist.backend=nccl, but this chart was built without CUDA/NCCL");
#endif
    }
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(fmt::format("rank {}: creating the {} process group failed: {}", env_.rank, backend_name_,
                            first_line(e.what())),
                "with several hosts, set GLOO_SOCKET_IFNAME/NCCL_SOCKET_IFNAME to the interface they share");
  }
  barrier();  // the first collective: every rank's process group works
  watchdog_ = std::thread([this] { watchdog_loop(); });
  if (is_main())
    info("dist: {} ranks ({}), {} process group, rendezvous at {}:{}", env_.world_size, env_.launcher,
         backend_name_, env_.master_addr, env_.master_port);
}

Dist::~Dist() {
  if (watchdog_.joinable()) {
    stop_ = true;
    watchdog_.join();
  }
  // After an error another rank may be gone: destroying the process group could wait on it.
  // The process is about to exit, so leave both to the operating system.
  if (!finished_) {
    (void)backend_.release();
    (void)store_.release();
  }
}

void Dist::rendezvous() {
  const std::string me = fmt::format("{} {} pid {}", env_.world_size, hostname(), getpid());
  const std::string mine = "rank/" + std::to_string(env_.rank);
  const std::string holder = store_->compareSet(mine, "", me);
  if (holder != me)
    throw Error(fmt::format("RANK={} is claimed twice: by {} and by this process ({})", env_.rank,
                            holder.substr(holder.find(' ') + 1), me.substr(me.find(' ') + 1)),
                "give every process its own RANK (or launch with torchrun/srun)");
  store_->add("arrived", 1);
  auto world_of = [&](int k) { return std::stoi(store_->get_to_str("rank/" + std::to_string(k))); };
  auto disagree = [&](int k, int theirs) {
    return Error(fmt::format("rank {} was started with WORLD_SIZE={}, this rank ({}) with WORLD_SIZE={}", k,
                             theirs, env_.rank, env_.world_size),
                 "start every rank with the same WORLD_SIZE (the number of processes launched)");
  };
  const auto deadline = Clock::now() + milliseconds(static_cast<int64_t>(cfg_.timeout_s * 1000));
  int64_t arrived = 0;
  while ((arrived = store_->add("arrived", 0)) < env_.world_size && Clock::now() < deadline) {
    if (env_.rank != 0 && store_->check({"rank/0"}) && world_of(0) != env_.world_size) throw disagree(0, world_of(0));
    std::this_thread::sleep_for(milliseconds(50));
  }
  std::vector<int> missing;
  for (int k = 0; k < env_.world_size; ++k) {
    if (!store_->check({"rank/" + std::to_string(k)})) {
      missing.push_back(k);
      continue;
    }
    if (int w = world_of(k); w != env_.world_size) throw disagree(k, w);
  }
  if (!missing.empty())
    throw Error(fmt::format("rendezvous at {}:{}: {} of WORLD_SIZE={} ranks arrived within {} s; missing rank(s) {}",
                            env_.master_addr, env_.master_port, arrived, env_.world_size, cfg_.timeout_s,
                            fmt::join(missing, ", ")),
                "WORLD_SIZE must equal the number of processes started (torchrun --nnodes x --nproc-per-node, "
                "srun --ntasks), and every one must reach MASTER_ADDR:MASTER_PORT");
  if (arrived > env_.world_size)
    throw Error(fmt::format("rendezvous: {} processes arrived for WORLD_SIZE={}", arrived, env_.world_size),
                "start every rank with the same WORLD_SIZE (the number of processes launched)");
}

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

void Dist::finish() {
  if (!active()) return;
  stop_ = true;
  if (watchdog_.joinable()) watchdog_.join();
  barrier();
  backend_->shutdown();
  finished_ = true;
}

namespace {
void wait(const c10::intrusive_ptr<c10d::Work>& w) {
  w->wait();
}
}  // namespace

void Dist::all_reduce_sum(torch::Tensor& t) {
  if (!active()) return;
  std::vector<torch::Tensor> v{t};
  wait(backend_->allreduce(v, c10d::AllreduceOptions{c10d::ReduceOp::SUM}));
}

void Dist::all_reduce_max(torch::Tensor& t) {
  if (!active()) return;
  std::vector<torch::Tensor> v{t};
  c10d::AllreduceOptions o;
  o.reduceOp = c10d::ReduceOp::MAX;
  wait(backend_->allreduce(v, o));
}

void Dist::broadcast(torch::Tensor& t, int root) {
  if (!active()) return;
  std::vector<torch::Tensor> v{t};
  c10d::BroadcastOptions o;
  o.rootRank = root;
  wait(backend_->broadcast(v, o));
}

void Dist::barrier() {
  if (!active()) return;
  auto t = torch::zeros({1}, torch::TensorOptions().device(device_));
  all_reduce_sum(t);
  if (device_.is_cuda()) t.cpu();  // waits for the collective's stream
}

std::vector<double> Dist::sum(std::vector<double> values) {
  if (!active() || values.empty()) return values;
  auto t = torch::tensor(values, torch::kFloat64).to(device_);
  all_reduce_sum(t);
  t = t.cpu();
  for (size_t i = 0; i < values.size(); ++i) values[i] = t[static_cast<int64_t>(i)].item<double>();
  return values;
}

}  // namespace chart
