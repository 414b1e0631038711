#include "train/distributed/dist.h"

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

#include "core/error.h"
#include "core/log.h"

namespace chart {
namespace {
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

std::string hostname() {
  char buf[256] = {};
  gethostname(buf, sizeof buf - 1);
  return buf;
}

}  // namespace

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

Dist::PendingSum Dist::start_sum(const std::vector<double>& values) {
  PendingSum p{torch::tensor(values, torch::kFloat64).to(device_), {}};
  if (active()) {
    std::vector<torch::Tensor> v{p.values};
    p.work = backend_->allreduce(v, c10d::AllreduceOptions{c10d::ReduceOp::SUM});
  }
  return p;
}

torch::Tensor& Dist::PendingSum::wait() {
  if (work) {
    work->wait();
    work.reset();
  }
  return values;
}

int64_t Dist::broadcast_int(int64_t value, int root) {
  if (!active()) return value;
  auto t = torch::tensor({value}, torch::kInt64).to(device_);
  broadcast(t, root);
  return t.cpu().item<int64_t>();
}

}  // namespace chart
