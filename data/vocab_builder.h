// Pass 1 of `chart prepare`: counts, over the train split, how many distinct subjects carry each
// key and keeps a bounded uniform sample of each key's numeric values; then turns the counts into
// a Vocab. Per-file counters are merged into one; the sample is a bottom-k sketch (the values with
// the smallest hash priorities), so the result does not depend on which thread merged first.
#pragma once
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/config.h"
#include "data/timeline.h"
#include "data/vocab.h"

namespace chart::data {

// At most this many values per numeric code are kept for its quantiles (4 x 12 bytes each).
inline constexpr size_t kValueSampleSize = 8192;

class KeyCounter {
 public:
  void add(const Timeline& t);    // one subject
  void merge(KeyCounter&& other);  // order-independent
  size_t distinct_keys() const { return entries_.size(); }
  // Keys in >= min_subjects subjects, most common first (ties by key), with cut points.
  Vocab build_vocab(const std::vector<std::string>& time_names, const PrepareConfig& cfg) const;

 private:
  struct Entry {
    int64_t subjects = 0, events = 0;
    int64_t last_subject = INT64_MIN;  // counts each subject once
    std::vector<std::pair<uint64_t, float>> sample;  // max-heap on priority
  };
  Entry& entry(std::string_view key);
  static void offer(Entry& e, uint64_t priority, float value);
  std::unordered_map<std::string_view, Entry> entries_;
  std::deque<std::string> keys_;  // owns the strings entries_ views
};

}  // namespace chart::data
