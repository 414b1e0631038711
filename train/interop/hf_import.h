// Reading back a directory `chart export --format hf` wrote (or one saved from it in Python with
// save_pretrained) as a Pretrained, so init.checkpoint may name it (train/interop/load_pretrained.h).
#pragma once
#include <filesystem>

#include "train/checkpoint/pretrained.h"

namespace chart {

// True when `dir` looks like an export (config.json and no trainer_state.yaml).
bool is_hf_export(const std::filesystem::path& dir);
// Refuses a Hugging Face model that chart did not write (no "chart" key in config.json), files
// that fail SHA256SUMS, configs that disagree with the weights, and unexpected tensors.
Pretrained load_hf_export(const std::filesystem::path& dir);

}  // namespace chart
