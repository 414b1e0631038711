#include "data/timeline.h"

#include <algorithm>
#include <ctime>

namespace chart::data {

static int year_of(int64_t us) {
  std::time_t s = static_cast<std::time_t>(us >= 0 ? us / 1000000 : -((-us + 999999) / 1000000));
  std::tm tm{};
  gmtime_r(&s, &tm);
  return tm.tm_year + 1900;
}

void build_timeline(const Subject& subject, bool with_text, Timeline& out) {
  out.subject_id = subject.id;
  out.items.clear();
  out.owned.clear();
  out.has_birth = false;
  out.birth_us = 0;
  bool have_first = false;
  for (const Event& e : subject.events) {
    if (e.code == kBirthCode && e.has_time && !out.has_birth) {
      out.has_birth = true;
      out.birth_us = e.time_us;
      int y = year_of(e.time_us);
      int bucket = y - ((y % kBirthYearBucket) + kBirthYearBucket) % kBirthYearBucket;
      out.owned.push_back("BIRTH_YEAR//" + std::to_string(bucket));
      Item it;
      it.key = out.owned.back();
      it.is_static = true;
      out.items.push_back(it);
      continue;
    }
    if (e.has_time && !have_first) {
      have_first = true;
      if (!out.has_birth) out.birth_us = e.time_us;
    }
    Item it;
    it.key = e.code;
    it.time_us = e.time_us;
    it.is_static = !e.has_time;
    it.has_value = e.has_value;
    it.value = e.value;
    out.items.push_back(it);
    if (with_text && e.has_text) {
      out.owned.push_back("TEXT//" + std::string(e.code) + "//" + std::string(e.text));
      Item t = it;
      t.key = out.owned.back();
      t.has_value = false;
      out.items.push_back(t);
    }
  }
  // MEDS puts static rows first, but the birth row is timed and may sit anywhere: keep the
  // statics (birth year included) ahead of the timed items, each group in its original order.
  std::stable_partition(out.items.begin(), out.items.end(), [](const Item& i) { return i.is_static; });
}

}  // namespace chart::data
