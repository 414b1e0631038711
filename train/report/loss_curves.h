// The loss curves of a run, read back from its metrics.jsonl for the report's plots.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace chart {

// Per split, (step, loss) sorted by step.
struct LossCurves {
  bool found = false;  // the file exists and could be read
  std::map<std::string, std::vector<std::pair<double, double>>> by_split;
  int64_t skipped_lines = 0;  // malformed, or without step, split and a finite loss
};

// Reads the lines of metrics.jsonl (flat JSON objects of strings and numbers) that the loss
// plots need; never throws: a missing file gives found = false, a bad line is counted, skipped.
LossCurves read_loss_curves(const std::filesystem::path& metrics_jsonl);

}  // namespace chart
