// The attention dispatch: which path runs for which inputs, build, GPU and switches, and the
// reason it gives (choose_attention_path, tested here for GPUs this machine need not have); the
// environment switches parsed strictly; the one-line description for the log; and the
// time-decay bias that the reference and the decode path share.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include <cmath>
#include <map>
#include <string>

#include "core/error.h"
#include "kernels/attention.h"
#include "kernels/attention_dispatch.h"
#include "kernels/kernels.h"

namespace chart {
namespace {

using kernels::AttentionFacts;
using kernels::AttentionPath;

// A bf16, head dim 64 query on an sm_80 GPU of a build with the kernels, no switches set.
AttentionFacts on_gpu(int compute_capability = 80) {
  AttentionFacts f;
  f.device = torch::Device(torch::kCUDA, 0);
  f.dtype = torch::kBFloat16;
  f.head_dim = 64;
  f.kernels_built = true;
  f.compute_capability = compute_capability;
  return f;
}

void expect_path(const AttentionFacts& f, AttentionPath::Kind kind, const std::string& reason) {
  const AttentionPath p = kernels::choose_attention_path(f);
  EXPECT_EQ(p.kind, kind) << p.reason;
  EXPECT_EQ(p.reason, reason);
}

TEST(AttentionDispatch, ChoosesThePathAndSaysWhy) {
  expect_path(on_gpu(), AttentionPath::kCudaSm80, "sm_80");
  auto f = on_gpu();
  f.device = torch::kCPU;
  expect_path(f, AttentionPath::kReference, "CPU tensor");
  f = on_gpu();
  f.kernels_built = false;
  expect_path(f, AttentionPath::kReference, "a build without the CUDA kernels: no nvcc at configure time");
  f = on_gpu();
  f.dtype = torch::kFloat32;
  expect_path(f, AttentionPath::kReference, "fp32; the kernels take bf16/fp16");
  f = on_gpu();
  f.head_dim = 96;
  expect_path(f, AttentionPath::kReference, "head dim 96; the kernels take 64 and 128");
  expect_path(on_gpu(75), AttentionPath::kReference, "sm_75; the kernels need sm_80 or newer");
  f = on_gpu();
  f.dtype = torch::kFloat16;
  f.head_dim = 128;
  expect_path(f, AttentionPath::kCudaSm80, "sm_80");
  expect_path(on_gpu(86), AttentionPath::kCudaSm80, "sm_86");
}

TEST(AttentionDispatch, TheSwitchesDecideWhereTheyApply) {
  auto f = on_gpu(90);
  expect_path(f, AttentionPath::kCudaSm80, "sm_90 without CHART_ATTENTION_SM90=1 (the wgmma forward is opt-in)");
  f.switches.sm90 = true;
  expect_path(f, AttentionPath::kCudaSm90, "sm_90 with CHART_ATTENTION_SM90=1");
  f.switches.reference = true;  // the reference wins over everything
  expect_path(f, AttentionPath::kReference, "CHART_ATTENTION_REFERENCE=1");
  f = on_gpu(80);
  f.switches.sm90 = true;
  expect_path(f, AttentionPath::kCudaSm80, "sm_80; CHART_ATTENTION_SM90=1 applies to sm_90 only");
  f.device = torch::kCPU;
  f.switches.reference = true;
  expect_path(f, AttentionPath::kReference, "CPU tensor");
}

TEST(AttentionDispatch, EnvironmentSwitchesAreOneOrZero) {
  std::map<std::string, std::string> env;
  auto getenv = [&](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  };
  auto s = kernels::attention_switches(getenv);
  EXPECT_FALSE(s.reference);
  EXPECT_FALSE(s.sm90);
  env = {{"CHART_ATTENTION_REFERENCE", "1"}, {"CHART_ATTENTION_SM90", "0"}};
  s = kernels::attention_switches(getenv);
  EXPECT_TRUE(s.reference);
  EXPECT_FALSE(s.sm90);
  env = {{"CHART_ATTENTION_REFERENCE", "0"}, {"CHART_ATTENTION_SM90", "1"}};
  s = kernels::attention_switches(getenv);
  EXPECT_FALSE(s.reference);
  EXPECT_TRUE(s.sm90);
  // Before, any value at all (even 0) meant "reference"; now a typo stops with its name.
  for (const char* bad : {"yes", "true", "", " 1", "2"})
    for (const char* name : {"CHART_ATTENTION_REFERENCE", "CHART_ATTENTION_SM90"}) {
      env = {{name, bad}};
      try {
        kernels::attention_switches(getenv);
        ADD_FAILURE() << name << "='" << bad << "' was accepted";
      } catch (const Error& e) {
        EXPECT_EQ(std::string(e.what()), std::string(name) + "='" + bad + "': expected 1 or 0");
        EXPECT_NE(e.hint().find(std::string(name) + "=1"), std::string::npos) << e.hint();
      }
    }
}

TEST(AttentionDispatch, DescribesThePathForTheLog) {
  EXPECT_EQ(kernels::describe_attention_path(torch::kCPU, torch::kFloat32, 64),
            "attention: LibTorch reference, for fp32 head dim 64 on cpu (CPU tensor)");
  EXPECT_EQ(kernels::describe_attention_path(torch::kCPU, torch::kBFloat16, 128),
            "attention: LibTorch reference, for bf16 head dim 128 on cpu (CPU tensor)");
  if (!kernels::cuda_kernels_built()) {  // a GPU tensor needs no GPU to be refused here
    EXPECT_EQ(kernels::describe_attention_path(torch::kCUDA, torch::kBFloat16, 64),
              "attention: LibTorch reference, for bf16 head dim 64 on cuda (a build without the CUDA kernels: no "
              "nvcc at configure time)");
  }
  EXPECT_EQ(kernels::attention_path(torch::zeros({1, 2, 3, 64}, torch::kBFloat16)).kind, AttentionPath::kReference);
  EXPECT_STREQ(kernels::path_name(AttentionPath::kCudaSm90), "CUDA kernels, wgmma forward and mma.sync backward");
}

TEST(AttentionDispatch, AttentionStopsOnABadSwitch) {
  struct Unset {
    ~Unset() { ::unsetenv("CHART_ATTENTION_REFERENCE"); }
  } unset;
  ::setenv("CHART_ATTENTION_REFERENCE", "yes", 1);
  auto q = torch::randn({1, 2, 4, 8}), seg = torch::zeros({1, 4}, torch::kInt32);
  EXPECT_THROW(kernels::attention(q, q, q, seg, {}, {}), Error);
  ::setenv("CHART_ATTENTION_REFERENCE", "1", 1);
  EXPECT_TRUE(torch::allclose(kernels::attention(q, q, q, seg, {}, {}),
                              kernels::attention_reference(q, q, q, seg, {}, {})));
}

// The decode kernel takes the training kernels' facts and 1, 2, 4 or 8 query heads per KV head;
// other groupings decode on the reference under auto and stop under kernels, saying why.
TEST(AttentionDispatch, DecodePathChecksTheHeadGrouping) {
  for (int64_t kv : {8, 4, 2, 1})
    EXPECT_TRUE(kernels::choose_decode_path(on_gpu(), 8, kv).cuda()) << "8 heads over " << kv;
  const AttentionPath p = kernels::choose_decode_path(on_gpu(), 6, 2);
  EXPECT_FALSE(p.cuda());
  EXPECT_EQ(p.reason, "6 query heads over 2 KV heads; the decode kernel takes 1, 2, 4 or 8 per KV head");
  EXPECT_FALSE(kernels::choose_decode_path(on_gpu(), 32, 2).cuda());  // 16 per KV head
  auto f = on_gpu();
  f.mode = kernels::AttentionMode::kKernels;
  EXPECT_TRUE(kernels::choose_decode_path(f, 8, 2).cuda());
  EXPECT_THROW(kernels::choose_decode_path(f, 6, 2), Error);
  f.device = torch::kCPU;
  EXPECT_THROW(kernels::choose_decode_path(f, 8, 2), Error);
  const std::string line = kernels::describe_decode_path(torch::kCPU, torch::kFloat32, 16, 4, 2);
  EXPECT_EQ(line, "decode attention: LibTorch reference, for fp32 head dim 16, 4 query heads over 2 KV heads on cpu "
                  "(CPU tensor)");
}

TEST(AttentionDispatch, TimeDecayBiasOfQueriesAgainstKeys) {
  // -slope_h * log(1 + |age_i - age_j| in days), queries a suffix of the keys as in decoding.
  auto key_ages = torch::tensor({40.0f, 40.5f, 41.0f, 43.0f, 43.0f, 30.0f, 30.1f, 30.2f, 31.0f, 35.0f}).view({2, 5});
  auto query_ages = key_ages.narrow(1, 3, 2);
  auto slopes = torch::tensor({0.5f, 0.125f, 0.0f});
  auto bias = kernels::time_decay_bias(query_ages, key_ages, slopes);
  ASSERT_EQ(bias.sizes(), (std::vector<int64_t>{2, 3, 2, 5}));
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t h = 0; h < 3; ++h)
      for (int64_t i = 0; i < 2; ++i)
        for (int64_t j = 0; j < 5; ++j) {
          const double gap = std::abs(query_ages[b][i].item<double>() - key_ages[b][j].item<double>()) * 365.25;
          EXPECT_NEAR(bias[b][h][i][j].item<double>(), -slopes[h].item<double>() * std::log1p(gap), 1e-4);
        }
  // The square case is the training reference's; the decode's rows are its last rows.
  auto square = kernels::time_decay_bias(key_ages, key_ages, slopes);
  EXPECT_TRUE(torch::allclose(square.narrow(2, 3, 2), bias, 1e-6, 1e-7));
}

}  // namespace
}  // namespace chart
