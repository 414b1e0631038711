// How much of a dataset its vocabulary covers: per split, the events whose key has no token
// ([UNK]: a code below the privacy threshold, or, for a cohort tokenized with another dataset's
// vocabulary, a code that site never had), and each such code with its events and subjects.
// `chart prepare` writes it as coverage.json beside the shards and its totals into
// manifest.json; eval and the model card show the split they read.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "core/json.h"
#include "data/timeline.h"

namespace chart::data {

class CoverageCounter {
 public:
  // One subject's timeline; `unknown_items` from Tokenizer::tokenize.
  void add(const std::string& split, const Timeline& t, const std::vector<uint32_t>& unknown_items);
  void merge(CoverageCounter&& other);
  // {"splits": {name: {events, unknown_events, unknown_share, unknown_codes, subjects,
  //  subjects_with_unknown, codes: [{code, events, subjects}, most events first]}}}
  Json to_json() const;

 private:
  struct Code {
    int64_t events = 0, subjects = 0;
  };
  struct Split {
    int64_t events = 0, unknown = 0, subjects = 0, subjects_with_unknown = 0;
    std::map<std::string, Code> codes;
  };
  std::map<std::string, Split> splits_;
};

// The totals of one split of a coverage.json (no code list), for eval.json and model cards;
// null when the dataset predates coverage.json or lacks the split. With `top` > 0, the `top`
// most frequent unknown codes seen in at least the dataset's privacy threshold of subjects
// (manifest.json's min_subjects) are listed too; rarer ones stay in the dataset's own
// coverage.json, since a code of one patient can point at that patient.
Json coverage_summary(const std::filesystem::path& dataset_dir, const std::string& split, int top = 0);

}  // namespace chart::data
