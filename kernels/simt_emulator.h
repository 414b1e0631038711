// A CPU emulator of the CUDA thread model, so the attention kernels' own source runs (and is
// tested) on machines without a GPU: tests/test_attention_emulated.cpp, in CI.
//
// Every CUDA thread of a block is a fiber; the block's fibers run cooperatively on the calling
// OS thread and switch only at __syncthreads and at warp collectives (shuffles, votes, mma,
// ldmatrix), whose results the emulator computes from all 32 lanes' operands as the PTX ISA
// defines them. To make ordering mistakes show up as wrong numbers rather than pass silently:
// - shared memory is filled with NaN bytes (0xff) when each block starts;
// - a cp.async copy lands only when the issuing thread waits for its group, so a tile read
//   before its wait (or before the barrier after it) reads stale data;
// - with a schedule seed, warps run as far apart as the barriers allow, in a random order, and
//   half the cp.async copies land as soon as they are issued, so a buffer refilled while
//   another warp still reads it shows too.
// Mistakes the emulator reports itself (as chart::simt::EmulationError): lanes of one warp at
// different collectives, a warp collective with a lane that has exited, ldmatrix or cp.async on
// a misaligned or non-shared address, and threads that can never all reach a barrier.
// What it cannot see: races between two plain shared-memory accesses with no switch point
// between them, timing and occupancy, and the summation order inside a tensor-core MMA.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <stdexcept>

namespace chart::simt {

struct EmulationError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

struct ThreadIndex {
  dim3 thread_idx, block_idx, block_dim, grid_dim;
};

// The running fiber's indices (valid inside launch()).
const ThreadIndex& me();
// The running block's dynamic shared memory, 16-byte aligned.
unsigned char* shared_memory();

// Runs body once per thread of the grid: blocks one after another, each block's threads as
// fibers. Throws EmulationError for the mistakes above, or what body threw.
void launch(dim3 grid, dim3 block, size_t shared_bytes, const std::function<void()>& body);
// 0 (default): warps move in lockstep; otherwise each round runs the warps one after another in
// a seeded random order, each as far as it can go.
void set_schedule_seed(uint64_t seed);

// __syncthreads(): every thread of the block that has not exited.
void syncthreads();

// Warp collectives; every lane of the warp must call the same one (a full mask).
float shfl_xor(float v, int lane_mask);
bool all(bool predicate);
// mma.sync.aligned.m16n8k16.row.col.f32.{bf16,f16}: d = a b + c with the PTX fragment layouts.
void mma_m16n8k16(bool bf16, float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1);
// ldmatrix.sync.aligned.m8n8.x4[.trans].shared.b16: lane 8i + r gives row r of matrix i.
void ldmatrix_x4(uint32_t (&r)[4], const void* row_address, bool trans);

// cp.async.cg.shared.global, 16 bytes (src_bytes of them read, the rest zero-filled), and its
// commit/wait groups, per thread.
void cp_async_16(void* shared_dst, const void* global_src, int src_bytes);
void cp_async_commit();
void cp_async_wait(int allowed_pending_groups);

// ---- Hopper (sm_90a) warpgroup MMA; blocks of whole warpgroups (4 consecutive warps).
// The offset of p in the block's shared memory, as __cvta_generic_to_shared gives it (the
// emulated shared memory starts 1024-byte aligned, as `extern __shared__ __align__(1024)` does).
uint32_t shared_address(const void* p);
// wgmma.mma_async.sync.aligned.m64nNk16.f32.{bf16,f16}: D (64 x N; this thread's N / 2 floats at
// d) = A (64 x 16) B (16 x N) + (scale_d ? D : 0). A from the shared-memory matrix descriptor
// desc_a (K-major) or, given a_regs, from four registers per thread (the mma.sync A-fragment
// layout, warp w of the group holding rows 16w..16w+15); B from desc_b, K-major, or N-major when
// trans_b. Only 128-byte-swizzled layouts are emulated. The product happens when a wait_group
// retires its group, reading shared memory and the accumulators then.
void wgmma(int n, bool bf16, float* d, uint64_t desc_a, const uint32_t* a_regs, uint64_t desc_b, bool scale_d,
           bool trans_b);
void wgmma_fence();
void wgmma_commit();
void wgmma_wait(int allowed_pending_groups);

// 16-bit float storage types with round-to-nearest-even conversions, as cuda_bf16/cuda_fp16 do.
struct bf16 {
  uint16_t bits;
};
struct fp16 {
  uint16_t bits;
};
float to_float(bf16 x);
float to_float(fp16 x);
bf16 to_bf16(float x);
fp16 to_fp16(float x);

}  // namespace chart::simt
