// `chart export --format hf`, its import through init.checkpoint, and the model card.
//   ExportEndToEnd: a tiny trained model (time_encoding none) exported, loaded by Hugging Face
//     transformers (installed from scripts/requirements.txt) whose logits must match chart's to
//     1e-4 in fp32; reference_model.py's lossless path likewise; export -> import gives
//     identical weights and logits; `chart train` and `chart finetune` start from the export,
//     and the model card travels through finetune and eval.
//   Export.*: refusal of time features, the lossy opt-in (lossless for chart itself), tampered or
//     foreign directories. ModelCard.*: the card in every checkpoint and its API.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>
#include <sstream>
#include <string>

#include "core/config.h"
#include "core/error.h"
#include "core/files.h"
#include "core/json.h"
#include "core/sha256.h"
#include "data/loader.h"
#include "data/token_dataset.h"
#include "data/vocab.h"
#include "model/safetensors.h"
#include "model/transformer.h"
#include "tests/test_util.h"
#include "train/checkpoint/checkpoint.h"
#include "train/interop/hf_export.h"
#include "train/interop/hf_names.h"
#include "train/checkpoint/model_card.h"
#include "train/pretrain/optimizer.h"
#include "train/interop/load_pretrained.h"

namespace chart {
namespace {
using testing::run_chart;
using testing::TempDir;
namespace fs = std::filesystem;

using testing::contains;

// A checkpoint written in-process: random weights (norms perturbed too, so a mix-up shows), a
// 40-token vocabulary in dir/data/vocab.tsv.
fs::path make_checkpoint(const TempDir& dir, const ModelConfig& mc) {
  std::vector<data::Vocab::CodeEntry> codes;
  for (int i = 0; i < 32; ++i) codes.push_back({"DX//" + std::to_string(i), 50, {}});
  data::Vocab vocab({"5m", "1h"}, 3, codes);
  fs::create_directories(dir / "data");
  const std::string tsv = vocab.to_tsv();
  write_file_atomic(dir / "data" / "vocab.tsv", tsv);
  Config cfg = load_config("", {});
  cfg.model = mc;
  cfg.data.dir = (dir / "data").string();
  cfg.run.dir = (dir / "run").string();
  torch::manual_seed(7);
  ClinicalTransformer model(mc, static_cast<int64_t>(vocab.size()));
  {
    torch::NoGradGuard no_grad;
    for (auto& p : model->parameters()) p.add_(torch::randn_like(p) * 0.05);
  }
  auto opt = make_optimizer(model, cfg.train);
  TrainerState st;
  st.step = 3;
  st.tokens_seen = 123;
  st.vocab_hash = sha256_hex(tsv);
  return save_checkpoint(dir / "run", config_to_yaml(cfg), model, *opt, st, 2);
}

// Two packed rows: patients of 5 and 7 tokens, then one of 9 and padding.
struct Inputs {
  torch::Tensor tokens, ages, segments;
};
Inputs packed_inputs(int64_t vocab) {
  Inputs in;
  in.tokens = torch::randint(3, vocab, {2, 12}, torch::kInt64);
  in.ages = torch::linspace(30.0, 31.0, 24).view({2, 12}).to(torch::kFloat32);
  in.segments = torch::tensor({0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, -1, -1, -1},
                              torch::kInt32).view({2, 12});
  return in;
}

torch::Tensor logits_of(const Pretrained& p, const Inputs& in) {
  ClinicalTransformer model(p.config.model, p.vocab_size);
  copy_pretrained_weights(p, *model);
  model->eval();
  torch::NoGradGuard no_grad;
  return model->forward(in.tokens, in.ages, in.segments).logits;
}

void expect_same_weights(const Pretrained& a, const Pretrained& b) {
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (const auto& [name, t] : a.tensors) {
    ASSERT_TRUE(b.tensors.count(name)) << name;
    EXPECT_TRUE(torch::equal(t, b.tensors.at(name))) << name;
  }
  EXPECT_EQ(a.vocab_hash, b.vocab_hash);
  EXPECT_EQ(a.vocab_size, b.vocab_size);
  EXPECT_EQ(a.step, b.step);
  EXPECT_EQ(config_to_yaml(a.config), config_to_yaml(b.config));
}

using testing::run_python;

ModelConfig small_model() {
  ModelConfig m;
  m.d_model = 32;
  m.n_layers = 2;
  m.n_heads = 4;
  m.n_kv_heads = 2;
  m.context = 16;
  m.time_encoding = "none";
  return m;
}

TEST(ExportNames, MappingIsABijectionOnEveryExportedTensor) {
  ModelConfig m = small_model();
  m.time_encoding = "sinusoidal";
  m.time_bias = m.time_head = true;
  m.tie_embeddings = false;
  ClinicalTransformer model(m, 40);
  int time_tensors = 0;
  for (const auto& p : model->named_parameters()) {
    auto hf = hf_tensor_name(p.key());
    ASSERT_TRUE(hf.has_value()) << p.key();
    if (hf->empty()) {
      ++time_tensors;
      continue;
    }
    EXPECT_EQ(chart_tensor_name(*hf).value_or("?"), p.key()) << *hf;
  }
  EXPECT_EQ(time_tensors, 1 + 2 + 2);  // age_proj, a time_slopes per layer, time_head weight and bias
  EXPECT_EQ(hf_tensor_name("layers.0.attn.wq.weight").value_or(""), "model.layers.0.self_attn.q_proj.weight");
  EXPECT_FALSE(hf_tensor_name("head.weight").has_value());
  EXPECT_FALSE(hf_tensor_name("layers.0.attn.wq.lora_a").has_value());
  EXPECT_FALSE(chart_tensor_name("model.layers.x.mlp.up_proj.weight").has_value());
  EXPECT_FALSE(chart_tensor_name("model.rotary_emb.inv_freq").has_value());
}

TEST(Export, TimeFeaturesAreRefusedOrDroppedOnRequestAndChartStillImportsLosslessly) {
  TempDir dir;
  ModelConfig m = small_model();
  m.time_encoding = "sinusoidal";
  m.time_bias = m.time_head = true;
  m.tie_embeddings = false;
  const fs::path ckpt = make_checkpoint(dir, m);
  std::string out;
  const std::string base = "export --checkpoint " + ckpt.string() + " --out " + (dir / "hf").string();
  ASSERT_EQ(run_chart(base, &out), 1) << out;
  for (const char* word : {"model.time_encoding=sinusoidal", "model.time_bias", "model.time_head", "--drop-time-features",
                           "reference_model.py"})
    EXPECT_TRUE(contains(out, word)) << word << " in: " << out;
  EXPECT_FALSE(fs::exists(dir / "hf"));

  ASSERT_EQ(run_chart(base + " --drop-time-features", &out), 0) << out;
  const std::string config = read_file(dir / "hf" / "config.json");
  EXPECT_TRUE(contains(config, "\"lossless\": false")) << config;
  EXPECT_TRUE(contains(config, "time-decay attention bias")) << config;
  EXPECT_TRUE(fs::exists(dir / "hf" / "chart_extra.safetensors"));
  const std::string card = read_file(dir / "hf" / "model_card.json");
  EXPECT_TRUE(contains(card, "\"export\"") && contains(card, "\"lossless\": false")) << card;
  EXPECT_NO_THROW(verify_sha256sums(dir / "hf", {"model.safetensors", "config.json", "vocab.tsv"}));

  // chart reads its lossy-for-Llama export back whole: the same tensors, the same logits.
  Pretrained a = load_pretrained(ckpt.string()), b = load_pretrained((dir / "hf").string());
  expect_same_weights(a, b);
  Inputs in = packed_inputs(a.vocab_size);
  EXPECT_TRUE(torch::equal(logits_of(a, in), logits_of(b, in)));

  // The lossless path from Python: reference_model.py reads the export (with the dropped
  // tensors) and the checkpoint into identical models.
  if (!std::string(CHART_PYTHON_EXE).empty()) {
    const std::string script =
        "import sys; sys.path.insert(0, sys.argv[1]); import reference_model as r; "
        "a, _ = r.load_checkpoint(sys.argv[2]); b, _ = r.load_checkpoint(sys.argv[3]); "
        "sa, sb = a.state_dict(), b.state_dict(); "
        "assert sorted(sa) == sorted(sb) and all(sa[k].equal(sb[k]) for k in sa), 'differ'; "
        "assert a.age_proj is not None and a.time_head is not None; print('same', len(sa))";
    out.clear();
    EXPECT_EQ(run_python("-c \"" + script + "\" " + (testing::source_dir() / "scripts").string() + " " +
                             ckpt.string() + " " + (dir / "hf").string(),
                         &out),
              0)
        << out;
  }

  // A save_pretrained copy (transformers keeps config.json's chart key, not chart_extra) comes
  // back into chart as the Llama transformers computes: the time features off, the same logits
  // as the checkpoint without them.
  if (!std::string(CHART_PYTHON_EXE).empty()) {
    const std::string resave =
        "import sys, torch; from transformers import AutoModelForCausalLM as M; "
        "M.from_pretrained(sys.argv[1], dtype=torch.float32).save_pretrained(sys.argv[2]); print('saved')";
    out.clear();
    ASSERT_EQ(run_python("-c \"" + resave + "\" " + (dir / "hf").string() + " " + (dir / "resaved").string(), &out), 0)
        << out;
    ASSERT_FALSE(fs::exists(dir / "resaved" / "chart_extra.safetensors"));
    Pretrained c = load_pretrained((dir / "resaved").string());
    EXPECT_EQ(c.config.model.time_encoding, "none");
    EXPECT_FALSE(c.config.model.time_bias || c.config.model.time_head);
    Pretrained llama = load_pretrained(ckpt.string());
    llama.config.model = c.config.model;
    for (auto it = llama.tensors.begin(); it != llama.tensors.end();)
      it = is_time_tensor(it->first) ? llama.tensors.erase(it) : std::next(it);
    expect_same_weights(llama, c);
    EXPECT_TRUE(torch::allclose(logits_of(llama, in), logits_of(c, in)));
  }

  EXPECT_EQ(run_chart(base + " --drop-time-features", &out), 1);
  EXPECT_TRUE(contains(out, "already exists")) << out;
  EXPECT_EQ(run_chart(base + " --drop-time-features --overwrite", &out), 0) << out;
}

TEST(Export, RefusesTamperedForeignOrUnexpectedDirectories) {
  TempDir dir;
  const fs::path ckpt = make_checkpoint(dir, small_model());
  const fs::path hf = dir / "hf";
  HfExportResult r = export_hf(ckpt.string(), hf, {});
  EXPECT_TRUE(r.dropped.empty());
  EXPECT_FALSE(fs::exists(hf / "chart_extra.safetensors"));
  EXPECT_FALSE(load_safetensors(hf / "model.safetensors").tensors.count("lm_head.weight"));  // tied

  auto expect_error = [](const fs::path& p, const std::string& part) {
    try {
      load_pretrained(p.string());
      ADD_FAILURE() << p << " loaded";
    } catch (const Error& e) {
      EXPECT_TRUE(contains(e.what(), part)) << e.what();
    }
  };
  // A weights file changed after export: the checksums catch it.
  const std::string weights = read_file(hf / "model.safetensors");
  write_file_atomic(hf / "model.safetensors", weights + "x");
  expect_error(hf, "does not match its checksum");
  // Without SHA256SUMS (saved from Python), the parser still refuses the trailing byte...
  fs::remove(hf / "SHA256SUMS");
  expect_error(hf, "after the last tensor");
  // ...and a tensor no chart model has.
  Safetensors st = load_safetensors(ckpt / "model.safetensors");
  NamedTensors renamed;
  for (const auto& [name, t] : st.tensors) renamed.emplace_back(*hf_tensor_name(name), t);
  renamed.emplace_back("model.layers.0.self_attn.q_proj.lora_A.weight", torch::zeros({2, 2}));
  save_safetensors(hf / "model.safetensors", renamed);
  expect_error(hf, "unexpected tensor 'model.layers.0.self_attn.q_proj.lora_A.weight'");
  // A Hugging Face model chart did not write.
  fs::create_directories(dir / "foreign");
  write_file_atomic(dir / "foreign" / "config.json", "{\"model_type\": \"llama\", \"hidden_size\": 32}\n");
  expect_error(dir / "foreign", "chart did not export");
  // A config.json whose Llama fields disagree with chart's config.
  renamed.pop_back();
  save_safetensors(hf / "model.safetensors", renamed);
  std::string config = read_file(hf / "config.json");
  ASSERT_NE(config.find("\"hidden_size\": 32"), std::string::npos);
  config.replace(config.find("\"hidden_size\": 32"), 17, "\"hidden_size\": 64");
  write_file_atomic(hf / "config.json", config);
  expect_error(hf, "hidden_size is 64 but chart's config says 32");
}

TEST(ModelCard, EveryCheckpointCarriesOneListedInItsChecksums) {
  TempDir dir;
  const fs::path ckpt = make_checkpoint(dir, small_model());
  const std::string sums = read_file(ckpt / "SHA256SUMS");
  EXPECT_TRUE(contains(sums, "  model_card.json\n") && contains(sums, "  MODEL_CARD.md\n")) << sums;
  Json card = parse_json(read_model_card_json(ckpt), "model card");
  EXPECT_EQ(card["format"].get<std::string>(), "chart-model-card");
  EXPECT_EQ(card["kind"].get<std::string>(), "pretrained");
  ClinicalTransformer probe(small_model(), 40);
  EXPECT_EQ(card["model"]["parameters"].get<int64_t>(), probe->parameter_count());
  EXPECT_EQ(card["model"]["config"]["d_model"].get<int64_t>(), 32);
  EXPECT_EQ(card["config_sha256"].get<std::string>(), sha256_file(ckpt / "config.yaml"));
  EXPECT_EQ(card["training_data"]["vocab_hash"].get<std::string>(), sha256_file(dir / "data" / "vocab.tsv"));
  EXPECT_EQ(card["training"]["steps"].get<int64_t>(), 3);
  EXPECT_EQ(card["training"]["tokens_seen"].get<int64_t>(), 123);
  EXPECT_FALSE(card["code"]["git_commit"].get<std::string>().empty());
  const std::string md = read_file(ckpt / "MODEL_CARD.md");
  EXPECT_TRUE(contains(md, "# Model card") && contains(md, "privacy threshold")) << md;

  // Checkpoints listing fewer files (before model cards) verify; one that drops a required file does not.
  std::string old_sums, line;
  std::istringstream in(sums);
  while (std::getline(in, line))
    if (!contains(line, "model_card.json") && !contains(line, "MODEL_CARD.md")) old_sums += line + "\n";
  write_file_atomic(ckpt / "SHA256SUMS", old_sums);
  EXPECT_NO_THROW(verify_checkpoint(ckpt));
  std::string no_weights;
  std::istringstream in2(old_sums);
  while (std::getline(in2, line))
    if (!contains(line, "  model.safetensors")) no_weights += line + "\n";
  write_file_atomic(ckpt / "SHA256SUMS", no_weights);
  EXPECT_THROW(verify_checkpoint(ckpt), Error);
}

TEST(ModelCard, SectionsAreAddedReplacedAndRendered) {
  ModelCard c;
  c.kind = "finetuned";
  c.architecture = "decoder-only transformer";
  c.parameters = 1234567;
  c.data.dataset_dir = "/data/tok";
  c.data.subjects = 300;
  c.data.tokens = 45678;
  c.data.privacy_k = 10;
  c.set_metric("train_loss", 2.5);
  c.set_metric("train_loss", 2.25);
  c.set_section("task", R"({"name": "mortality", "labels": "/labels"})");
  c.set_section("task", R"({"name": "readmission"})");
  std::string json = model_card_json(c);
  json = with_model_card_section(json, "evaluation", R"({"auroc": 0.81, "n": 60})");
  json = with_model_card_section(json, "evaluation", R"({"auroc": 0.83, "n": 60})");
  Json n = parse_json(json, "model card");
  EXPECT_EQ(n["task"]["name"].get<std::string>(), "readmission");
  EXPECT_DOUBLE_EQ(n["evaluation"]["auroc"].get<double>(), 0.83);
  EXPECT_DOUBLE_EQ(n["metrics"]["train_loss"].get<double>(), 2.25);
  EXPECT_EQ(n["training_data"]["privacy_min_subjects"].get<int64_t>(), 10);
  EXPECT_TRUE(n["training_data"]["manifest_sha256"].is_null());
  const std::string md = model_card_markdown(json);
  for (const char* part : {"finetuned", "1,234,567", "300 subjects, 45,678 tokens", "k = 10", "## task", "## evaluation",
                           "train_loss 2.25"})
    EXPECT_TRUE(contains(md, part)) << part << " in:\n" << md;
  TempDir dir;
  write_model_card_json(dir.path(), json);
  EXPECT_EQ(parse_json(read_model_card_json(dir.path()), "model card")["evaluation"]["n"].get<int>(), 60);
  EXPECT_THROW(with_model_card_section(json, "bad", "{not json"), Error);
  c.set_section("bad", "[1, 2");
  EXPECT_THROW(model_card_json(c), Error);
  EXPECT_THROW(read_model_card_json(dir / "nothing"), Error);
}

// The end-to-end path a researcher takes: synth -> prepare -> train (time_encoding none) ->
// export -> transformers in Python; then back: export -> chart.
TEST(ExportEndToEnd, TransformersLogitsMatchChartAndTheExportRoundTrips) {
  if (std::string(CHART_PYTHON_EXE).empty()) GTEST_SKIP() << "no CHART_PYTHON configured";
  TempDir dir;
  std::string out;
  ASSERT_EQ(run_chart("synth --out " + (dir / "meds").string() + " --subjects 300 --seed 3", &out), 0) << out;
  ASSERT_EQ(run_chart("prepare --meds " + (dir / "meds").string() + " --out " + (dir / "tok").string(), &out), 0) << out;
  const std::string train = "train " + (testing::source_dir() / "configs/tiny.yaml").string() +
                            " --set data.dir=" + (dir / "tok").string() +
                            " --set model.time_encoding=none --set train.threads=2 --set train.eval_batches=1 ";
  ASSERT_EQ(run_chart(train + "--set run.dir=" + (dir / "run").string() + " --set train.steps=3", &out), 0) << out;
  const fs::path ckpt = dir / "run" / "checkpoints" / "step_3";

  // The card records the data lineage of this run.
  Json card = parse_json(read_model_card_json(ckpt), "model card");
  EXPECT_EQ(card["training_data"]["manifest_sha256"].get<std::string>(), sha256_file(dir / "tok" / "manifest.json"));
  EXPECT_GT(card["training_data"]["subjects"].get<int64_t>(), 100);
  EXPECT_GT(card["training_data"]["tokens"].get<int64_t>(), 1000);
  EXPECT_EQ(card["training_data"]["privacy_min_subjects"].get<int64_t>(), 10);
  EXPECT_TRUE(card["metrics"]["train_loss"].is_number());

  ASSERT_EQ(run_chart("export --checkpoint " + (dir / "run").string() + " --out " + (dir / "hf").string(), &out), 0)
      << out;

  // chart's forward on real patients, one per row from position 0, padded at the end.
  Pretrained p = load_pretrained(ckpt.string());
  auto ds = data::TokenDataset::open(dir / "tok");
  data::LoaderOptions lo;
  lo.context = 64;
  lo.batch_size = 4;
  lo.packing = false;
  lo.shuffle = false;
  lo.prefetch = 0;
  data::Batch b = data::Loader(ds, "tuning", lo).next();
  for (int64_t r = 1; r < 4; ++r) {  // shorter patients: rows 1..3 end early, padded on the right
    using torch::indexing::Slice;
    b.tokens.index_put_({r, Slice(64 - 12 * r, torch::indexing::None)}, 0);
    b.segments.index_put_({r, Slice(64 - 12 * r, torch::indexing::None)}, -1);
  }
  Inputs in{b.tokens, b.ages, b.segments};
  torch::Tensor logits = logits_of(p, in);
  save_safetensors(dir / "batch.safetensors", {{"tokens", b.tokens}, {"mask", b.segments.ge(0).to(torch::kInt64)},
                                               {"ages", b.ages}, {"segments", b.segments}, {"logits", logits}});
  const int rc = run_python((testing::source_dir() / "scripts" / "check_hf_export.py").string() + " " +
                                (dir / "hf").string() + " " + (dir / "batch.safetensors").string() +
                                " --checkpoint " + ckpt.string() + " --resave " + (dir / "resaved").string(),
                            &out);
  EXPECT_EQ(rc, 0) << out;
  std::printf("%s", out.c_str());  // the measured differences, for the log

  // Import: identical weights and logits.
  Pretrained back = load_pretrained((dir / "hf").string());
  expect_same_weights(p, back);
  EXPECT_TRUE(torch::equal(logits, logits_of(back, in)));

  // A directory transformers wrote (save_pretrained: its own safetensors writer, no SHA256SUMS,
  // no chart_config.yaml; config.json keeps the "chart" key) comes back identical too.
  if (rc == 0) {
    ASSERT_FALSE(fs::exists(dir / "resaved" / "chart_config.yaml"));
    expect_same_weights(p, load_pretrained((dir / "resaved").string()));
    // Saved in shards with an index (as transformers saves a large model): the same weights.
    ASSERT_TRUE(fs::exists(dir / "resaved-sharded" / "model.safetensors.index.json"));
    ASSERT_FALSE(fs::exists(dir / "resaved-sharded" / "model.safetensors"));
    expect_same_weights(p, load_pretrained((dir / "resaved-sharded").string()));
  }

  // `chart train` starts from the export (continued pretraining); at learning rate 0 its first
  // checkpoint holds exactly the exported weights, and its card names where it started.
  ASSERT_EQ(run_chart(train + "--set run.dir=" + (dir / "run2").string() + " --set init.checkpoint=" +
                          (dir / "hf").string() +
                          " --set train.steps=1 --set train.lr=0 --set train.min_lr=0 --set train.warmup_steps=0",
                      &out),
            0)
      << out;
  Pretrained again = load_pretrained((dir / "run2").string());
  for (const auto& [name, t] : p.tensors) EXPECT_TRUE(torch::equal(t, again.tensors.at(name))) << name;
  EXPECT_TRUE(contains(read_file(dir / "run2" / "checkpoints" / "step_1" / "model_card.json"), "\"init\"")) << out;

  // `chart finetune` starts from the export as well. Its card holds the task and, as its base, the
  // export's card (with the export section); `chart eval` carries the card on with its evaluation.
  ASSERT_EQ(run_python((testing::source_dir() / "tests" / "finetune_fixture.py").string() + " labels " +
                           (dir / "meds").string() + " " + (dir / "labels").string(),
                       &out),
            0)
      << out;
  ASSERT_EQ(run_chart("finetune " + (testing::source_dir() / "configs/finetune/full.yaml").string() +
                          " --set init.checkpoint=" + (dir / "hf").string() + " --set task.labels=" +
                          (dir / "labels").string() + " --set data.dir=" + (dir / "tok").string() + " --set run.dir=" +
                          (dir / "ft").string() + " --set train.steps=2 --set train.eval_every=0 --set train.threads=2",
                      &out),
            0)
      << out;
  Json ft = parse_json(read_model_card_json(load_pretrained((dir / "ft").string()).dir), "model card");
  EXPECT_EQ(ft["kind"].get<std::string>(), "finetuned");
  EXPECT_EQ(ft["task"]["recipe"].get<std::string>(), "full");
  EXPECT_EQ(ft["base_model"]["export"]["architecture"].get<std::string>(), "LlamaForCausalLM");
  EXPECT_EQ(ft["training_data"]["manifest_sha256"].get<std::string>(), sha256_file(dir / "tok" / "manifest.json"));
  ASSERT_EQ(run_chart("eval " + (testing::source_dir() / "configs/finetune/full.yaml").string() +
                          " --set init.checkpoint=" + (dir / "ft").string() + " --set task.labels=" +
                          (dir / "labels").string() + " --set data.dir=" + (dir / "tok").string() + " --set run.dir=" +
                          (dir / "ev").string() + " --set eval.bootstrap=20",
                      &out),
            0)
      << out;
  Json ev = parse_json(read_model_card_json(dir / "ev"), "model card");
  EXPECT_EQ(ev["kind"].get<std::string>(), "finetuned");
  EXPECT_GT(ev["evaluation"]["n"].get<int64_t>(), 0);
  EXPECT_EQ(ev["evaluation"]["split"].get<std::string>(), "held_out");
  EXPECT_TRUE(contains(read_file(dir / "ev" / "MODEL_CARD.md"), "## evaluation"));
}

}  // namespace
}  // namespace chart
