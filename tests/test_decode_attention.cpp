// The decode attention kernel (kernels/decode_attention.cu: one query per row against its KV
// cache, split along the keys) against the reference computed in fp32 on upcast inputs: bf16 and
// fp16, head dims 64 and 128, 1, 2, 4 and 8 query heads per KV head, with and without the time
// bias, rows of very different lengths (1 key to the whole cache), left padding, one split and
// several, a paged cache (a shuffled pool of blocks behind a block table), and the warps run in a
// random order. On the CPU through the SIMT emulator (kernels/simt_emulator.h), which is what CI
// checks; AttentionCuda.* runs the same cases on a GPU, skipped where there is none.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include <fmt/format.h>

#include "core/error.h"
#include "kernels/attention.h"
#include "kernels/attention_emulated.h"
#include "kernels/kernels.h"
#include "kernels/simt_emulator.h"

namespace chart {
namespace {

struct DecodeCase {
  int64_t Hq, Hkv, D;
  bool bias;
  torch::ScalarType dtype;
  int64_t splits = 1;       // 0: the launch's own choice
  int64_t block_size = 0;   // > 0: a paged cache with blocks of this many keys
  bool left_padding = false;
};

std::string name(const DecodeCase& c) {
  return fmt::format("Hq{} Hkv{} D{} bias{} {} splits{} block{} padding{}", c.Hq, c.Hkv, c.D, c.bias,
                     c.dtype == torch::kBFloat16 ? "bf16" : "fp16", c.splits, c.block_size, c.left_padding);
}

// A cache of 4 rows whose queries sit at positions 0, 37, 130 and 191 (the last fills it).
struct DecodeInputs {
  torch::Tensor q, k, v, positions, valid, ages, slopes;
  int64_t end = 0;
};

DecodeInputs make_inputs(const DecodeCase& c, torch::Device dev) {
  constexpr int64_t kCapacity = 192;
  torch::manual_seed(7);
  DecodeInputs in;
  const int64_t N = 4;
  auto f = torch::dtype(torch::kFloat32);
  in.q = torch::randn({N, c.Hq, c.D}, f).to(c.dtype);
  in.k = torch::randn({N, c.Hkv, kCapacity, c.D}, f).to(c.dtype);
  in.v = torch::randn({N, c.Hkv, kCapacity, c.D}, f).to(c.dtype);
  in.positions = torch::tensor(std::vector<int64_t>{0, 37, 130, 191}, torch::kInt64);
  in.end = kCapacity;
  in.valid = torch::ones({N, kCapacity}, torch::kBool);
  if (c.left_padding) {
    in.valid[1].narrow(0, 0, 5).fill_(false);
    in.valid[3].narrow(0, 0, 100).fill_(false);
  }
  if (c.bias) {
    // Ages rise through each row by gaps of hours to years, so the bias spans a wide range.
    auto gaps = torch::rand({N, kCapacity}, f).pow(4) * 3.0;
    in.ages = 40.0 + gaps.cumsum(1);
    in.slopes = torch::linspace(0.05, 1.5, c.Hq, f);
  }
  auto move = [&](torch::Tensor& t) {
    if (t.defined()) t = t.to(dev);
  };
  for (auto* t : {&in.q, &in.k, &in.v, &in.positions, &in.valid, &in.ages, &in.slopes}) move(*t);
  return in;
}

torch::Tensor reference(const DecodeInputs& in) {
  auto up = [](const torch::Tensor& t) { return t.defined() ? t.to(torch::kFloat32) : t; };
  return kernels::decode_attention_reference(up(in.q), up(in.k), up(in.v), in.positions, in.end, in.valid, in.ages,
                                             in.slopes);
}

// The same cache as a pool of shuffled blocks and the block table that finds them.
void page(const DecodeInputs& in, int64_t block_size, torch::Tensor& k_pool, torch::Tensor& v_pool,
          torch::Tensor& table) {
  const int64_t N = in.k.size(0), Hkv = in.k.size(1), pages = in.k.size(2) / block_size, D = in.k.size(3);
  auto blocks = [&](const torch::Tensor& t) {  // [N * pages, Hkv, block_size, D], row-major over (n, page)
    return t.view({N, Hkv, pages, block_size, D}).permute({0, 2, 1, 3, 4}).reshape({N * pages, Hkv, block_size, D});
  };
  auto perm = torch::randperm(N * pages, torch::kInt64);  // physical block of logical block i
  auto kb = blocks(in.k), vb = blocks(in.v);
  k_pool = torch::empty_like(kb);
  v_pool = torch::empty_like(vb);
  k_pool.index_copy_(0, perm, kb);
  v_pool.index_copy_(0, perm, vb);
  table = perm.view({N, pages}).to(torch::kInt32);
}

double tolerance(const DecodeCase& c) { return c.dtype == torch::kBFloat16 ? 2e-2 : 4e-3; }

void expect_matches(const DecodeCase& c, const torch::Tensor& out, const torch::Tensor& ref) {
  ASSERT_EQ(out.sizes(), ref.sizes());
  auto got = out.to(torch::kCPU, torch::kFloat32), want = ref.to(torch::kCPU);
  ASSERT_TRUE(torch::isfinite(got).all().item<bool>()) << "a row or head was not written";
  EXPECT_LT((got - want).abs().max().item<double>(), tolerance(c));
}

void run_emulated(const DecodeCase& c) {
  SCOPED_TRACE(name(c));
  DecodeInputs in = make_inputs(c, torch::kCPU);
  torch::Tensor k = in.k, v = in.v, table;
  if (c.block_size > 0) page(in, c.block_size, k, v, table);
  auto out = kernels::decode_attention_emulated(in.q, k, v, in.positions, in.end, in.valid, in.ages, in.slopes, table,
                                                c.splits);
  expect_matches(c, out, reference(in));
}

TEST(DecodeAttentionEmulated, MatchesTheReference) {
  for (auto dtype : {torch::kBFloat16, torch::kFloat16})
    for (int64_t D : {64, 128})
      for (bool bias : {false, true}) run_emulated({4, 2, D, bias, dtype, 3});
  for (int64_t G : {1, 2, 4, 8}) run_emulated({2 * G, 2, 64, true, torch::kBFloat16, 1});
}

TEST(DecodeAttentionEmulated, SplitsPagesAndPaddingChangeNothing) {
  // Splits: one, several, one per 64 keys (the launch's choice for 4 rows x 2 KV heads on 132 SMs).
  for (int64_t splits : {1, 2, 5, 0}) run_emulated({4, 2, 64, true, torch::kBFloat16, splits});
  run_emulated({8, 2, 128, true, torch::kFloat16, 4, 16});        // paged, 16-key blocks
  run_emulated({4, 4, 64, false, torch::kBFloat16, 3, 32, true});  // paged and left-padded
  run_emulated({4, 1, 64, true, torch::kBFloat16, 2, 0, true});
}

TEST(DecodeAttentionEmulated, HoldsWhenWarpsRunInAnyOrder) {
  simt::set_schedule_seed(12345);
  run_emulated({8, 2, 64, true, torch::kBFloat16, 3, 16, true});
  run_emulated({4, 4, 128, true, torch::kFloat16, 1});
  simt::set_schedule_seed(0);
}

TEST(DecodeAttentionEmulated, RefusesWhatItCannotRun) {
  DecodeCase c{6, 2, 64, false, torch::kBFloat16, 1};  // 3 query heads per KV head
  DecodeInputs in = make_inputs(c, torch::kCPU);
  auto call = [&](const torch::Tensor& q, int64_t end) {
    return kernels::decode_attention_emulated(q, in.k, in.v, in.positions, end, in.valid, in.ages, in.slopes,
                                              torch::Tensor(), 1);
  };
  EXPECT_THROW(call(in.q, in.end), c10::Error);
  DecodeCase ok{4, 2, 64, false, torch::kBFloat16, 1};
  DecodeInputs in2 = make_inputs(ok, torch::kCPU);
  EXPECT_THROW(kernels::decode_attention_emulated(in2.q.to(torch::kFloat32), in2.k, in2.v, in2.positions, in2.end,
                                                  in2.valid, {}, {}, {}, 1),
               c10::Error);
  EXPECT_THROW(kernels::decode_attention_emulated(in2.q, in2.k, in2.v, in2.positions, in2.end + 1, in2.valid, {}, {},
                                                  {}, 1),
               c10::Error);
}

// The model's own decode step takes the kernel path only where a GPU is: on the CPU, a model with
// model.attention=kernels says why it cannot run rather than decoding on the reference.
TEST(DecodeAttention, KernelsModeOnTheCpuIsAnError) {
  DecodeCase c{4, 2, 64, false, torch::kBFloat16, 1};
  DecodeInputs in = make_inputs(c, torch::kCPU);
  EXPECT_THROW(kernels::decode_attention(in.q, in.k, in.v, in.positions, in.end, in.valid, {}, {},
                                         kernels::AttentionMode::kKernels),
               Error);
  auto ref = kernels::decode_attention(in.q, in.k, in.v, in.positions, in.end, in.valid, {}, {});
  EXPECT_EQ(ref.sizes(), in.q.sizes());
}

TEST(AttentionCuda, DecodeKernelMatchesTheReference) {
  if (!kernels::cuda_kernels_built() || !torch::cuda::is_available()) GTEST_SKIP() << "no CUDA GPU here";
  for (auto dtype : {torch::kBFloat16, torch::kFloat16})
    for (int64_t D : {64, 128})
      for (int64_t G : {1, 2, 4, 8})
        for (bool bias : {false, true})
          for (bool padding : {false, true}) {
            DecodeCase c{2 * G, 2, D, bias, dtype, 0, 0, padding};
            SCOPED_TRACE(name(c));
            DecodeInputs in = make_inputs(c, torch::kCUDA);
            auto out = kernels::decode_attention(in.q, in.k, in.v, in.positions, in.end, in.valid, in.ages, in.slopes,
                                                 kernels::AttentionMode::kKernels);
            expect_matches(c, out, reference(in));
          }
}

}  // namespace
}  // namespace chart
