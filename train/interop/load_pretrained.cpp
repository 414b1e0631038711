#include "train/interop/load_pretrained.h"

#include "train/interop/hf_import.h"

namespace chart {

Pretrained load_pretrained(const std::string& path) {
  if (!path.empty() && is_hf_export(path)) return load_hf_export(path);
  return load_chart_checkpoint(path);
}

ModelConfig checkpoint_model(const Pretrained& pre, const ModelConfig& asked) {
  ModelConfig m = pre.config.model;
  m.attention = asked.attention;
  m.attention_check = asked.attention_check;
  return m;
}

}  // namespace chart
