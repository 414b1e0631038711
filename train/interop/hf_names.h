// Tensor names between chart and a Hugging Face Llama: tok_emb -> model.embed_tokens,
// layers.i.attn.w{q,k,v,o} -> model.layers.i.self_attn.{q,k,v,o}_proj, layers.i.attn_norm ->
// input_layernorm, layers.i.mlp_norm -> post_attention_layernorm, layers.i.mlp.w_{gate,up,down} ->
// mlp.{gate,up,down}_proj, norm -> model.norm, lm_head -> lm_head (absent when tied). The time
// features (age encoding, time-decay slopes, waiting-time head) have no Llama name.
#pragma once
#include <optional>
#include <string>

namespace chart {

// The Llama name of a chart tensor, "" for a time-feature tensor that Llama has no place for,
// nullopt for a tensor chart does not know how to export.
std::optional<std::string> hf_tensor_name(const std::string& chart_name);
// The inverse; nullopt for a name that is not a Llama tensor chart writes.
std::optional<std::string> chart_tensor_name(const std::string& hf_name);
// age_proj, time_head and layers.<i>.attn.time_slopes.
bool is_time_tensor(const std::string& chart_name);

}  // namespace chart
