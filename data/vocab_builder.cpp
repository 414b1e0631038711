#include "data/vocab_builder.h"

#include <algorithm>

#include "core/mix.h"

namespace chart::data {
namespace {
bool heap_less(const std::pair<uint64_t, float>& a, const std::pair<uint64_t, float>& b) {
  return a.first != b.first ? a.first < b.first : a.second < b.second;
}
}  // namespace

KeyCounter::Entry& KeyCounter::entry(std::string_view key) {
  auto it = entries_.find(key);
  if (it != entries_.end()) return it->second;
  keys_.emplace_back(key);
  return entries_[keys_.back()];
}

void KeyCounter::offer(Entry& e, uint64_t priority, float value) {
  std::pair<uint64_t, float> v{priority, value};
  if (e.sample.size() < kValueSampleSize) {
    e.sample.push_back(v);
    std::push_heap(e.sample.begin(), e.sample.end(), heap_less);
  } else if (heap_less(v, e.sample.front())) {
    std::pop_heap(e.sample.begin(), e.sample.end(), heap_less);
    e.sample.back() = v;
    std::push_heap(e.sample.begin(), e.sample.end(), heap_less);
  }
}

void KeyCounter::add(const Timeline& t) {
  for (size_t i = 0; i < t.items.size(); ++i) {
    const Item& it = t.items[i];
    Entry& e = entry(it.key);
    ++e.events;
    if (e.last_subject != t.subject_id) {
      e.last_subject = t.subject_id;
      ++e.subjects;
    }
    // The priority depends only on (subject, position), never on thread or file order.
    if (it.has_value) offer(e, mix(mix(static_cast<uint64_t>(t.subject_id)) ^ i), it.value);
  }
}

void KeyCounter::merge(KeyCounter&& other) {
  for (auto& [key, o] : other.entries_) {
    Entry& e = entry(key);
    e.subjects += o.subjects;  // subjects live in one file each, so per-file counts add up
    e.events += o.events;
    for (const auto& v : o.sample) offer(e, v.first, v.second);
  }
}

Vocab KeyCounter::build_vocab(const std::vector<std::string>& time_names,
                              const PrepareConfig& cfg) const {
  std::vector<const std::pair<const std::string_view, Entry>*> kept;
  for (const auto& kv : entries_)
    if (kv.second.subjects >= cfg.min_subjects) kept.push_back(&kv);
  std::sort(kept.begin(), kept.end(), [](auto* a, auto* b) {
    return a->second.subjects != b->second.subjects ? a->second.subjects > b->second.subjects
                                                     : a->first < b->first;
  });
  std::vector<Vocab::CodeEntry> codes;
  for (auto* kv : kept) {
    Vocab::CodeEntry c;
    c.key = std::string(kv->first);
    c.subjects = kv->second.subjects;
    std::vector<float> values;
    for (const auto& v : kv->second.sample) values.push_back(v.second);
    std::sort(values.begin(), values.end());
    const size_t n = values.size();
    for (int64_t i = 1; n > 0 && i < cfg.numeric_bins; ++i) {
      float cut = values[std::min(n - 1, static_cast<size_t>(i * n / cfg.numeric_bins))];
      if (c.cuts.empty() || cut > c.cuts.back()) c.cuts.push_back(cut);
    }
    codes.push_back(std::move(c));
  }
  return Vocab(time_names, static_cast<int>(cfg.numeric_bins), std::move(codes));
}

}  // namespace chart::data
