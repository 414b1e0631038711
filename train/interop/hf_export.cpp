#include "train/interop/hf_export.h"

#include <yaml-cpp/yaml.h>

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
#include "train/interop/load_pretrained.h"

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

std::string json_list(const std::vector<std::string>& items) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + json_string(items[i]);
  return out + "]";
}

// The vocab.tsv whose SHA-256 is the checkpoint's vocabulary hash.
fs::path find_vocab(const Pretrained& p, const HfExportOptions& o) {
  std::vector<fs::path> candidates;
  if (!o.vocab.empty()) candidates.push_back(o.vocab);
  candidates.push_back(p.dir / "vocab.tsv");
  if (!p.config.data.dir.empty()) candidates.push_back(fs::path(p.config.data.dir) / "vocab.tsv");
  try {  // the model card records the dataset's absolute path
    YAML::Node card = YAML::Load(read_model_card_json(p.dir));
    if (card["training_data"] && card["training_data"]["dataset_dir"].IsScalar())
      candidates.push_back(fs::path(card["training_data"]["dataset_dir"].Scalar()) / "vocab.tsv");
  } catch (const std::exception&) {
  }
  for (const auto& c : candidates) {
    if (!fs::is_regular_file(c)) {
      if (!o.vocab.empty() && c == fs::path(o.vocab)) fail("--vocab {} does not exist", o.vocab);
      continue;
    }
    if (p.vocab_hash.empty() || sha256_file(c) == p.vocab_hash) return c;
    if (!o.vocab.empty() && c == fs::path(o.vocab))
      throw Error(fmt::format("--vocab {} is not the vocabulary checkpoint {} was trained with (hash {} != {})", o.vocab,
                              p.dir.string(), sha256_file(c).substr(0, 12), p.vocab_hash.substr(0, 12)),
                  "pass the vocab.tsv of the dataset the model was trained on");
    warn("export: {} is another vocabulary than the checkpoint's; not used", c.string());
  }
  throw Error(fmt::format("found no vocab.tsv for checkpoint {} (looked beside it and in its dataset {})",
                          p.dir.string(), p.config.data.dir),
              "pass --vocab DATASET/vocab.tsv (the token dataset the model was trained on)");
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
  const fs::path vocab = find_vocab(p, o);
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
  std::string vocab_json = "{";
  for (uint32_t id = 0; id < v.size(); ++id)
    vocab_json += fmt::format("{}\n  {}: {}", id ? "," : "", json_string(v.token(id)), id);
  write_file_atomic(stage.path() / "vocab.json", vocab_json + "\n}\n");

  const int64_t head_dim = m.d_model / m.n_heads;
  const std::string theta = json_number(m.rope_theta);
  std::string cfg = "{\n  \"architectures\": [\"LlamaForCausalLM\"],\n  \"model_type\": \"llama\",\n";
  cfg += fmt::format(
      "  \"vocab_size\": {},\n  \"hidden_size\": {},\n  \"intermediate_size\": {},\n  \"num_hidden_layers\": {},\n"
      "  \"num_attention_heads\": {},\n  \"num_key_value_heads\": {},\n  \"head_dim\": {},\n"
      "  \"hidden_act\": \"silu\",\n  \"max_position_embeddings\": {},\n  \"rms_norm_eps\": {},\n"
      "  \"rope_theta\": {},\n  \"rope_scaling\": null,\n"
      "  \"rope_parameters\": {{\"rope_type\": \"default\", \"rope_theta\": {}}},\n"
      "  \"tie_word_embeddings\": {},\n  \"attention_bias\": false,\n  \"attention_dropout\": 0.0,\n"
      "  \"mlp_bias\": false,\n  \"pretraining_tp\": 1,\n  \"initializer_range\": 0.02,\n  \"use_cache\": true,\n"
      "  \"pad_token_id\": {},\n  \"bos_token_id\": {},\n  \"eos_token_id\": null,\n"
      "  \"torch_dtype\": {},\n  \"dtype\": {},\n",
      p.vocab_size, m.d_model, resolved_d_ff(m), m.n_layers, m.n_heads, resolved_kv_heads(m), head_dim,
      m.context, json_number(m.norm_eps), theta, theta, m.tie_embeddings ? "true" : "false", data::Vocab::kPad,
      data::Vocab::kBos, json_string(torch_dtype), json_string(torch_dtype));
  const std::string chart_block = fmt::format(
      "{{\"format\": \"chart-hf-export\", \"version\": 1, \"source_checkpoint\": {}, \"step\": {}, "
      "\"vocab_hash\": {}, \"vocab_file\": \"vocab.tsv\", \"unk_token_id\": {}, \"lossless\": {}, \"dropped\": {}, "
      "\"dropped_tensors_file\": {}, \"config_file\": \"chart_config.yaml\", \"config\": {}}}",
      json_string(fs::weakly_canonical(fs::absolute(p.dir)).string()), p.step, json_string(p.vocab_hash),
      data::Vocab::kUnk, features.empty() ? "true" : "false", json_list(features),
      extra.empty() ? "null" : "\"chart_extra.safetensors\"", yaml_text_to_json(config_yaml, "config"));
  cfg += "  \"chart\": " + chart_block + "\n}\n";
  write_file_atomic(stage.path() / "config.json", yaml_text_to_json(cfg, "config.json") + "\n");

  // The model card travels with the weights, with what the export did.
  std::string card;
  try {
    card = read_model_card_json(p.dir);
  } catch (const Error&) {
    card = "{\"format\": \"chart-model-card\", \"version\": 1, \"kind\": \"exported\", "
           "\"note\": \"the source checkpoint has no model card (written before chart recorded one)\"}";
  }
  const CodeVersion code = code_version();
  card = with_model_card_section(
      card, "export",
      fmt::format("{{\"format\": \"hf\", \"architecture\": \"LlamaForCausalLM\", \"source_checkpoint\": {}, "
                  "\"lossless\": {}, \"dropped\": {}, \"exported_by\": {{\"chart_version\": {}, \"git_commit\": {}, "
                  "\"git_dirty\": {}}}}}",
                  json_string(fs::weakly_canonical(fs::absolute(p.dir)).string()), features.empty() ? "true" : "false",
                  json_list(features), json_string(code.version), json_string(code.commit),
                  code.dirty == "unknown" ? "null" : code.dirty));
  write_model_card_json(stage.path(), card);

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
