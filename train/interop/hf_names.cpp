#include "train/interop/hf_names.h"

#include <cctype>
#include <utility>

namespace chart {
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

}  // namespace

bool is_time_tensor(const std::string& name) {
  if (name == "age_proj.weight" || name == "time_head.weight" || name == "time_head.bias") return true;
  const std::string suffix = ".attn.time_slopes";
  return name.rfind("layers.", 0) == 0 && name.size() > suffix.size() &&
         name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

namespace {

// "layers.12.rest" -> (12, "rest") after `prefix`; nullopt when it does not have that shape.
std::optional<std::pair<std::string, std::string>> split_layer(const std::string& name, const std::string& prefix) {
  if (name.rfind(prefix, 0) != 0) return std::nullopt;
  size_t i = prefix.size(), j = i;
  while (j < name.size() && std::isdigit(static_cast<unsigned char>(name[j]))) ++j;
  if (j == i || j >= name.size() || name[j] != '.') return std::nullopt;
  return std::make_pair(name.substr(i, j - i), name.substr(j + 1));
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

}  // namespace chart
