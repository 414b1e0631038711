// Loading is safe: crafted safetensors files (truncated, lying headers, wrong dtype sizes,
// overlapping or out-of-range offsets, unexpected tensors) and damaged checkpoints are refused
// with a chart::Error that names the file, never a crash or another exception type. The same
// parser is fuzzed for minutes by scripts/fuzz_safetensors.sh; these are the cases a reader
// should see spelled out, plus a few thousand seeded mutations that run in CI.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <random>
#include <string>

#include "core/error.h"
#include "core/files.h"
#include "core/json.h"
#include "core/sha256.h"
#include "data/vocab.h"
#include "model/safetensors.h"
#include "model/safetensors_layout.h"
#include "model/transformer.h"
#include "tests/test_util.h"
#include "train/checkpoint/checkpoint.h"
#include "train/checkpoint/model_weights.h"
#include "train/pretrain/optimizer.h"
#include "train/checkpoint/pretrained.h"

namespace chart {
namespace {
using testing::TempDir;
namespace fs = std::filesystem;

using testing::contains;

// [u64 length][header][data], the header given as text.
std::string craft(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + data;
}

// The message of the chart::Error parsing `bytes` throws; fails the test on success or on any
// other exception.
std::string refusal(const std::string& bytes) {
  try {
    parse_safetensors(bytes, "crafted.safetensors");
  } catch (const Error& e) {
    EXPECT_TRUE(contains(e.what(), "crafted.safetensors")) << e.what();
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not a chart::Error: " << e.what();
    return "";
  }
  ADD_FAILURE() << "accepted";
  return "";
}

std::string valid_file() {
  return safetensors_bytes({{"a", torch::arange(6, torch::kFloat32).view({2, 3})},
                            {"b", torch::tensor({1, 2}, torch::kInt64)},
                            {"c", torch::ones({3}, torch::kBFloat16)}},
                           {{"step", "3"}});
}

TEST(SafeLoading, AValidFileParses) {
  Safetensors st = parse_safetensors(valid_file(), "ok");
  ASSERT_EQ(st.tensors.size(), 3u);
  EXPECT_TRUE(torch::equal(st.tensors.at("a"), torch::arange(6, torch::kFloat32).view({2, 3})));
  EXPECT_EQ(st.metadata.at("format"), "pt");
  EXPECT_EQ(st.metadata.at("step"), "3");
  const std::string eight(8, 'x');
  EXPECT_EQ(parse_safetensors(craft(R"({"s":{"dtype":"F64","shape":[],"data_offsets":[0,8]}})", eight), "s")
                .tensors.at("s").dim(), 0);
  EXPECT_EQ(parse_safetensors(craft(R"({"z":{"dtype":"F32","shape":[0,5],"data_offsets":[0,0]}})", ""), "z")
                .tensors.at("z").numel(), 0);
}

TEST(SafeLoading, EveryTruncationIsRefused) {
  const std::string ok = valid_file();
  for (size_t n = 0; n < ok.size(); ++n) {
    const std::string msg = refusal(ok.substr(0, n));
    if (n < 8) {
      EXPECT_TRUE(contains(msg, "too short")) << n << ": " << msg;
    }
  }
}

TEST(SafeLoading, LyingHeadersAreRefusedWithTheReason) {
  const std::string d16(16, '\0');
  struct Case {
    const char* header;
    std::string data;
    const char* reason;
  };
  const Case cases[] = {
      {R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,32]}})", d16, "lie outside"},
      {R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[16,0]}})", d16, "lie outside"},
      {R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,18446744073709551615]}})", d16, "integer too large"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
       std::string(12, '\0'), "overlaps"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[12,16]}})",
       d16, "gap"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", d16, "8 bytes after the last tensor"},
      {R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}})", d16, "16 bytes for 3 elements of F32 (12 expected)"},
      {R"({"a":{"dtype":"F16","shape":[4],"data_offsets":[0,16]}})", d16, "(8 expected)"},
      {R"({"a":{"dtype":"F8_E4M3","shape":[16],"data_offsets":[0,16]}})", d16, "unknown dtype 'F8_E4M3'"},
      {R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0]}})", d16, "needs data_offsets"},
      {R"({"a":{"dtype":"F32","shape":[4611686018427387904,4611686018427387904],"data_offsets":[0,16]}})", d16,
       "too large"},
      {R"({"a":{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}})", d16, "non-negative integer"},
      {R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"a":{"dtype":"F32","shape":[0],"data_offsets":[16,16]}})",
       d16, "appears twice"},
      {R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16],"extra":1}})", d16, "unknown field 'extra'"},
      {R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]})", d16, "unexpected end"},
      {R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}} trailing)", d16, "trailing bytes"},
      {R"({"__metadata__":{"step":3},"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", d16, "expected '\"'"},
      {R"([1,2,3])", d16, "expected '{'"},
      {"{\"a\u0001\":1}", d16, "control character"},
      {R"({"a":{"dtype":"F32","shape":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1],"data_offsets":[0,4]}})",
       std::string(4, '\0'), "array too long"},
  };
  for (const auto& c : cases) {
    const std::string msg = refusal(craft(c.header, c.data));
    EXPECT_TRUE(contains(msg, c.reason)) << c.header << "\n  -> " << msg;
  }
  // A header length beyond the file, and one beyond any sane header.
  std::string big = valid_file();
  big[0] = '\xff';
  big[1] = '\xff';
  EXPECT_TRUE(contains(refusal(big), "exceeds the file"));
  std::string huge(8, '\xff');
  EXPECT_TRUE(contains(refusal(huge + "{}"), "exceeds the file"));
}

// Seeded mutations of a valid file: byte flips, inserted and deleted bytes. Each must parse or be
// refused with a chart::Error; anything else (a crash, another exception) fails.
TEST(SafeLoading, RandomMutationsParseOrAreRefused) {
  const std::string ok = valid_file();
  std::mt19937_64 rng(20261123);
  int refused = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string m = ok;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      const size_t at = rng() % m.size();
      switch (rng() % 3) {
        case 0: m[at] = static_cast<char>(rng() & 0xff); break;
        case 1: m.insert(m.begin() + at, static_cast<char>(rng() & 0xff)); break;
        default: m.erase(m.begin() + at); break;
      }
    }
    try {
      parse_safetensors(m, "mutant");
    } catch (const Error&) {
      ++refused;
    } catch (const std::exception& e) {
      FAIL() << "mutation " << i << ": not a chart::Error: " << e.what();
    }
  }
  EXPECT_GT(refused, 1500);
}

// The torch-free layout function agrees with the full parser on what it accepts.
TEST(SafeLoading, LayoutMatchesTheParser) {
  const std::string ok = valid_file();
  SafetensorsLayout l = parse_safetensors_layout(ok, "ok");
  ASSERT_EQ(l.tensors.size(), 3u);
  EXPECT_EQ(l.tensors[0].name, "a");
  EXPECT_EQ(l.tensors[0].numel, 6u);
  EXPECT_EQ(l.tensors[0].end - l.tensors[0].begin, 24u);
  EXPECT_EQ(l.data_start % 8, 0u);
  EXPECT_EQ(safetensors_dtype_size("BF16"), 2u);
  EXPECT_EQ(safetensors_dtype_size("F8_E5M2"), 0u);
}

// vocab.tsv travels with exports: a bad number in it is a chart::Error naming the line (std::stof
// and std::stoll threw std::invalid_argument / std::out_of_range before; found by fuzz_vocab).
TEST(SafeLoading, VocabularyWithBadNumbersIsRefused) {
  const std::string head = "# chart vocabulary v1\nid\ttoken\tkind\tsubjects\tcuts\n";
  const std::string specials = "0\t[PAD]\tspecial\t0\t\n1\t[BOS]\tspecial\t0\t\n2\t[UNK]\tspecial\t0\t\n";
  EXPECT_EQ(data::Vocab::parse(head + specials + "3\tLAB//x\tcode\t12\t0.5,1.5\n", "ok").size(), 4u);
  for (const std::string bad : {"3\tLAB//x\tcode\tmany\t\n", "3\tLAB//x\tcode\t12\t0.5,1e99\n",
                                "3\tLAB//x\tcode\t12\t0.5,,x\n", "3\tLAB//x\tcode\t99999999999999999999\t\n"}) {
    try {
      data::Vocab::parse(head + specials + bad, "vocab.tsv");
      ADD_FAILURE() << "accepted " << bad;
    } catch (const Error& e) {
      EXPECT_TRUE(contains(e.what(), "vocab.tsv:6")) << e.what();
    } catch (const std::exception& e) {
      ADD_FAILURE() << "not a chart::Error: " << e.what();
    }
  }
}

// A checkpoint directory with damage: checksums catch it; a lying file with matching (rewritten)
// checksums is still refused by the parser; weights with an extra, a missing or a misshapen
// tensor are refused by name.
TEST(SafeLoading, DamagedCheckpointsAndUnexpectedTensorsAreRefused) {
  TempDir dir;
  ModelConfig mc;
  mc.d_model = 16;
  mc.n_layers = 1;
  mc.n_heads = 2;
  mc.context = 8;
  Config cfg = load_config("", {});
  cfg.model = mc;
  ClinicalTransformer model(mc, 20);
  auto opt = make_optimizer(model, cfg.train);
  TrainerState st;
  st.step = 1;
  const fs::path ckpt = save_checkpoint(dir / "run", config_to_yaml(cfg), model, *opt, st, 1);
  const std::string weights = read_file(ckpt / "model.safetensors");

  auto rewrite_sums = [&] {
    std::string sums;
    for (const auto& e : fs::directory_iterator(ckpt))
      if (e.path().filename() != "SHA256SUMS")
        sums += sha256_file(e.path()) + "  " + e.path().filename().string() + "\n";
    write_file_atomic(ckpt / "SHA256SUMS", sums);
  };
  auto refused = [&](const std::string& part) {
    try {
      ClinicalTransformer fresh(mc, 20);
      verify_checkpoint(ckpt);
      load_checkpoint(ckpt, fresh, nullptr);
      ADD_FAILURE() << "loaded";
    } catch (const Error& e) {
      EXPECT_TRUE(contains(e.what(), part)) << e.what();
    } catch (const std::exception& e) {
      ADD_FAILURE() << "not a chart::Error: " << e.what();
    }
  };
  write_file_atomic(ckpt / "model.safetensors", weights.substr(0, weights.size() / 2));
  refused("model.safetensors does not match its checksum");
  rewrite_sums();  // the lie now passes the checksums; the parser still catches it
  refused("model.safetensors");

  Safetensors st_ok = parse_safetensors(weights, "w");
  NamedTensors extra, missing, misshapen;
  for (const auto& [name, t] : st_ok.tensors) {
    extra.emplace_back(name, t);
    if (name != "norm.weight") missing.emplace_back(name, t);
    misshapen.emplace_back(name, name == "norm.weight" ? torch::ones({17}) : t);
  }
  extra.emplace_back("head.weight", torch::zeros({2, 16}));
  save_safetensors(ckpt / "model.safetensors", extra);
  rewrite_sums();
  refused("unexpected tensor 'head.weight'");
  save_safetensors(ckpt / "model.safetensors", missing);
  rewrite_sums();
  refused("no tensor 'norm.weight'");
  save_safetensors(ckpt / "model.safetensors", misshapen);
  rewrite_sums();
  refused("'norm.weight' has shape 17");

  write_file_atomic(ckpt / "model.safetensors", weights);
  write_file_atomic(ckpt / "trainer_state.yaml", "step: [unclosed\n");
  rewrite_sums();
  refused("trainer_state.yaml");

  // The command line reports a damaged checkpoint and exits 1, whatever the command.
  std::string out;
  const std::string export_cmd = "export --checkpoint " + ckpt.string() + " --out " + (dir / "hf").string();
  EXPECT_EQ(testing::run_chart(export_cmd, &out), 1) << out;
  EXPECT_TRUE(contains(out, "trainer_state.yaml")) << out;
  write_file_atomic(ckpt / "trainer_state.yaml", "step: 1\n");
  write_file_atomic(ckpt / "model.safetensors", weights.substr(0, 100));
  rewrite_sums();
  EXPECT_EQ(testing::run_chart(export_cmd, &out), 1) << out;
  EXPECT_TRUE(contains(out, "model.safetensors")) << out;
  EXPECT_FALSE(fs::exists(dir / "hf"));
}

// Weights split across ranks' files: contiguous parts of about equal bytes, and an index that
// is checked before any file it names is trusted.
TEST(SafeLoading, SplitWeightsAreBalancedAndTheirIndexIsChecked) {
  NamedTensors w;
  for (int i = 0; i < 10; ++i) w.emplace_back("t" + std::to_string(i), torch::ones({i == 3 ? 40 : 10}));
  for (int parts : {1, 2, 3, 4, 10, 20}) {
    const auto split = split_weights(w, parts);
    ASSERT_EQ(split.size(), static_cast<size_t>(std::min(parts, 10))) << parts;
    std::vector<std::string> order;
    for (const auto& part : split) {
      EXPECT_FALSE(part.empty()) << parts;
      for (const auto& [name, t] : part) order.push_back(name);
    }
    std::vector<std::string> want;
    for (const auto& [name, t] : w) want.push_back(name);
    EXPECT_EQ(order, want) << "parts are contiguous runs, in order";
  }
  // 130 elements in 2 parts: the first ends once half the bytes are in (t0..t3: 70).
  EXPECT_EQ(split_weights(w, 2)[0].size(), 4u);

  TempDir dir;
  const fs::path ckpt = dir.path();
  const auto parts = split_weights(w, 3);
  for (int i = 0; i < 3; ++i) save_safetensors(ckpt / weight_part_name(i, 3), parts[i]);
  write_file_atomic(ckpt / kWeightsIndex, weights_index_json(parts));
  const Json index = read_json_file(ckpt / kWeightsIndex);
  EXPECT_EQ(index["metadata"]["total_size"].get<int64_t>(), 130 * 4);
  EXPECT_EQ(index["weight_map"]["t0"].get<std::string>(), "model-00001-of-00003.safetensors");
  EXPECT_EQ(read_weights(ckpt).size(), 10u);

  auto refused = [&](const std::string& index_text, const std::string& part) {
    write_file_atomic(ckpt / kWeightsIndex, index_text);
    try {
      read_weights(ckpt);
      ADD_FAILURE() << "read with index " << index_text;
    } catch (const Error& e) {
      EXPECT_TRUE(contains(e.what(), part)) << e.what();
    }
  };
  refused("{\"weight_map\": {\"t0\": \"../model-00001-of-00003.safetensors\"}}", "not a file beside the index");
  refused("{\"weight_map\": {}}", "weight_map is empty");
  refused("{\"weight_map\": [1]}", "no \"weight_map\" object");
  refused("{\"weight_map\": {\"t0\": \"gone.safetensors\"}}", "gone.safetensors, which is missing");
  // The index gives t0 to the first file, which holds other tensors the index does not mention.
  refused("{\"weight_map\": {\"t0\": \"model-00001-of-00003.safetensors\"}}", "which model.safetensors.index.json gives to no file");
  Json moved = index;
  moved["weight_map"]["t9"] = "model-00001-of-00003.safetensors";  // t9 is in the third file
  refused(dump_json(moved), "holds tensor 't9'");
  refused("{\"weight_map\": ", "model.safetensors.index.json");
}

}  // namespace
}  // namespace chart
