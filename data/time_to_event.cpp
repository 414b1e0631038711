#include "data/time_to_event.h"

#include "core/error.h"
#include "data/time_bins.h"

namespace chart::data {

void add_times_to_event(const TokenDataset& ds, std::vector<Example>& examples, const std::vector<uint8_t>& event_tokens) {
  for (Example& ex : examples) {
    const TokenShard& sh = ds.shards(ex.split)[ex.ref.shard];
    const SubjectEntry& e = sh.subject(ex.ref.entry);
    const uint32_t* tok = sh.tokens() + e.token_start;
    const int64_t* times = sh.times() + e.token_start;
    int64_t end_us = e.n_tokens > 0 ? times[e.n_tokens - 1] : ex.row.prediction_time_us;
    bool event = false;
    for (uint32_t i = ex.n_tokens; i < e.n_tokens; ++i)
      if (tok[i] < event_tokens.size() && event_tokens[tok[i]]) {
        end_us = times[i];
        event = true;
        break;
      }
    ex.row.label = event;
    ex.row.value = std::max(0.0, double(end_us - ex.row.prediction_time_us) / kUsPerDay);
  }
}

std::vector<double> piece_edges_days(const std::vector<std::string>& pieces, const std::string& what) {
  std::vector<double> edges{0.0};
  for (const auto& p : pieces) {
    const double d = double(parse_duration(p, what)) / kUsPerDay;
    if (!(d > edges.back()))
      fail("{}: piece edges must increase from above 0 ({} after {} days)", what, p, edges.back());
    edges.push_back(d);
  }
  return edges;
}

}  // namespace chart::data
