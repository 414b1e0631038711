// One subject's MEDS rows as the tokenizer reads them, wherever they came from: a parquet file
// (meds_reader.h) or a request to `chart serve` (serve/patient.h). No Arrow here.
#pragma once
#include <cstdint>
#include <string_view>
#include <vector>

namespace chart::data {

struct Event {
  std::string_view code;
  std::string_view text;  // empty unless has_text
  int64_t time_us = 0;    // microseconds since 1970-01-01; meaningful only if has_time
  float value = 0;        // meaningful only if has_value
  bool has_time = false, has_value = false, has_text = false;
};

// One subject's rows, in file order. The string_views stay valid until the next call to next().
struct Subject {
  int64_t id = 0;
  std::vector<Event> events;
};

}  // namespace chart::data
