// `chart export --format hf`: a checkpoint as a directory Hugging Face transformers loads with
// AutoModelForCausalLM (a Llama).
//
//   config.json              LlamaConfig; rope in both spellings (rope_theta + rope_scaling for
//                            transformers 4.x, rope_parameters for 5.x); chart's own full config,
//                            vocabulary hash and what was dropped under the "chart" key
//   model.safetensors        weights under Llama's names (metadata format=pt)
//   vocab.tsv, vocab.json    chart's vocabulary file (its SHA-256 is the vocabulary hash) and a
//                            plain {token: id} map for Python
//   tokenizer.json, tokenizer_config.json, special_tokens_map.json   what AutoTokenizer loads
//                            (train/interop/hf_tokenizer.h)
//   chart_config.yaml        chart's resolved config, verbatim (what import reads)
//   chart_extra.safetensors  only with --drop-time-features: the dropped tensors, so that chart
//                            itself can still import the export losslessly
//   model_card.json, MODEL_CARD.md   the checkpoint's card with an "export" section
//   SHA256SUMS               every file above
//
// Llama has no age encoding, no time-decay attention bias and no waiting-time head. A model with
// any of them is refused unless drop_time_features is set, which writes a lossy Llama and records
// what was dropped (docs/export.md). Tensor names: train/interop/hf_names.h; the way back:
// train/interop/hf_import.h.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

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

}  // namespace chart
