#include "kernels/simt_emulator.h"

#include <ucontext.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <deque>
#include <exception>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace chart::simt {
namespace {

constexpr size_t kStackBytes = 256 * 1024;  // kernels keep their register arrays on it

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

Block* g_block = nullptr;
Fiber* g_fiber = nullptr;
ucontext_t g_scheduler;
uint64_t g_seed = 0;
std::mt19937_64 g_rng;

Fiber& self() {
  if (!g_fiber) throw EmulationError("simt: a CUDA intrinsic was called outside simt::launch");
  return *g_fiber;
}

void yield() { swapcontext(&g_fiber->ctx, &g_scheduler); }

void wait_on(const uint64_t* gen, const char* what) {
  Fiber& f = self();
  f.wait = {gen, *gen, what};
  yield();
  f.wait = {};
}

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

bool in_shared(const void* p, size_t bytes) {
  auto* c = static_cast<const unsigned char*>(p);
  return c >= g_block->shared_base && c + bytes <= g_block->shared_base + g_block->shared_bytes;
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

void mma_m16n8k16(bool is_bf16, float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  struct In {
    uint32_t a[4], b[2];
    float c[4];
    bool bf16;
  } in{{a[0], a[1], a[2], a[3]}, {b0, b1}, {d[0], d[1], d[2], d[3]}, is_bf16};
  float out[4];
  collective(is_bf16 ? "mma.bf16" : "mma.f16", &in, out, [](Warp& w) {
    auto half = [](uint32_t reg, int hi, bool bf) {
      const uint16_t bits = static_cast<uint16_t>(hi ? reg >> 16 : reg & 0xffff);
      return bf ? to_float(bf16{bits}) : to_float(fp16{bits});
    };
    float A[16][16], B[16][8], C[16][8];
    for (int l = 0; l < 32; ++l) {
      const In& x = *static_cast<const In*>(w.in[l]);
      const int g = l / 4, t = l % 4;
      for (int e = 0; e < 2; ++e) {
        A[g][2 * t + e] = half(x.a[0], e, x.bf16);
        A[g + 8][2 * t + e] = half(x.a[1], e, x.bf16);
        A[g][2 * t + 8 + e] = half(x.a[2], e, x.bf16);
        A[g + 8][2 * t + 8 + e] = half(x.a[3], e, x.bf16);
        B[2 * t + e][g] = half(x.b[0], e, x.bf16);
        B[2 * t + 8 + e][g] = half(x.b[1], e, x.bf16);
        C[g][2 * t + e] = x.c[e];
        C[g + 8][2 * t + e] = x.c[2 + e];
      }
    }
    for (int l = 0; l < 32; ++l) {
      const int g = l / 4, t = l % 4;
      float* o = static_cast<float*>(w.out[l]);
      for (int e = 0; e < 4; ++e) {
        const int row = g + (e < 2 ? 0 : 8), col = 2 * t + (e & 1);
        double acc = 0;  // products of 16-bit floats are exact; the sum order is the GPU's own
        for (int k = 0; k < 16; ++k) acc += static_cast<double>(A[row][k]) * B[k][col];
        o[e] = static_cast<float>(acc + C[row][col]);
      }
    }
  });
  for (int e = 0; e < 4; ++e) d[e] = out[e];
}

void ldmatrix_x4(uint32_t (&r)[4], const void* row_address, bool trans) {
  if (reinterpret_cast<uintptr_t>(row_address) % 16 != 0 || !in_shared(row_address, 16))
    throw EmulationError("simt: ldmatrix row address is not 16-byte aligned shared memory");
  struct In {
    const uint16_t* row;
    bool trans;
  } in{static_cast<const uint16_t*>(row_address), trans};
  uint32_t out[4];
  collective(trans ? "ldmatrix.trans" : "ldmatrix", &in, out, [](Warp& w) {
    for (int l = 0; l < 32; ++l) {
      auto* o = static_cast<uint32_t*>(w.out[l]);
      for (int m = 0; m < 4; ++m) {
        const In& row0 = *static_cast<const In*>(w.in[8 * m]);
        // element (row, col) of matrix m: row `row` comes from lane 8m + row
        auto at = [&](int row, int col) { return static_cast<const In*>(w.in[8 * m + row])->row[col]; };
        uint16_t lo, hi;
        if (row0.trans) {
          lo = at(2 * (l % 4), l / 4);
          hi = at(2 * (l % 4) + 1, l / 4);
        } else {
          lo = at(l / 4, 2 * (l % 4));
          hi = at(l / 4, 2 * (l % 4) + 1);
        }
        o[m] = static_cast<uint32_t>(lo) | (static_cast<uint32_t>(hi) << 16);
      }
    }
  });
  for (int m = 0; m < 4; ++m) r[m] = out[m];
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

uint32_t shared_address(const void* p) {
  self();
  if (!in_shared(p, 1)) throw EmulationError("simt: shared_address of a pointer outside shared memory");
  return static_cast<uint32_t>(static_cast<const unsigned char*>(p) - g_block->shared_base);
}

namespace {

struct Descriptor {
  uint32_t start, lbo, sbo;
};

Descriptor decode(uint64_t desc) {
  const unsigned swizzle = static_cast<unsigned>(desc >> 62), base_offset = static_cast<unsigned>(desc >> 49) & 7;
  if (swizzle != 1) throw EmulationError("simt: wgmma descriptor: only the 128-byte swizzle (mode 1) is emulated");
  if (base_offset != 0) throw EmulationError("simt: wgmma descriptor: base offset must be 0 (1024-byte aligned atoms)");
  return {static_cast<uint32_t>(desc & 0x3fff) << 4, static_cast<uint32_t>((desc >> 16) & 0x3fff) << 4,
          static_cast<uint32_t>((desc >> 32) & 0x3fff) << 4};
}

// The 128-byte swizzle: the 16-byte chunk (address bits 4-6) XOR the row within the 1024-byte
// atom (bits 7-9).
uint32_t swizzle128(uint32_t a) { return a ^ (((a >> 7) & 7) << 4); }

float shared_half(uint32_t address, bool is_bf16) {
  if (address + 2 > g_block->shared_bytes) throw EmulationError("simt: wgmma reads past the block's shared memory");
  uint16_t bits;
  std::memcpy(&bits, g_block->shared_base + address, 2);
  return is_bf16 ? to_float(bf16{bits}) : to_float(fp16{bits});
}

// Element (r, k) of a K-major operand: 128-byte rows of 64 K elements, 8-row atoms SBO apart.
float k_major(const Descriptor& d, int r, int k, bool is_bf16) {
  return shared_half(swizzle128(d.start + (r / 8) * d.sbo + (r % 8) * 128 + k * 2), is_bf16);
}
// Element (k, n) of an MN-major operand: 128-byte rows of 64 N elements, one per k; 8-row atoms
// SBO apart along K, 64-wide N blocks LBO apart.
float mn_major(const Descriptor& d, int k, int n, bool is_bf16) {
  return shared_half(swizzle128(d.start + (n / 64) * d.lbo + (k / 8) * d.sbo + (k % 8) * 128 + (n % 64) * 2), is_bf16);
}

void execute(const WgmmaOp& op) {
  float A[64][16];
  std::vector<float> B(16 * op.n);
  if (op.a_regs) {
    std::memcpy(A, op.a, sizeof(A));
  } else {
    const Descriptor da = decode(op.desc_a);
    for (int r = 0; r < 64; ++r)
      for (int k = 0; k < 16; ++k) A[r][k] = k_major(da, r, k, op.bf16);
  }
  const Descriptor db = decode(op.desc_b);
  for (int k = 0; k < 16; ++k)
    for (int n = 0; n < op.n; ++n) B[k * op.n + n] = op.trans_b ? mn_major(db, k, n, op.bf16) : k_major(db, n, k, op.bf16);
  for (int tid = 0; tid < 128; ++tid) {
    const int w = tid / 32, g = tid % 32 / 4, t = tid % 4;
    for (int j = 0; j < op.n / 8; ++j)
      for (int e = 0; e < 4; ++e) {
        const int row = 16 * w + g + (e < 2 ? 0 : 8), col = 8 * j + 2 * t + (e & 1);
        double acc = 0;
        for (int k = 0; k < 16; ++k) acc += static_cast<double>(A[row][k]) * B[k * op.n + col];
        float& out = op.d[tid][4 * j + e];
        out = static_cast<float>(acc + (op.scale_d ? out : 0.f));
      }
  }
}

}  // namespace

void wgmma(int n, bool is_bf16, float* d, uint64_t desc_a, const uint32_t* a_regs, uint64_t desc_b, bool scale_d,
           bool trans_b) {
  if (n < 8 || n > 256 || n % 8 != 0) throw EmulationError("simt: wgmma N must be a multiple of 8 in [8, 256]");
  struct In {
    int n;
    bool bf16, scale_d, trans_b, a_regs;
    uint64_t desc_a, desc_b;
    uint32_t a[4];
    float* d;
  } in{n, is_bf16, scale_d, trans_b, a_regs != nullptr, desc_a, desc_b, {}, d};
  if (a_regs) std::memcpy(in.a, a_regs, sizeof(in.a));
  Fiber& f = self();
  Warpgroup* wg = g_block->warpgroups.empty() ? nullptr : &g_block->warpgroups[f.warp / 4];
  warpgroup_collective("wgmma.mma_async", &in, nullptr, [&](Group&) {
    WgmmaOp op;
    const In& first = *static_cast<const In*>(wg->in[0]);
    op.n = first.n;
    op.bf16 = first.bf16;
    op.scale_d = first.scale_d;
    op.trans_b = first.trans_b;
    op.a_regs = first.a_regs;
    op.desc_a = first.desc_a;
    op.desc_b = first.desc_b;
    for (int tid = 0; tid < 128; ++tid) {
      const In& x = *static_cast<const In*>(wg->in[tid]);
      if (x.n != op.n || x.bf16 != op.bf16 || x.scale_d != op.scale_d || x.trans_b != op.trans_b ||
          x.a_regs != op.a_regs || x.desc_b != op.desc_b || (!op.a_regs && x.desc_a != op.desc_a))
        throw EmulationError("simt: the threads of a warpgroup disagree on a wgmma's shape, flags or descriptors");
      op.d[tid] = x.d;
      if (op.a_regs) {
        const int w = tid / 32, g = tid % 32 / 4, t = tid % 4;
        auto half = [&](uint32_t reg, int hi) {
          const uint16_t bits = static_cast<uint16_t>(hi ? reg >> 16 : reg & 0xffff);
          return op.bf16 ? to_float(bf16{bits}) : to_float(fp16{bits});
        };
        for (int e = 0; e < 2; ++e) {
          op.a[16 * w + g][2 * t + e] = half(x.a[0], e);
          op.a[16 * w + g + 8][2 * t + e] = half(x.a[1], e);
          op.a[16 * w + g][2 * t + 8 + e] = half(x.a[2], e);
          op.a[16 * w + g + 8][2 * t + 8 + e] = half(x.a[3], e);
        }
      }
    }
    wg->open.push_back(op);
  });
}

void wgmma_fence() {
  warpgroup_collective("wgmma.fence", nullptr, nullptr, [](Group&) {});
}

void wgmma_commit() {
  Fiber& f = self();
  warpgroup_collective("wgmma.commit_group", nullptr, nullptr, [&](Group&) {
    Warpgroup& wg = g_block->warpgroups[f.warp / 4];
    wg.groups.push_back(std::move(wg.open));
    wg.open.clear();
  });
}

void wgmma_wait(int allowed_pending_groups) {
  Fiber& f = self();
  warpgroup_collective("wgmma.wait_group", nullptr, nullptr, [&](Group&) {
    Warpgroup& wg = g_block->warpgroups[f.warp / 4];
    while (static_cast<int>(wg.groups.size()) > allowed_pending_groups) {
      for (const WgmmaOp& op : wg.groups.front()) execute(op);
      wg.groups.pop_front();
    }
  });
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
