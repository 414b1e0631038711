// Time-to-event targets from the record itself (MOTOR's way): for an example cut at its
// prediction time, the time to the first token after it whose code is one of the event codes, or,
// when none comes, to the subject's last token (censored there). The targets only train and score
// the head: the model's input stays the prefix up to prediction_time (examples.h).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/examples.h"
#include "data/vocab.h"

namespace chart::data {

constexpr double kUsPerDay = 86400.0 * 1e6;

// Sets each example's row.value (days from prediction_time to the event or the censoring) and
// row.label (the event was observed).
void add_times_to_event(const TokenDataset& ds, std::vector<Example>& examples, const std::vector<uint8_t>& event_tokens);

// Piece edges in days from durations ("30d", "1y"): increasing, the first above 0; 0 is prepended.
// chart::Error naming `what` otherwise.
std::vector<double> piece_edges_days(const std::vector<std::string>& pieces, const std::string& what);

}  // namespace chart::data
