// Model weights in a checkpoint directory: one model.safetensors, or, when several ranks write
// a large model at once (train.split_weights_mib), model-<i>-of-<n>.safetensors, one per rank,
// with a model.safetensors.index.json saying which file holds each tensor: the layout of a
// sharded Hugging Face save_pretrained, so the import of such a save reads through here too, as
// does every chart reader of a checkpoint.
#pragma once
#include <torch/types.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "model/safetensors.h"

namespace chart {

inline constexpr char kWeightsFile[] = "model.safetensors";
inline constexpr char kWeightsIndex[] = "model.safetensors.index.json";

// Contiguous runs of `weights`, in order, of about equal bytes: part i is written by rank i.
// Fewer parts than asked when there are fewer tensors; never an empty part.
std::vector<NamedTensors> split_weights(const NamedTensors& weights, int parts);
std::string weight_part_name(int part, int parts);  // model-00001-of-00004.safetensors
// The index for those parts: {"metadata": {"total_size": bytes}, "weight_map": {name: file}}.
std::string weights_index_json(const std::vector<NamedTensors>& parts);

// The files holding a checkpoint's weights (model.safetensors, or what the index names), and
// the weights themselves, each name from exactly one file. Throws chart::Error naming the file
// that is missing, malformed, or holds a tensor the index does not give it.
std::vector<std::string> weight_files(const std::filesystem::path& dir);
std::map<std::string, torch::Tensor> read_weights(const std::filesystem::path& dir);
// What to name in a message about the weights of `dir`.
std::string weights_source(const std::filesystem::path& dir);

}  // namespace chart
