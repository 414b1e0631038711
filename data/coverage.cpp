#include "data/coverage.h"

#include <algorithm>
#include <set>


namespace chart::data {

void CoverageCounter::add(const std::string& split, const Timeline& t, const std::vector<uint32_t>& unknown_items) {
  Split& s = splits_[split];
  s.events += static_cast<int64_t>(t.items.size());
  s.unknown += static_cast<int64_t>(unknown_items.size());
  s.subjects += 1;
  if (unknown_items.empty()) return;
  s.subjects_with_unknown += 1;
  std::set<std::string_view> seen;  // a subject counts once per code
  for (uint32_t i : unknown_items) {
    const std::string_view key = t.items[i].key;
    Code& c = s.codes[std::string(key)];
    c.events += 1;
    if (seen.insert(key).second) c.subjects += 1;
  }
}

void CoverageCounter::merge(CoverageCounter&& other) {
  for (auto& [name, o] : other.splits_) {
    Split& s = splits_[name];
    s.events += o.events;
    s.unknown += o.unknown;
    s.subjects += o.subjects;
    s.subjects_with_unknown += o.subjects_with_unknown;
    for (auto& [code, c] : o.codes) {  // a subject is in one file, so counts add up
      Code& mine = s.codes[code];
      mine.events += c.events;
      mine.subjects += c.subjects;
    }
  }
}

Json CoverageCounter::to_json() const {
  Json j;
  j["splits"] = Json::object();
  for (const auto& [name, s] : splits_) {
    std::vector<std::pair<std::string, Code>> codes(s.codes.begin(), s.codes.end());
    std::stable_sort(codes.begin(), codes.end(),
                     [](const auto& a, const auto& b) { return a.second.events > b.second.events; });
    Json list = Json::array();
    for (const auto& [code, c] : codes) list.push_back({{"code", code}, {"events", c.events}, {"subjects", c.subjects}});
    j["splits"][name] = {{"events", s.events},
                         {"unknown_events", s.unknown},
                         {"unknown_share", s.events ? double(s.unknown) / double(s.events) : 0.0},
                         {"unknown_codes", s.codes.size()},
                         {"subjects", s.subjects},
                         {"subjects_with_unknown", s.subjects_with_unknown},
                         {"codes", std::move(list)}};
  }
  return j;
}

Json coverage_summary(const std::filesystem::path& dataset_dir, const std::string& split, int top) {
  const auto file = dataset_dir / "coverage.json";
  if (!std::filesystem::exists(file)) return nullptr;
  const Json all = read_json_file(file);
  if (!all.contains("splits") || !all["splits"].contains(split)) return nullptr;
  const Json& s = all["splits"][split];
  Json out;
  for (const char* k : {"events", "unknown_events", "unknown_share", "unknown_codes", "subjects", "subjects_with_unknown"})
    out[k] = s.at(k);
  out["vocab_from"] = all.value("vocab_from", Json());
  if (top > 0) {
    const auto manifest = dataset_dir / "manifest.json";
    const int64_t min_subjects =
        std::filesystem::exists(manifest) ? read_json_file(manifest).value("min_subjects", int64_t{10}) : 10;
    out["top_unknown_codes"] = Json::array();
    for (const Json& c : s.at("codes")) {
      if (static_cast<int>(out["top_unknown_codes"].size()) >= top) break;
      if (c.at("subjects").get<int64_t>() >= min_subjects) out["top_unknown_codes"].push_back(c);
    }
  }
  return out;
}

}  // namespace chart::data
