#include "train/checkpoint/model_weights.h"

#include <algorithm>

#include "core/error.h"
#include "core/json.h"

namespace chart {
namespace fs = std::filesystem;
namespace {

int64_t tensor_bytes(const torch::Tensor& t) { return t.numel() * static_cast<int64_t>(t.element_size()); }

// name -> file, from the index (checked: an object of plain file names in the same directory).
std::map<std::string, std::string> read_index(const fs::path& dir) {
  const fs::path path = dir / kWeightsIndex;
  const Json index = read_json_file(path);
  if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
    fail("{}: no \"weight_map\" object", path.string());
  std::map<std::string, std::string> map;
  for (const auto& [name, file] : index["weight_map"].items()) {
    if (!file.is_string()) fail("{}: weight_map[\"{}\"] is not a file name", path.string(), name);
    const std::string f = file.get<std::string>();
    if (f.empty() || f.find('/') != std::string::npos || f.find('\\') != std::string::npos || f[0] == '.')
      fail("{}: weight_map[\"{}\"] names {}, not a file beside the index", path.string(), name, f);
    map[name] = f;
  }
  if (map.empty()) fail("{}: weight_map is empty", path.string());
  return map;
}

}  // namespace

std::vector<NamedTensors> split_weights(const NamedTensors& weights, int parts) {
  int64_t total = 0;
  for (const auto& [name, t] : weights) total += tensor_bytes(t);
  parts = std::max(1, std::min<int>(parts, static_cast<int>(weights.size())));
  std::vector<NamedTensors> out(1);
  int64_t done = 0;
  for (size_t i = 0; i < weights.size(); ++i) {
    // Start part k once the bytes so far reach k/parts of the total, leaving a tensor for each
    // part still to come.
    const int k = static_cast<int>(out.size());
    const bool room = weights.size() - i > static_cast<size_t>(parts - k);
    if (k < parts && !out.back().empty() && (done * parts >= total * k || !room)) out.emplace_back();
    out.back().push_back(weights[i]);
    done += tensor_bytes(weights[i].second);
  }
  return out;
}

std::string weight_part_name(int part, int parts) {
  return fmt::format("model-{:05d}-of-{:05d}.safetensors", part + 1, parts);
}

std::string weights_index_json(const std::vector<NamedTensors>& parts) {
  Json map = Json::object();
  int64_t total = 0;
  for (size_t p = 0; p < parts.size(); ++p)
    for (const auto& [name, t] : parts[p]) {
      map[name] = weight_part_name(static_cast<int>(p), static_cast<int>(parts.size()));
      total += tensor_bytes(t);
    }
  Json index;
  index["metadata"] = {{"total_size", total}};
  index["weight_map"] = map;
  return dump_json(index);
}

std::vector<std::string> weight_files(const fs::path& dir) {
  if (!fs::exists(dir / kWeightsIndex)) {
    if (!fs::exists(dir / kWeightsFile)) fail("{}: no {} (nor {})", dir.string(), kWeightsFile, kWeightsIndex);
    return {kWeightsFile};
  }
  std::vector<std::string> files;
  for (const auto& [name, file] : read_index(dir))
    if (std::find(files.begin(), files.end(), file) == files.end()) files.push_back(file);
  std::sort(files.begin(), files.end());
  return files;
}

std::map<std::string, torch::Tensor> read_weights(const fs::path& dir) {
  if (!fs::exists(dir / kWeightsIndex)) {
    if (!fs::exists(dir / kWeightsFile)) fail("{}: no {} (nor {})", dir.string(), kWeightsFile, kWeightsIndex);
    return load_safetensors(dir / kWeightsFile).tensors;
  }
  const auto index = read_index(dir);
  std::map<std::string, torch::Tensor> all;
  for (const auto& file : weight_files(dir)) {
    if (!fs::exists(dir / file)) fail("{}: {} names {}, which is missing", dir.string(), kWeightsIndex, file);
    for (auto& [name, t] : load_safetensors(dir / file).tensors) {
      auto it = index.find(name);
      if (it == index.end() || it->second != file)
        fail("{}: holds tensor '{}', which {} gives to {}", (dir / file).string(), name, kWeightsIndex,
             it == index.end() ? std::string("no file") : it->second);
      all.emplace(name, std::move(t));
    }
  }
  for (const auto& [name, file] : index)
    if (!all.count(name)) fail("{}: has no tensor '{}', which {} says it holds", (dir / file).string(), name, kWeightsIndex);
  return all;
}

std::string weights_source(const fs::path& dir) {
  return (dir / (fs::exists(dir / kWeightsIndex) ? kWeightsIndex : kWeightsFile)).string();
}

}  // namespace chart
