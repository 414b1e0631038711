#include "data/tokenizer.h"

namespace chart::data {

void Tokenizer::tokenize(const Timeline& t, std::vector<uint32_t>& tokens,
                         std::vector<int64_t>& times, TokenizeCounts& counts,
                         std::vector<uint32_t>* unknown_items) const {
  tokens.clear();
  times.clear();
  auto push = [&](uint32_t tok, int64_t time) {
    tokens.push_back(tok);
    times.push_back(time);
  };
  push(Vocab::kBos, t.birth_us);
  std::vector<int> gap_tokens;
  bool have_prev = false;
  int64_t prev = 0;
  if (unknown_items) unknown_items->clear();
  for (uint32_t i = 0; i < t.items.size(); ++i) {
    const Item& it = t.items[i];
    int64_t time = it.is_static ? t.birth_us : it.time_us;
    if (!it.is_static) {
      if (have_prev && it.time_us > prev) {
        gap_tokens.clear();
        bins_.tokens_for_gap(it.time_us - prev, gap_tokens);
        for (int g : gap_tokens) push(vocab_.time_token(g), time);
      }
      have_prev = true;
      prev = it.time_us;
    }
    ++counts.events;
    auto id = vocab_.find(it.key);
    if (!id) {
      ++counts.unknown;
      if (unknown_items) unknown_items->push_back(i);
      push(Vocab::kUnk, time);
      continue;
    }
    push(*id, time);
    if (it.has_value)
      if (auto q = vocab_.quantile_token(*id, it.value)) push(*q, time);
  }
  counts.tokens += static_cast<int64_t>(tokens.size());
}

}  // namespace chart::data
