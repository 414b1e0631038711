// The SIMT emulator's internals, shared by its two halves: simt_emulator.cpp (fibers, the
// scheduler, barriers, shuffles, cp.async, 16-bit floats) and simt_tensor_core.cpp (mma,
// ldmatrix, wgmma). Not for kernels or tests: they use kernels/simt_emulator.h.
#pragma once
#include <ucontext.h>

#include <cstring>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kernels/simt_emulator.h"

namespace chart::simt::detail {

struct Copy {
  void* dst;
  const void* src;
  int src_bytes;
};

// Where a waiting fiber waits: it may resume once *gen differs from seen.
struct Wait {
  const uint64_t* gen = nullptr;
  uint64_t seen = 0;
  const char* what = "";
};

struct Fiber {
  ucontext_t ctx;
  std::unique_ptr<char[]> stack;
  ThreadIndex idx;
  int warp = 0, lane = 0;
  bool started = false, done = false;
  Wait wait;
  std::vector<Copy> open_group;
  std::deque<std::vector<Copy>> groups;
};

// One collective in flight in a warp (32 lanes) or a warpgroup (128 threads): what each thread
// brought and where its result goes.
struct Group {
  int size = 32;
  int arrived = 0;
  uint64_t gen = 0;
  std::vector<const char*> op;
  std::vector<const void*> in;
  std::vector<void*> out;
  explicit Group(int n = 32) : size(n), op(n), in(n), out(n) {}
};
using Warp = Group;

// A wgmma issued by a warpgroup, executed when a wait_group retires its group: it reads shared
// memory and writes the accumulators then, as late as the hardware may.
struct WgmmaOp {
  int n = 0;
  bool bf16 = true, trans_b = false, scale_d = true, a_regs = false;
  uint64_t desc_a = 0, desc_b = 0;
  float a[64][16];
  float* d[128];
};
struct Warpgroup : Group {
  Warpgroup() : Group(128) {}
  std::vector<WgmmaOp> open;
  std::deque<std::vector<WgmmaOp>> groups;
};

struct Block {
  std::vector<Fiber> fibers;
  std::vector<Warp> warps;
  std::vector<Warpgroup> warpgroups;
  std::vector<unsigned char> shared;  // + 1024 bytes of alignment slack
  unsigned char* shared_base = nullptr;
  size_t shared_bytes = 0;
  int live = 0, arrived = 0;
  uint64_t barrier_gen = 0;
  std::exception_ptr failure;
  const std::function<void()>* body = nullptr;
};

extern Block* g_block;

// The running fiber; throws outside simt::launch.
Fiber& self();
// Suspends the running fiber until *gen changes.
void wait_on(const uint64_t* gen, const char* what);
// Whether [p, p + bytes) lies in the running block's shared memory.
bool in_shared(const void* p, size_t bytes);

// Brings this lane's operands to its warp; the last lane to arrive computes every lane's result
// with `compute` (which reads w.in and writes w.out), then all continue.
template <typename Compute>
void collective_in(Group& w, int slot, const char* op, const void* in, void* out, Compute compute) {
  w.op[slot] = op;
  w.in[slot] = in;
  w.out[slot] = out;
  if (++w.arrived < w.size) {
    wait_on(&w.gen, op);
    return;
  }
  w.arrived = 0;
  for (int l = 0; l < w.size; ++l)
    if (std::strcmp(w.op[l], op) != 0)
      throw EmulationError(std::string("simt: ") + (w.size == 32 ? "warp" : "warpgroup") + " diverged: thread " +
                           std::to_string(l) + " is at " + w.op[l] + ", thread " + std::to_string(slot) + " at " + op);
  compute(w);
  ++w.gen;
}

template <typename Compute>
void collective(const char* op, const void* in, void* out, Compute compute) {
  Fiber& f = self();
  collective_in(g_block->warps[f.warp], f.lane, op, in, out, compute);
}

// The same over the thread's warpgroup (4 consecutive warps).
template <typename Compute>
void warpgroup_collective(const char* op, const void* in, void* out, Compute compute) {
  Fiber& f = self();
  if (g_block->warpgroups.empty()) throw EmulationError(std::string("simt: ") + op + " needs blocks of whole warpgroups (128 threads)");
  collective_in(g_block->warpgroups[f.warp / 4], f.warp % 4 * 32 + f.lane, op, in, out, compute);
}

}  // namespace chart::simt::detail
