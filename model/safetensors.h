// safetensors: the weights format Hugging Face and PyTorch users load safely (no pickle).
//   [u64 little-endian header length N][N bytes of JSON header][tensor bytes]
//   header: {"__metadata__": {"format": "pt", ...}, "name": {"dtype": "F32", "shape": [..],
//            "data_offsets": [begin, end]}, ...}, offsets relative to the end of the header.
// The reader trusts nothing: every offset, size, dtype and the JSON itself are checked, and a
// file that fails any check is refused with a chart::Error naming it.
#pragma once
#include <torch/types.h>

#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "model/safetensors_layout.h"

namespace chart {

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

// The length prefix and JSON header (padded to 8 bytes) for `tensors` (names, dtypes, shapes
// only) with `metadata` plus format=pt: what precedes their bytes, in order.
std::string safetensors_header(const NamedTensors& tensors, std::map<std::string, std::string> metadata);
// Serialises tensors (moved to CPU, made contiguous) with `metadata` plus format=pt.
std::string safetensors_bytes(const NamedTensors& tensors, std::map<std::string, std::string> metadata);
// Writes through a temporary file, fsync and rename (core/files.h).
void save_safetensors(const std::filesystem::path& path, const NamedTensors& tensors,
                      std::map<std::string, std::string> metadata = {});

struct Safetensors {
  std::map<std::string, torch::Tensor> tensors;  // CPU tensors owning their memory
  std::map<std::string, std::string> metadata;
};
Safetensors parse_safetensors(const std::string& bytes, const std::string& name);
Safetensors load_safetensors(const std::filesystem::path& path);

// Reading parts of a file, so that a rank reads only what it needs: the header alone (checked
// against the file's size as parse_safetensors_layout checks it), then elements [from, to) of one
// flattened tensor of it.
SafetensorsLayout read_safetensors_layout(const std::filesystem::path& path);
torch::Tensor read_safetensors_elements(const std::filesystem::path& path, const SafetensorsLayout& layout,
                                        const SafetensorsEntry& entry, int64_t from, int64_t to);

}  // namespace chart
