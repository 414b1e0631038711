// A subject's MEDS rows as the items the vocabulary counts and the tokenizer emits: the birth
// row becomes a birth-year item, static rows come first, text values become items only when
// prepare.text is on. Both passes of `chart prepare` go through this one function, so the
// vocabulary always covers exactly what the tokenizer looks up.
#pragma once
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "data/meds_event.h"

namespace chart::data {

inline constexpr std::string_view kBirthCode = "MEDS_BIRTH";
inline constexpr int kBirthYearBucket = 5;  // birth years are grouped in 5-year buckets

struct Item {
  std::string_view key;  // the vocabulary key: a code, "BIRTH_YEAR//1950", "TEXT//code//value"
  int64_t time_us = 0;
  float value = 0;
  bool is_static = false;  // no time: goes in the static prefix
  bool has_value = false;
};

struct Timeline {
  int64_t subject_id = 0;
  int64_t birth_us = 0;      // birth time, or the first event's time if there is no birth row
  bool has_birth = false;
  std::vector<Item> items;   // static items first, then timed items in time order
  std::deque<std::string> owned;  // storage for keys made here (birth year, text)
};

void build_timeline(const Subject& subject, bool with_text, Timeline& out);

}  // namespace chart::data
