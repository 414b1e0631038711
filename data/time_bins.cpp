#include "data/time_bins.h"

#include <cctype>

#include <fmt/ranges.h>

#include "core/error.h"

namespace chart::data {

int64_t parse_duration(const std::string& text, const std::string& what) {
  size_t i = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
  std::string unit = text.substr(i);
  static const std::pair<const char*, int64_t> units[] = {
      {"s", 1}, {"m", 60}, {"h", 3600}, {"d", 86400}, {"w", 7 * 86400}, {"y", 31557600}};
  if (i == 0 || i > 9) fail("{}: '{}' is not a duration like 5m, 2h, 1d, 1w, 1y", what, text);
  for (const auto& [name, seconds] : units)
    if (unit == name) return std::stoll(text.substr(0, i)) * seconds * kMicrosPerSecond;
  fail("{}: '{}' has an unknown unit (s, m, h, d, w, y)", what, text);
}

std::vector<std::string> time_bin_edges(const std::vector<std::string>& names, const std::string& what) {
  std::vector<std::string> edges;
  const std::string kPrefix = "TIME//";
  for (size_t i = 0; i < names.size(); ++i) {
    const std::string& n = names[i];
    const bool last = i + 1 == names.size();
    const std::string body = n.rfind(kPrefix, 0) == 0 ? n.substr(kPrefix.size()) : "";
    const size_t dash = body.find('-');
    if (last ? body.rfind(">=", 0) != 0 : dash == std::string::npos)
      fail("{}: time token '{}' is not one chart writes (TIME//<from>-<to>, last TIME//>=<edge>)", what, n);
    edges.push_back(last ? body.substr(2) : body.substr(0, dash));
  }
  if (edges.empty()) fail("{}: the vocabulary has no time tokens", what);
  if (TimeBins(edges).names() != names)
    fail("{}: its time tokens do not form one ascending series of edges ({})", what, fmt::join(names, ", "));
  return edges;
}

TimeBins::TimeBins(const std::vector<std::string>& edges) {
  if (edges.empty()) fail("prepare.time_bins must name at least one edge");
  for (const auto& e : edges) {
    int64_t us = parse_duration(e, "prepare.time_bins");
    if (us <= 0 || (!edges_us_.empty() && us <= edges_us_.back()))
      fail("prepare.time_bins must be positive and ascending ('{}' after '{}')", e,
           edges_us_.empty() ? "" : edges[edges_us_.size() - 1]);
    edges_us_.push_back(us);
  }
  for (size_t i = 0; i + 1 < edges.size(); ++i) names_.push_back("TIME//" + edges[i] + "-" + edges[i + 1]);
  names_.push_back("TIME//>=" + edges.back());
}

void TimeBins::tokens_for_gap(int64_t gap_us, std::vector<int>& out) const {
  if (gap_us < edges_us_.front()) return;
  const int64_t last = edges_us_.back();
  if (gap_us >= last) {
    // One "≥ last edge" token per whole last-edge span, so years of silence stay visible.
    for (int64_t n = gap_us / last; n > 0; --n) out.push_back(static_cast<int>(names_.size()) - 1);
    return;
  }
  for (size_t i = 0; i + 1 < edges_us_.size(); ++i)
    if (gap_us < edges_us_[i + 1]) {
      out.push_back(static_cast<int>(i));
      return;
    }
}

}  // namespace chart::data
