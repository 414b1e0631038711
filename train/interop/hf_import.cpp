#include "train/interop/hf_import.h"

#include <unistd.h>

#include <fmt/ranges.h>

#include "core/error.h"
#include "core/files.h"
#include "core/json.h"
#include "core/log.h"
#include "core/sha256.h"
#include "model/layers.h"
#include "model/safetensors.h"
#include "train/checkpoint/checkpoint.h"
#include "train/checkpoint/model_weights.h"
#include "train/interop/hf_names.h"

namespace chart {
namespace fs = std::filesystem;
bool is_hf_export(const fs::path& dir) {
  return fs::is_directory(dir) && fs::exists(dir / "config.json") && !fs::exists(dir / "trainer_state.yaml");
}

namespace {

// A lossy export saved again from Python (save_pretrained) keeps config.json's chart key but not
// chart_extra.safetensors: the dropped time features are gone. The model is then the Llama that
// transformers computes, so chart imports it without them, and says so.
void drop_absent_time_features(Pretrained& p) {
  for (const auto& [name, t] : p.tensors)
    if (is_time_tensor(name)) return;  // chart_extra.safetensors came along: nothing was lost
  ModelConfig& m = p.config.model;
  std::vector<std::string> off;
  if (m.time_encoding != "none") off.push_back("model.time_encoding=" + m.time_encoding), m.time_encoding = "none";
  if (m.time_bias) off.push_back("model.time_bias"), m.time_bias = false;
  if (m.time_head) off.push_back("model.time_head"), m.time_head = false;
  if (!off.empty())
    warn("{}: the time features dropped at export ({}) are not here (no chart_extra.safetensors, as after "
         "save_pretrained): imported as the Llama transformers computes, without them", p.dir.string(),
         fmt::join(off, ", "));
}

}  // namespace

Pretrained load_hf_export(const fs::path& dir) {
  const fs::path config_json = dir / "config.json";
  if (fs::exists(dir / "SHA256SUMS")) {
    try {
      verify_sha256sums(dir, {fs::exists(dir / kWeightsIndex) ? kWeightsIndex : kWeightsFile, "config.json"});
    } catch (const Error& e) {
      throw Error(e.what(), "the export changed after chart wrote it; if you changed the weights on purpose "
                            "(saved from Python), delete its SHA256SUMS");
    }
  }
  const Json cfg = read_json_file(config_json);
  if (!cfg.is_object() || !cfg.contains("chart") || !cfg["chart"].is_object())
    throw Error(fmt::format("{} is a Hugging Face model that chart did not export (no \"chart\" key in config.json)",
                            dir.string()),
                "chart needs the vocabulary and config a model was trained with: import directories written by "
                "`chart export` (or saved from them with save_pretrained, which keeps the key)");
  const Json& c = cfg["chart"];
  Pretrained p;
  p.dir = dir;
  try {
    if (fs::exists(dir / "chart_config.yaml")) {
      p.config = load_config((dir / "chart_config.yaml").string(), {});
    } else {  // saved from Python with save_pretrained: config.json still carries chart's config
      if (!c.contains("config") || !c["config"].is_object()) fail("{}: \"chart\" has no \"config\"", config_json.string());
      // JSON is YAML: load_config reads chart's config from its JSON text as it is.
      const fs::path tmp = fs::temp_directory_path() / fmt::format("chart-import-{}.yaml", ::getpid());
      write_file_atomic(tmp, dump_json(c["config"]));
      try {
        p.config = load_config(tmp.string(), {});
      } catch (...) {
        fs::remove(tmp);
        throw;
      }
      fs::remove(tmp);
    }
    if (c.contains("vocab_hash") && c["vocab_hash"].is_string()) p.vocab_hash = c["vocab_hash"].get<std::string>();
    if (c.contains("step") && c["step"].is_number()) p.step = c["step"].get<int64_t>();
    // The Llama fields must describe the same model as chart's config (a hand-edited config.json).
    const ModelConfig& m = p.config.model;
    const std::pair<const char*, int64_t> expect[] = {
        {"hidden_size", m.d_model}, {"num_hidden_layers", m.n_layers}, {"num_attention_heads", m.n_heads},
        {"num_key_value_heads", resolved_kv_heads(m)}, {"intermediate_size", resolved_d_ff(m)}};
    for (const auto& [key, want] : expect)
      if (cfg.contains(key) && cfg[key].get<int64_t>() != want)
        fail("{}: {} is {} but chart's config says {}", config_json.string(), key, cfg[key].get<int64_t>(), want);
  } catch (const Json::exception& e) {  // a field of the wrong type
    fail("{}: unreadable field: {}", config_json.string(), e.what());
  }

  // One model.safetensors, or the shards of a large save_pretrained with their index.
  const std::string weights_file = weights_source(dir);
  for (auto& [name, t] : read_weights(dir)) {
    auto chart_name = chart_tensor_name(name);
    if (!chart_name)
      throw Error(fmt::format("{}: unexpected tensor '{}' (not a Llama tensor chart writes)", weights_file, name),
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
  drop_absent_time_features(p);
  require_finite(p.tensors, dir.string());
  auto emb = p.tensors.find("tok_emb.weight");
  if (emb == p.tensors.end() || emb->second.dim() != 2)
    fail("{}: no 2-D tensor 'model.embed_tokens.weight'", weights_file);
  p.vocab_size = emb->second.size(0);
  return p;
}

}  // namespace chart
