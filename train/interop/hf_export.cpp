#include "train/interop/hf_export.h"

#include <algorithm>

#include "core/error.h"
#include "core/files.h"
#include "core/json.h"
#include "core/log.h"
#include "core/sha256.h"
#include "data/vocab.h"
#include "model/layers.h"
#include "model/safetensors.h"
#include "train/checkpoint/model_card.h"
#include "train/interop/hf_names.h"
#include "train/interop/hf_tokenizer.h"
#include "train/interop/load_pretrained.h"
#include "train/interop/vocab_source.h"

namespace chart {
namespace fs = std::filesystem;
namespace {

std::vector<std::string> time_features(const ModelConfig& m) {
  std::vector<std::string> out;
  if (m.time_encoding != "none")
    out.push_back("model.time_encoding=" + m.time_encoding + " (the age encoding added to each embedding, age_proj)");
  if (m.time_bias) out.push_back("model.time_bias=true (the time-decay attention bias, attn.time_slopes)");
  if (m.time_head) out.push_back("model.time_head=true (the time-to-next-event head, time_head)");
  return out;
}

}  // namespace

HfExportResult export_hf(const std::string& checkpoint, const fs::path& out, const HfExportOptions& o) {
  Pretrained p = load_pretrained(checkpoint);
  const ModelConfig& m = p.config.model;
  HfExportResult result;
  result.dir = out;
  const auto features = time_features(m);
  if (!features.empty() && !o.drop_time_features)
    throw Error(fmt::format("checkpoint {} uses features a Llama model does not have: {}", p.dir.string(),
                            fmt::join(features, "; ")),
                "pass --drop-time-features for a lossy Llama without them (recorded in config.json and the model "
                "card), or load the checkpoint losslessly in Python with scripts/reference_model.py (docs/export.md)");
  result.dropped = features;

  // Weights under Llama's names; time-feature tensors kept aside for chart's own import.
  NamedTensors weights, extra;
  for (const auto& [name, t] : p.tensors) {
    auto hf = hf_tensor_name(name);
    if (!hf)
      throw Error(fmt::format("checkpoint {}: tensor '{}' has no place in a Llama model", p.dir.string(), name),
                  "export a pretrained checkpoint (classification heads and LoRA adapters are not exported); "
                  "merge adapters into the weights first");
    if (hf->empty()) extra.emplace_back(name, t);
    else weights.emplace_back(*hf, t);
  }
  if (m.tie_embeddings && p.tensors.count("lm_head.weight"))
    fail("checkpoint {}: tied embeddings but a separate lm_head.weight", p.dir.string());
  const fs::path vocab = checkpoint_vocab(p, o.vocab, "--vocab");
  const data::Vocab v = data::Vocab::load(vocab);
  // A checkpoint from before vocabulary hashes were recorded gets the hash of the file shipped.
  if (p.vocab_hash.empty()) p.vocab_hash = sha256_file(vocab);
  if (static_cast<int64_t>(v.size()) != p.vocab_size)
    fail("{} has {} tokens, the checkpoint's embedding {} rows", vocab.string(), v.size(), p.vocab_size);

  if (fs::exists(out) && !o.overwrite)
    throw Error(fmt::format("{} already exists", out.string()), "choose another --out or pass --overwrite");
  if (!out.parent_path().empty()) fs::create_directories(out.parent_path());
  StagingDir stage(out);
  const std::string dtype = c10::toString(p.tensors.at("tok_emb.weight").scalar_type());
  const std::string torch_dtype = dtype == "Float" ? "float32" : dtype == "BFloat16" ? "bfloat16"
                                  : dtype == "Half"  ? "float16" : "float32";
  save_safetensors(stage.path() / "model.safetensors", weights,
                   {{"chart_step", std::to_string(p.step)}, {"chart_vocab_hash", p.vocab_hash}});
  if (!extra.empty()) save_safetensors(stage.path() / "chart_extra.safetensors", extra);
  const std::string config_yaml = config_to_yaml(p.config);
  write_file_atomic(stage.path() / "chart_config.yaml", config_yaml);
  write_file_atomic(stage.path() / "vocab.tsv", read_file(vocab));
  Json vocab_json = Json::object();
  for (uint32_t id = 0; id < v.size(); ++id) vocab_json[v.token(id)] = id;
  write_file_atomic(stage.path() / "vocab.json", dump_json(vocab_json));
  write_hf_tokenizer(stage.path(), v, m.context);

  // config.json: LlamaConfig's fields, then chart's own under "chart".
  const int64_t head_dim = m.d_model / m.n_heads;
  const std::string source = fs::weakly_canonical(fs::absolute(p.dir)).string();
  Json cfg;
  cfg["architectures"] = Json::array({"LlamaForCausalLM"});
  cfg["model_type"] = "llama";
  cfg["vocab_size"] = p.vocab_size;
  cfg["hidden_size"] = m.d_model;
  cfg["intermediate_size"] = resolved_d_ff(m);
  cfg["num_hidden_layers"] = m.n_layers;
  cfg["num_attention_heads"] = m.n_heads;
  cfg["num_key_value_heads"] = resolved_kv_heads(m);
  cfg["head_dim"] = head_dim;
  cfg["hidden_act"] = "silu";
  cfg["max_position_embeddings"] = m.context;
  cfg["rms_norm_eps"] = m.norm_eps;
  // rope in both spellings: rope_theta + rope_scaling (transformers 4.x), rope_parameters (5.x)
  cfg["rope_theta"] = m.rope_theta;
  cfg["rope_scaling"] = nullptr;
  cfg["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", m.rope_theta}};
  cfg["tie_word_embeddings"] = m.tie_embeddings;
  cfg["attention_bias"] = false;
  cfg["attention_dropout"] = 0.0;
  cfg["mlp_bias"] = false;
  cfg["pretraining_tp"] = 1;
  cfg["initializer_range"] = 0.02;
  cfg["use_cache"] = true;
  cfg["pad_token_id"] = data::Vocab::kPad;
  cfg["bos_token_id"] = data::Vocab::kBos;
  cfg["eos_token_id"] = nullptr;
  cfg["torch_dtype"] = torch_dtype;
  cfg["dtype"] = torch_dtype;
  Json& c = cfg["chart"];
  c["format"] = "chart-hf-export";
  c["version"] = 1;
  c["source_checkpoint"] = source;
  c["step"] = p.step;
  c["vocab_hash"] = p.vocab_hash;
  c["vocab_file"] = "vocab.tsv";
  c["unk_token_id"] = data::Vocab::kUnk;
  c["lossless"] = features.empty();
  c["dropped"] = features;
  c["dropped_tensors_file"] = extra.empty() ? Json() : Json("chart_extra.safetensors");
  c["config_file"] = "chart_config.yaml";
  c["config"] = yaml_to_json(config_yaml, "config");
  write_file_atomic(stage.path() / "config.json", dump_json(cfg));

  // The model card travels with the weights, with what the export did.
  std::string card;
  try {
    card = read_model_card_json(p.dir);
  } catch (const Error&) {
    Json stub;
    stub["format"] = "chart-model-card";
    stub["version"] = 1;
    stub["kind"] = "exported";
    stub["note"] = "the source checkpoint has no model card (written before chart recorded one)";
    card = dump_json(stub);
  }
  const CodeVersion code = code_version();
  Json exported;
  exported["format"] = "hf";
  exported["architecture"] = "LlamaForCausalLM";
  exported["source_checkpoint"] = source;
  exported["lossless"] = features.empty();
  exported["dropped"] = features;
  exported["exported_by"]["chart_version"] = code.version;
  exported["exported_by"]["git_commit"] = code.commit;
  exported["exported_by"]["git_dirty"] = code.dirty == "unknown" ? Json() : Json(code.dirty == "true");
  write_model_card_json(stage.path(), with_model_card_section(card, "export", exported.dump()));

  std::string sums;
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(stage.path())) files.push_back(e.path().filename().string());
  std::sort(files.begin(), files.end());
  for (const auto& f : files) sums += sha256_file(stage.path() / f) + "  " + f + "\n";
  write_file_atomic(stage.path() / "SHA256SUMS", sums);
  stage.commit(o.overwrite);
  result.tensors = weights.size();
  return result;
}

}  // namespace chart
