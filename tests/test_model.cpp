// The model: shapes, the attention reference against a plain loop, masking checked by
// perturbation (a position never sees the future or another patient), safetensors round trips
// and refusal of crafted files.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "core/config.h"
#include "core/error.h"
#include "kernels/attention.h"
#include "core/files.h"
#include "core/sha256.h"
#include "model/safetensors.h"
#include "model/safetensors_writer.h"
#include "model/transformer.h"
#include "tests/test_util.h"

namespace chart {
namespace {

ModelConfig small_model(bool time_bias = false, int64_t kv = 2) {
  ModelConfig m;
  m.d_model = 32;
  m.n_layers = 2;
  m.n_heads = 4;
  m.n_kv_heads = kv;
  m.context = 16;
  m.time_bias = time_bias;
  m.time_head = true;
  return m;
}

struct Inputs {
  torch::Tensor tokens, ages, segments;
};

// One row: patient 0 at positions 0-6, patient 1 at 7-12, padding 13-15.
Inputs row_inputs() {
  torch::manual_seed(3);
  Inputs in;
  in.tokens = torch::randint(3, 40, {1, 16}, torch::kInt64);
  in.segments = torch::tensor({0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, -1, -1, -1}, torch::kInt32).view({1, 16});
  in.ages = torch::tensor({50.0f, 50.0f, 50.1f, 50.2f, 51.0f, 51.0f, 52.0f, 30.0f, 30.5f, 31.0f, 31.0f,
                           33.0f, 34.0f, 0.0f, 0.0f, 0.0f}).view({1, 16});
  return in;
}

torch::Tensor naive_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                              const torch::Tensor& seg, const torch::Tensor& ages, const torch::Tensor& slopes) {
  const int64_t B = q.size(0), H = q.size(1), L = q.size(2), D = q.size(3), G = H / k.size(1);
  auto out = torch::zeros_like(q);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < L; ++i) {
        std::vector<double> w(L, 0.0);
        double mx = -1e30;
        for (int64_t j = 0; j <= i; ++j) {
          if (seg[b][j].item<int>() != seg[b][i].item<int>()) continue;
          double s = (q[b][h][i] * k[b][h / G][j]).sum().item<double>() / std::sqrt(double(D));
          if (slopes.defined()) {
            double gap = std::abs(ages[b][i].item<double>() - ages[b][j].item<double>()) * 365.25;
            s += -slopes[h].item<double>() * std::log1p(gap);
          }
          w[j] = s;
          mx = std::max(mx, s);
        }
        double z = 0;
        for (int64_t j = 0; j <= i; ++j)
          if (seg[b][j].item<int>() == seg[b][i].item<int>()) z += std::exp(w[j] - mx);
        for (int64_t j = 0; j <= i; ++j)
          if (seg[b][j].item<int>() == seg[b][i].item<int>())
            out[b][h][i] += v[b][h / G][j] * (std::exp(w[j] - mx) / z);
      }
  return out;
}

TEST(Attention, ReferenceMatchesAPlainLoop) {
  torch::manual_seed(0);
  auto in = row_inputs();
  auto seg = torch::cat({in.segments, torch::tensor({0, 0, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2}, torch::kInt32).view({1, 16})});
  auto ages = torch::cat({in.ages, in.ages});
  auto q = torch::randn({2, 4, 16, 8}), k = torch::randn({2, 2, 16, 8}), v = torch::randn({2, 2, 16, 8});
  auto slopes = torch::tensor({0.5f, 0.25f, 0.1f, 0.0f});
  auto ref = kernels::attention_reference(q, k, v, seg, torch::Tensor(), torch::Tensor());
  EXPECT_LT((ref - naive_attention(q, k, v, seg, ages, torch::Tensor())).abs().max().item<double>(), 1e-5);
  auto biased = kernels::attention_reference(q, k, v, seg, ages, slopes);
  EXPECT_LT((biased - naive_attention(q, k, v, seg, ages, slopes)).abs().max().item<double>(), 1e-5);
  EXPECT_GT((biased - ref).abs().max().item<double>(), 1e-3);  // the bias does something
}

TEST(Model, ShapesAndParameterCount) {
  torch::manual_seed(0);
  ModelConfig m = small_model();
  ClinicalTransformer model(m, 40);
  auto in = row_inputs();
  auto out = model->forward(in.tokens, in.ages, in.segments);
  EXPECT_EQ(out.logits.sizes(), (std::vector<int64_t>{1, 16, 40}));
  EXPECT_EQ(out.logits.scalar_type(), torch::kFloat32);
  EXPECT_EQ(out.log_rate.sizes(), (std::vector<int64_t>{1, 16}));
  // tok_emb + age_proj + per layer (q, k, v, o, gate, up, down, 2 norms) + final norm + time head
  const int64_t d = 32, ff = 128, kv = 2 * 8;
  int64_t per_layer = d * d + 2 * d * kv + d * d + 3 * d * ff + 2 * d;
  EXPECT_EQ(model->parameter_count(), 40 * d + d * d + 2 * per_layer + d + (d + 1));
  EXPECT_GT(model->flops_per_token(16), 6.0 * 2 * per_layer);
}

// Output at every position after changing the token (or age) at position p.
torch::Tensor logits_after(ClinicalTransformer& model, Inputs in, int64_t p, bool change_age = false) {
  in.tokens = in.tokens.clone();
  in.ages = in.ages.clone();
  if (change_age) in.ages[0][p] = in.ages[0][p].item<float>() + 7.0f;
  else in.tokens[0][p] = (in.tokens[0][p].item<int64_t>() + 5) % 40;
  return model->forward(in.tokens, in.ages, in.segments).logits;
}

TEST(Model, APositionSeesNeitherTheFutureNorAnotherPatient) {
  for (bool bias : {false, true}) {
    torch::manual_seed(1);
    ClinicalTransformer model(small_model(bias), 40);
    model->eval();
    torch::NoGradGuard ng;
    auto in = row_inputs();
    auto base = model->forward(in.tokens, in.ages, in.segments).logits;
    auto diff = [&](const torch::Tensor& other, int64_t pos) {
      return (other[0][pos] - base[0][pos]).abs().max().item<double>();
    };
    // Changing patient 0's position 4 changes positions 4-6, not 0-3, and nothing of patient 1.
    auto t = logits_after(model, in, 4);
    for (int64_t i = 0; i < 4; ++i) EXPECT_EQ(diff(t, i), 0.0) << "position " << i << " saw the future";
    EXPECT_GT(diff(t, 5), 1e-6);  // the perturbation is visible where it should be
    for (int64_t i = 7; i < 13; ++i) EXPECT_EQ(diff(t, i), 0.0) << "patient 1 saw patient 0 at " << i;
    // Changing patient 1's first token leaves all of patient 0 unchanged.
    t = logits_after(model, in, 7);
    for (int64_t i = 0; i < 7; ++i) EXPECT_EQ(diff(t, i), 0.0);
    EXPECT_GT(diff(t, 9), 1e-6);
    // Ages: another patient's ages never matter; with time bias, earlier ages of the same one do.
    t = logits_after(model, in, 8, /*change_age=*/true);
    for (int64_t i = 0; i < 7; ++i) EXPECT_EQ(diff(t, i), 0.0);
    EXPECT_GT(diff(t, 8), 1e-6);  // its own age encoding
  }
}

TEST(Safetensors, RoundTripsAndKeepsMetadata) {
  testing::TempDir dir;
  auto a = torch::randn({3, 4});
  auto b = torch::arange(5, torch::kInt64);
  auto c = torch::randn({2}).to(torch::kBFloat16);
  save_safetensors(dir / "x.safetensors", {{"a", a}, {"b", b}, {"c", c}}, {{"step", "7"}});
  Safetensors st = load_safetensors(dir / "x.safetensors");
  EXPECT_TRUE(st.tensors.at("a").equal(a));
  EXPECT_TRUE(st.tensors.at("b").equal(b));
  EXPECT_TRUE(st.tensors.at("c").equal(c));
  EXPECT_EQ(st.metadata.at("format"), "pt");
  EXPECT_EQ(st.metadata.at("step"), "7");
}

// The streamed writer writes exactly the bytes of the one-buffer serialiser, returns their
// SHA-256 and leaves no temporary; a header alone and a range of one tensor read back in part.
TEST(Safetensors, StreamedWriteHashesAndPartialReads) {
  testing::TempDir dir;
  const NamedTensors t = {{"a", torch::randn({3, 5})}, {"b", torch::arange(7, torch::kInt64)},
                          {"c", torch::randn({2}).to(torch::kBFloat16)}};
  const std::filesystem::path f = dir / "x.safetensors";
  const std::string hash = save_safetensors_hashed(f, t, {{"step", "7"}});
  EXPECT_EQ(read_file(f), safetensors_bytes(t, {{"step", "7"}}));
  EXPECT_EQ(hash, sha256_file(f));
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), std::filesystem::directory_iterator()), 1);
  const SafetensorsLayout layout = read_safetensors_layout(f);
  ASSERT_EQ(layout.tensors.size(), 3u);
  EXPECT_EQ(layout.metadata.at("step"), "7");
  EXPECT_TRUE(read_safetensors_elements(f, layout, layout.tensors[0], 4, 11).equal(t[0].second.reshape({-1}).narrow(0, 4, 7)));
  EXPECT_TRUE(read_safetensors_elements(f, layout, layout.tensors[1], 6, 7).equal(torch::tensor({int64_t{6}})));
  EXPECT_THROW(read_safetensors_elements(f, layout, layout.tensors[2], 1, 3), Error);
  // A truncated file is refused from its header alone.
  write_file_atomic(f, read_file(f).substr(0, 40));
  EXPECT_THROW(read_safetensors_layout(f), Error);
}

// A crafted file: the given header JSON and data bytes.
std::string crafted(const std::string& header, size_t data_bytes) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + std::string(data_bytes, '\1');
}

TEST(Safetensors, RefusesCraftedFiles) {
  auto refused = [](const std::string& bytes, const std::string& needle) {
    try {
      parse_safetensors(bytes, "crafted.safetensors");
      ADD_FAILURE() << "accepted: " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("crafted.safetensors"), std::string::npos);
    }
  };
  const std::string ok = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  EXPECT_NO_THROW(parse_safetensors(crafted(ok, 8), "ok"));
  refused("abc", "too short");
  refused(crafted(ok, 8).substr(0, 20), "exceeds the file");
  refused(crafted(ok, 4), "outside");                                                        // truncated data
  refused(crafted(ok, 12), "after the last tensor");                                         // trailing bytes
  refused(crafted(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8), "expected");  // size vs shape
  refused(crafted(R"({"a":{"dtype":"Q7","shape":[2],"data_offsets":[0,8]}})", 8), "unknown dtype");
  refused(crafted(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12), "overlap");
  refused(crafted(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", 16), "gap");
  refused(crafted(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}, "a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8), "twice");
  refused(crafted(R"({"a":{"dtype":"F32","shape":[99999999999,99999999999],"data_offsets":[0,8]}})", 8), "too large");
  refused(crafted(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})", 8), "bad safetensors header");
  refused(crafted(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8), "non-negative");
}

}  // namespace
}  // namespace chart
