// Time-interval tokens (ETHOS-style): the gap between two events becomes one token naming the
// interval it falls in; a gap beyond the last edge repeats the last token once per last-edge span.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/time.h"

namespace chart::data {

// "90s", "5m", "2h", "3d", "1w", "1y" -> microseconds. Throws chart::Error naming `what`.
int64_t parse_duration(const std::string& text, const std::string& what);

// The edges that give these token names (a vocabulary's time tokens); throws chart::Error
// naming `what` when they are not names TimeBins writes.
std::vector<std::string> time_bin_edges(const std::vector<std::string>& names, const std::string& what);

class TimeBins {
 public:
  // edges: ascending upper edges as text, e.g. {"5m", "1h", "1d"} (prepare.time_bins).
  explicit TimeBins(const std::vector<std::string>& edges);
  // Token names, one per interval: "TIME//5m-1h", ..., and the last "TIME//>=1d".
  const std::vector<std::string>& names() const { return names_; }
  // Interval tokens for a gap: indices into names(); empty when the gap is below the first edge.
  void tokens_for_gap(int64_t gap_us, std::vector<int>& out) const;

 private:
  std::vector<int64_t> edges_us_;
  std::vector<std::string> names_;
};

}  // namespace chart::data
