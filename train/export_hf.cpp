#include "train/export_hf.h"

#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>

#include "core/error.h"
#include "core/files.h"
#include "core/json.h"
#include "core/log.h"
#include "core/sha256.h"
#include "data/vocab.h"
#include "model/layers.h"
#include "model/safetensors.h"
#include "train/checkpoint.h"
#include "train/model_card.h"

namespace chart {
namespace fs = std::filesystem;
namespace {

// Per-layer names: chart suffix -> Llama suffix (both after "layers.<i>." / "model.layers.<i>.").
const std::pair<const char*, const char*> kLayerNames[] = {
    {"attn_norm.weight", "input_layernorm.weight"},
    {"attn.wq.weight", "self_attn.q_proj.weight"},
    {"attn.wk.weight", "self_attn.k_proj.weight"},
    {"attn.wv.weight", "self_attn.v_proj.weight"},
    {"attn.wo.weight", "self_attn.o_proj.weight"},
    {"mlp_norm.weight", "post_attention_layernorm.weight"},
    {"mlp.w_gate.weight", "mlp.gate_proj.weight"},
    {"mlp.w_up.weight", "mlp.up_proj.weight"},
    {"mlp.w_down.weight", "mlp.down_proj.weight"},
};
const std::pair<const char*, const char*> kTopNames[] = {
    {"tok_emb.weight", "model.embed_tokens.weight"},
    {"norm.weight", "model.norm.weight"},
    {"lm_head.weight", "lm_head.weight"},
};

// The time features, each with what it is called in the config.
bool is_time_tensor(const std::string& name) {
  if (name == "age_proj.weight" || name == "time_head.weight" || name == "time_head.bias") return true;
  const std::string suffix = ".attn.time_slopes";
  return name.rfind("layers.", 0) == 0 && name.size() > suffix.size() &&
         name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// "layers.12.rest" -> (12, "rest") after `prefix`; nullopt when it does not have that shape.
std::optional<std::pair<std::string, std::string>> split_layer(const std::string& name, const std::string& prefix) {
  if (name.rfind(prefix, 0) != 0) return std::nullopt;
  size_t i = prefix.size(), j = i;
  while (j < name.size() && std::isdigit(static_cast<unsigned char>(name[j]))) ++j;
  if (j == i || j >= name.size() || name[j] != '.') return std::nullopt;
  return std::make_pair(name.substr(i, j - i), name.substr(j + 1));
}

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

YAML::Node load_json_file(const fs::path& f) {
  try {
    return YAML::Load(read_file(f));
  } catch (const YAML::Exception& e) {
    fail("{}: not valid JSON: {}", f.string(), e.what());
  }
}

}  // namespace

std::optional<std::string> hf_tensor_name(const std::string& name) {
  if (is_time_tensor(name)) return std::string();
  for (const auto& [c, h] : kTopNames)
    if (name == c) return std::string(h);
  if (auto l = split_layer(name, "layers."))
    for (const auto& [c, h] : kLayerNames)
      if (l->second == c) return "model.layers." + l->first + "." + h;
  return std::nullopt;
}

std::optional<std::string> chart_tensor_name(const std::string& name) {
  for (const auto& [c, h] : kTopNames)
    if (name == h) return std::string(c);
  if (auto l = split_layer(name, "model.layers."))
    for (const auto& [c, h] : kLayerNames)
      if (l->second == h) return "layers." + l->first + "." + c;
  return std::nullopt;
}

bool is_hf_export(const fs::path& dir) {
  return fs::is_directory(dir) && fs::exists(dir / "config.json") && !fs::exists(dir / "trainer_state.yaml");
}

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

Pretrained load_hf_export(const fs::path& dir) {
  const fs::path config_json = dir / "config.json";
  if (fs::exists(dir / "SHA256SUMS")) {
    try {
      verify_sha256sums(dir, {"model.safetensors", "config.json"});
    } catch (const Error& e) {
      throw Error(e.what(), "the export changed after chart wrote it; if you changed the weights on purpose "
                            "(saved from Python), delete its SHA256SUMS");
    }
  }
  YAML::Node cfg = load_json_file(config_json);
  YAML::Node c = cfg.IsMap() ? cfg["chart"] : YAML::Node();
  if (!c || !c.IsMap())
    throw Error(fmt::format("{} is a Hugging Face model that chart did not export (no \"chart\" key in config.json)",
                            dir.string()),
                "chart needs the vocabulary and config a model was trained with: import directories written by "
                "`chart export` (or saved from them with save_pretrained, which keeps the key)");
  Pretrained p;
  p.dir = dir;
  try {
    if (fs::exists(dir / "chart_config.yaml")) {
      p.config = load_config((dir / "chart_config.yaml").string(), {});
    } else {  // saved from Python with save_pretrained: config.json still carries chart's config
      if (!c["config"] || !c["config"].IsMap()) fail("{}: \"chart\" has no \"config\"", config_json.string());
      YAML::Emitter e;
      e << c["config"];
      const fs::path tmp = fs::temp_directory_path() / fmt::format("chart-import-{}.yaml", ::getpid());
      write_file_atomic(tmp, e.c_str());
      try {
        p.config = load_config(tmp.string(), {});
      } catch (...) {
        fs::remove(tmp);
        throw;
      }
      fs::remove(tmp);
    }
    if (c["vocab_hash"] && c["vocab_hash"].IsScalar()) p.vocab_hash = c["vocab_hash"].Scalar();
    if (c["step"] && c["step"].IsScalar()) p.step = c["step"].as<int64_t>();
    // The Llama fields must describe the same model as chart's config (a hand-edited config.json).
    const ModelConfig& m = p.config.model;
    const std::pair<const char*, int64_t> expect[] = {
        {"hidden_size", m.d_model}, {"num_hidden_layers", m.n_layers}, {"num_attention_heads", m.n_heads},
        {"num_key_value_heads", resolved_kv_heads(m)}, {"intermediate_size", resolved_d_ff(m)}};
    for (const auto& [key, want] : expect)
      if (cfg[key] && cfg[key].as<int64_t>() != want)
        fail("{}: {} is {} but chart's config says {}", config_json.string(), key, cfg[key].as<int64_t>(), want);
  } catch (const YAML::Exception& e) {
    fail("{}: unreadable field: {}", config_json.string(), e.what());
  }

  const fs::path weights_file = dir / "model.safetensors";
  if (!fs::exists(weights_file)) fail("{} has no model.safetensors", dir.string());
  for (auto& [name, t] : load_safetensors(weights_file).tensors) {
    auto chart_name = chart_tensor_name(name);
    if (!chart_name)
      throw Error(fmt::format("{}: unexpected tensor '{}' (not a Llama tensor chart writes)", weights_file.string(), name),
                  "import exports of chart models; adapters must be merged into the weights first");
    if (*chart_name == "lm_head.weight" && p.config.model.tie_embeddings) continue;  // a tied copy
    p.tensors[*chart_name] = t;
  }
  if (fs::exists(dir / "chart_extra.safetensors")) {
    for (auto& [name, t] : load_safetensors(dir / "chart_extra.safetensors").tensors) {
      if (!is_time_tensor(name))
        fail("{}: unexpected tensor '{}' (only dropped time features belong here)",
             (dir / "chart_extra.safetensors").string(), name);
      p.tensors[name] = t;
    }
  }
  auto emb = p.tensors.find("tok_emb.weight");
  if (emb == p.tensors.end() || emb->second.dim() != 2)
    fail("{}: no 2-D tensor 'model.embed_tokens.weight'", weights_file.string());
  p.vocab_size = emb->second.size(0);
  return p;
}

}  // namespace chart
