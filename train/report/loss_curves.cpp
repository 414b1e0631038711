#include "train/report/loss_curves.h"

#include <algorithm>
#include <cmath>
#include <fstream>

#include "core/json.h"

namespace chart {
namespace {

// The number under `key`, NaN when it is missing, null or not a number.
double number(const Json& o, const char* key) {
  auto it = o.find(key);
  return it != o.end() && it->is_number() ? it->get<double>() : NAN;
}

// A flat object (no nested objects or arrays), as MetricsLog writes them.
bool is_flat_object(const Json& j) {
  if (!j.is_object()) return false;
  for (const auto& v : j)
    if (v.is_structured()) return false;
  return true;
}

}  // namespace

LossCurves read_loss_curves(const std::filesystem::path& metrics_jsonl) {
  LossCurves lc;
  std::ifstream in(metrics_jsonl);
  if (!in) return lc;
  lc.found = true;
  std::string line;
  while (std::getline(in, line)) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const Json o = Json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!is_flat_object(o) || !o.contains("split") || !o["split"].is_string() || !std::isfinite(number(o, "step")) ||
        !std::isfinite(number(o, "loss"))) {
      ++lc.skipped_lines;
      continue;
    }
    lc.by_split[o["split"].get<std::string>()].emplace_back(number(o, "step"), number(o, "loss"));
  }
  for (auto& [split, pts] : lc.by_split)
    std::stable_sort(pts.begin(), pts.end(), [](auto& a, auto& b) { return a.first < b.first; });
  return lc;
}

}  // namespace chart
