// Pass 2 of `chart prepare`: one subject's timeline -> token ids and their times.
//   [BOS] <static tokens> <events...>, where each event is <time-interval tokens for the gap since
//   the previous event> <code> [<quantile token of its value>]. Static tokens (sex, birth year,
//   ...) carry the birth time; every other token carries its event's time. A key without a token
//   of its own (below the privacy threshold) becomes [UNK] and its value is dropped.
#pragma once
#include <cstdint>
#include <vector>

#include "data/time_bins.h"
#include "data/timeline.h"
#include "data/vocab.h"

namespace chart::data {

struct TokenizeCounts {
  int64_t events = 0, tokens = 0, unknown = 0;
};

class Tokenizer {
 public:
  Tokenizer(const Vocab& vocab, const TimeBins& bins) : vocab_(vocab), bins_(bins) {}
  // `unknown_items`, when given, receives the index in t.items of each item that became [UNK].
  void tokenize(const Timeline& t, std::vector<uint32_t>& tokens, std::vector<int64_t>& times,
                TokenizeCounts& counts, std::vector<uint32_t>* unknown_items = nullptr) const;

 private:
  const Vocab& vocab_;
  const TimeBins& bins_;
};

}  // namespace chart::data
