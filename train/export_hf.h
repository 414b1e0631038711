// `chart export --format hf`: a checkpoint as a directory Hugging Face transformers loads with
// AutoModelForCausalLM (a Llama), and the way back (init.checkpoint may name such a directory).
//
//   config.json              LlamaConfig; rope in both spellings (rope_theta + rope_scaling for
//                            transformers 4.x, rope_parameters for 5.x); chart's own full config,
//                            vocabulary hash and what was dropped under the "chart" key
//   model.safetensors        weights under Llama's names (metadata format=pt)
//   vocab.tsv, vocab.json    chart's vocabulary file (its SHA-256 is the vocabulary hash) and a
//                            plain {token: id} map for Python
//   chart_config.yaml        chart's resolved config, verbatim (what import reads)
//   chart_extra.safetensors  only with --drop-time-features: the dropped tensors, so that chart
//                            itself can still import the export losslessly
//   model_card.json, MODEL_CARD.md   the checkpoint's card with an "export" section
//   SHA256SUMS               every file above
//
// Llama has no age encoding, no time-decay attention bias and no waiting-time head. A model with
// any of them is refused unless drop_time_features is set, which writes a lossy Llama and records
// what was dropped (docs/export.md). Name mapping: tok_emb -> model.embed_tokens,
// layers.i.attn.w{q,k,v,o} -> model.layers.i.self_attn.{q,k,v,o}_proj, layers.i.attn_norm ->
// input_layernorm, layers.i.mlp_norm -> post_attention_layernorm, layers.i.mlp.w_{gate,up,down} ->
// mlp.{gate,up,down}_proj, norm -> model.norm, lm_head -> lm_head (absent when tied).
#pragma once
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "train/pretrained.h"

namespace chart {

struct HfExportOptions {
  bool drop_time_features = false;
  std::string vocab;       // the vocab.tsv to ship; "": found beside the checkpoint or in its dataset
  bool overwrite = false;  // replace an existing output directory
};

struct HfExportResult {
  std::filesystem::path dir;
  std::vector<std::string> dropped;  // features dropped (empty: lossless)
  size_t tensors = 0;                // in model.safetensors
};

// Reads `checkpoint` (anything load_pretrained() accepts) and writes `out` through a staging
// directory, so a failed export leaves nothing that looks whole.
HfExportResult export_hf(const std::string& checkpoint, const std::filesystem::path& out,
                         const HfExportOptions& options);

// Name mapping. hf_tensor_name: the Llama name of a chart tensor, "" for a time-feature tensor
// that Llama has no place for, nullopt for a tensor chart does not know how to export.
std::optional<std::string> hf_tensor_name(const std::string& chart_name);
// chart_tensor_name: the inverse; nullopt for a name that is not a Llama tensor chart writes.
std::optional<std::string> chart_tensor_name(const std::string& hf_name);

// True when `dir` looks like an export (config.json and no trainer_state.yaml).
bool is_hf_export(const std::filesystem::path& dir);
// Reads an export back as a Pretrained (what train/pretrained.cpp does for init.checkpoint).
// Refuses a Hugging Face model that chart did not write (no "chart" key in config.json), files
// that fail SHA256SUMS, configs that disagree with the weights, and unexpected tensors.
Pretrained load_hf_export(const std::filesystem::path& dir);

}  // namespace chart
