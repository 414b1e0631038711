// The SIMT emulator's thread model (kernels/simt_emulator.h): fibers, the scheduler, barriers,
// shuffles and votes, cp.async, and the 16-bit float conversions. The tensor-core instructions
// are in simt_tensor_core.cpp.
#include <algorithm>
#include <cmath>
#include <random>

#include "kernels/simt_emulator_internal.h"

namespace chart::simt {
namespace detail {

Block* g_block = nullptr;
namespace {
Fiber* g_fiber = nullptr;
ucontext_t g_scheduler;
}  // namespace

Fiber& self() {
  if (!g_fiber) throw EmulationError("simt: a CUDA intrinsic was called outside simt::launch");
  return *g_fiber;
}

void wait_on(const uint64_t* gen, const char* what) {
  Fiber& f = self();
  f.wait = {gen, *gen, what};
  swapcontext(&g_fiber->ctx, &g_scheduler);  // back to the scheduler until *gen moves
  f.wait = {};
}

bool in_shared(const void* p, size_t bytes) {
  auto* c = static_cast<const unsigned char*>(p);
  return c >= g_block->shared_base && c + bytes <= g_block->shared_base + g_block->shared_bytes;
}

}  // namespace detail

using namespace detail;

namespace {

constexpr size_t kStackBytes = 256 * 1024;  // kernels keep their register arrays on it
uint64_t g_seed = 0;
std::mt19937_64 g_rng;

void fiber_main() {
  Fiber& f = *g_fiber;
  try {
    (*g_block->body)();
  } catch (...) {
    if (!g_block->failure) g_block->failure = std::current_exception();
  }
  f.done = true;
  // An exited thread no longer holds up __syncthreads.
  Block& b = *g_block;
  if (--b.live > 0 && b.arrived == b.live) {
    b.arrived = 0;
    ++b.barrier_gen;
  }
  // Returning switches to uc_link, the scheduler.
}

std::string describe(const Block& b) {
  std::string s;
  for (const Fiber& f : b.fibers) {
    if (f.done) continue;
    s += " thread " + std::to_string(f.idx.thread_idx.x) + " waits at " + f.wait.what + ";";
    if (s.size() > 400) {
      s += " ...";
      break;
    }
  }
  return s;
}

bool runnable(const Fiber& f) { return !f.done && !(f.wait.gen && *f.wait.gen == f.wait.seen); }

// Resumes fiber f until it next switches; returns whether it finished.
bool resume(Block& b, Fiber& f) {
  g_fiber = &f;
  swapcontext(&g_scheduler, &f.ctx);
  g_fiber = nullptr;
  if (b.failure) std::rethrow_exception(b.failure);
  return f.done;
}

// Seed 0: round-robin, one step per fiber per round, so warps move in lockstep. Otherwise each
// round takes the warps in a random order and runs each as far as it can go (to a barrier or
// the end) before the next starts: warps drift as far apart as the barriers allow, so shared
// memory read before its writers reach it (a missing __syncthreads) reads stale values.
void run_block(Block& b, std::mt19937_64& rng) {
  const int warps = static_cast<int>(b.warps.size());
  std::vector<int> order(warps);
  for (int w = 0; w < warps; ++w) order[w] = w;
  int remaining = static_cast<int>(b.fibers.size());
  while (remaining > 0) {
    bool progress = false;
    if (g_seed == 0) {
      for (Fiber& f : b.fibers)
        if (runnable(f)) {
          progress = true;
          remaining -= resume(b, f);
        }
    } else {
      std::shuffle(order.begin(), order.end(), rng);
      for (int w : order)
        for (bool moved = true; moved;) {
          moved = false;
          for (int l = 0; l < 32; ++l) {
            Fiber& f = b.fibers[w * 32 + l];
            if (!runnable(f)) continue;
            moved = progress = true;
            remaining -= resume(b, f);
          }
        }
    }
    if (!progress)
      throw EmulationError("simt: block (" + std::to_string(b.fibers[0].idx.block_idx.x) + ", " +
                           std::to_string(b.fibers[0].idx.block_idx.y) + ") cannot make progress:" + describe(b));
  }
}

void land(const Copy& c) {
  unsigned char tmp[16] = {};
  if (c.src_bytes > 0) std::memcpy(tmp, c.src, c.src_bytes);
  std::memcpy(c.dst, tmp, 16);
}

float bits_to_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Out of line: getcontext "returns twice" as far as the compiler knows, which would clobber the
// caller's loop variables.
[[gnu::noinline]] void start_context(Fiber& f) {
  getcontext(&f.ctx);
  f.ctx.uc_stack.ss_sp = f.stack.get();
  f.ctx.uc_stack.ss_size = kStackBytes;
  f.ctx.uc_link = &g_scheduler;
  makecontext(&f.ctx, fiber_main, 0);
}

}  // namespace

const ThreadIndex& me() { return self().idx; }

unsigned char* shared_memory() {
  self();
  return g_block->shared_base;
}

void set_schedule_seed(uint64_t seed) { g_seed = seed; }

void launch(dim3 grid, dim3 block_dim, size_t shared_bytes, const std::function<void()>& body) {
  const unsigned threads = block_dim.x * block_dim.y * block_dim.z;
  if (threads == 0 || threads % 32 != 0 || threads > 1024)
    throw EmulationError("simt: blocks of " + std::to_string(threads) + " threads (whole warps, at most 1024)");
  if (g_block) throw EmulationError("simt: launch inside a kernel");
  std::mt19937_64& rng = g_rng;
  rng.seed(g_seed);
  Block b;
  b.body = &body;
  b.fibers.resize(threads);
  for (auto& f : b.fibers) f.stack = std::make_unique<char[]>(kStackBytes);
  b.warps.resize(threads / 32);
  b.shared.resize(shared_bytes + 1024);
  b.shared_base = b.shared.data() + (1024 - reinterpret_cast<uintptr_t>(b.shared.data()) % 1024) % 1024;
  b.warpgroups.resize(threads % 128 == 0 ? threads / 128 : 0);
  b.shared_bytes = shared_bytes;
  g_block = &b;
  try {
    for (unsigned bz = 0; bz < grid.z; ++bz)
      for (unsigned by = 0; by < grid.y; ++by)
        for (unsigned bx = 0; bx < grid.x; ++bx) {
          std::fill(b.shared.begin(), b.shared.end(), 0xff);
          b.live = static_cast<int>(threads);
          b.arrived = 0;
          for (auto& w : b.warps) w.arrived = 0;
          for (auto& w : b.warpgroups) {
            w.arrived = 0;
            w.open.clear();
            w.groups.clear();
          }
          for (unsigned t = 0; t < threads; ++t) {
            Fiber& f = b.fibers[t];
            f.idx.thread_idx = dim3(t % block_dim.x, t / block_dim.x % block_dim.y, t / (block_dim.x * block_dim.y));
            f.idx.block_idx = dim3(bx, by, bz);
            f.idx.block_dim = block_dim;
            f.idx.grid_dim = grid;
            f.warp = static_cast<int>(t / 32);
            f.lane = static_cast<int>(t % 32);
            f.done = false;
            f.wait = {};
            f.open_group.clear();
            f.groups.clear();
            start_context(f);
          }
          run_block(b, rng);
        }
  } catch (...) {
    g_block = nullptr;
    g_fiber = nullptr;
    throw;
  }
  g_block = nullptr;
}

void syncthreads() {
  Fiber& f = self();
  (void)f;
  Block& b = *g_block;
  if (++b.arrived == b.live) {
    b.arrived = 0;
    ++b.barrier_gen;
    return;
  }
  wait_on(&b.barrier_gen, "__syncthreads");
}

float shfl_xor(float v, int lane_mask) {
  struct In {
    float v;
    int mask;
  } in{v, lane_mask};
  float out;
  collective("shfl_xor", &in, &out, [](Warp& w) {
    for (int l = 0; l < 32; ++l) {
      const int m = static_cast<const In*>(w.in[l])->mask;
      if (m < 0 || m > 31) throw EmulationError("simt: shfl_xor lane mask out of range");
      *static_cast<float*>(w.out[l]) = static_cast<const In*>(w.in[l ^ m])->v;
    }
  });
  return out;
}

bool all(bool predicate) {
  bool out;
  collective("all", &predicate, &out, [](Warp& w) {
    bool r = true;
    for (int l = 0; l < 32; ++l) r = r && *static_cast<const bool*>(w.in[l]);
    for (int l = 0; l < 32; ++l) *static_cast<bool*>(w.out[l]) = r;
  });
  return out;
}

void cp_async_16(void* shared_dst, const void* global_src, int src_bytes) {
  Fiber& f = self();
  if (reinterpret_cast<uintptr_t>(shared_dst) % 16 != 0 || !in_shared(shared_dst, 16))
    throw EmulationError("simt: cp.async destination is not 16-byte aligned shared memory");
  if (src_bytes < 0 || src_bytes > 16 || (src_bytes > 0 && reinterpret_cast<uintptr_t>(global_src) % 16 != 0))
    throw EmulationError("simt: cp.async source is not 16-byte aligned");
  if (src_bytes > 0 && in_shared(global_src, 1)) throw EmulationError("simt: cp.async source is shared memory");
  Copy c{shared_dst, global_src, src_bytes};
  // With a schedule seed, half the copies land at once (the earliest the hardware may), which
  // shows a buffer refilled while other warps still read it; the rest at the wait (the latest).
  if (g_seed != 0 && (g_rng() & 1)) land(c);
  else f.open_group.push_back(c);
}

void cp_async_commit() {
  Fiber& f = self();
  f.groups.push_back(std::move(f.open_group));
  f.open_group.clear();
}

void cp_async_wait(int allowed_pending_groups) {
  Fiber& f = self();
  while (static_cast<int>(f.groups.size()) > allowed_pending_groups) {
    for (const Copy& c : f.groups.front()) land(c);
    f.groups.pop_front();
  }
}

float to_float(bf16 x) { return bits_to_float(static_cast<uint32_t>(x.bits) << 16); }

float to_float(fp16 x) {
  _Float16 h;
  std::memcpy(&h, &x.bits, 2);
  return static_cast<float>(h);
}

bf16 to_bf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if (std::isnan(x)) return {static_cast<uint16_t>((u >> 16) | 0x40)};  // stays a NaN
  u += 0x7fff + ((u >> 16) & 1);                                       // round to nearest even
  return {static_cast<uint16_t>(u >> 16)};
}

fp16 to_fp16(float x) {
  _Float16 h = static_cast<_Float16>(x);
  fp16 r;
  std::memcpy(&r.bits, &h, 2);
  return r;
}

}  // namespace chart::simt
