// Small MEDS datasets for tests, one parquet file per split, and the token datasets prepared from
// them: the scaffold every fixture shares. Each test gives the timeline of subject i of split s.
#pragma once
#include <array>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "core/config.h"
#include "data/prepare.h"
#include "tests/meds_fixture.h"

namespace chart::testing {

inline const char* const kSplits[] = {"train", "tuning", "held_out"};

// Subject i of split s (0 train, 1 tuning, 2 held_out): its rows, static ones first.
using Timeline = std::function<std::vector<Row>(int split, int i)>;

// root/data/<split>/0.parquet with subjects[s] subjects in split s.
inline void write_meds_splits(const std::filesystem::path& root, std::array<int, 3> subjects,
                              const Timeline& timeline) {
  for (int s = 0; s < 3; ++s) {
    std::vector<Row> rows;
    for (int i = 0; i < subjects[static_cast<size_t>(s)]; ++i) {
      auto r = timeline(s, i);
      rows.insert(rows.end(), r.begin(), r.end());
    }
    write_meds(root / "data" / kSplits[s] / "0.parquet", rows);
  }
}

// The same under dir/meds, prepared with the default config (and `sets`) into dir/tok; returns dir/tok.
inline std::filesystem::path make_token_dataset(const std::filesystem::path& dir, std::array<int, 3> subjects,
                                                const Timeline& timeline, const std::vector<std::string>& sets = {}) {
  write_meds_splits(dir / "meds", subjects, timeline);
  data::prepare_dataset(dir / "meds", dir / "tok", load_config("", sets), false);
  return dir / "tok";
}

// The static prefix of a fixture subject: its sex, then its birth.
inline std::vector<Row> born(int64_t id, const std::string& sex, int64_t birth_us) {
  return {{id, std::nullopt, sex}, {id, birth_us, "MEDS_BIRTH"}};
}

}  // namespace chart::testing
