// The tensor-core instructions of the SIMT emulator (kernels/simt_emulator.h): mma.sync
// m16n8k16, ldmatrix and Hopper's wgmma, computed from every lane's operands as the PTX ISA
// lays them out.
#include <cstring>
#include <vector>

#include "kernels/simt_emulator_internal.h"

namespace chart::simt {
using namespace detail;

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

}  // namespace chart::simt
