#include "data/subject_counts.h"

#include <set>

namespace chart::data {

SubjectCounts count_subjects(const TokenDataset& ds, const std::string& split) {
  const Vocab& vocab = ds.vocab();
  SubjectCounts c;
  c.token.assign(vocab.size(), 0);
  std::vector<int64_t> last_seen(vocab.size(), -1);  // the subject index that last counted a token
  for (const auto& ref : ds.subjects(split)) {
    const auto& sh = ds.shards(split)[ref.shard];
    const auto& e = sh.subject(ref.entry);
    const uint32_t* t = sh.tokens() + e.token_start;
    std::set<std::pair<uint32_t, uint32_t>> bins;
    for (uint32_t j = 0; j < e.n_tokens; ++j) {
      const uint32_t id = t[j];
      if (id >= vocab.size()) continue;  // the shard reader checked the vocabulary; be safe anyway
      if (last_seen[id] != c.subjects) last_seen[id] = c.subjects, ++c.token[id];
      if (j > 0 && vocab.kind(id) == TokenKind::kQuantile && vocab.kind(t[j - 1]) == TokenKind::kCode)
        bins.insert({t[j - 1], id});
    }
    for (const auto& b : bins) ++c.bin[b];
    ++c.subjects;
  }
  return c;
}

}  // namespace chart::data
