// How many distinct subjects of a split each token, and each numeric bin of each code, rests on:
// counted from the token shards themselves, not taken from the vocabulary's record, so that the
// privacy threshold can be checked on what the model was trained on (chart audit).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "data/token_dataset.h"

namespace chart::data {

struct SubjectCounts {
  std::vector<int64_t> token;                           // [vocab size]: subjects with the token
  std::map<std::pair<uint32_t, uint32_t>, int64_t> bin;  // (code token, quantile token): subjects
  int64_t subjects = 0;                                  // in the split
};

// A quantile token counts for the code token right before it (the tokenizer writes them so).
SubjectCounts count_subjects(const TokenDataset& ds, const std::string& split);

}  // namespace chart::data
