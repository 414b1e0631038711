#include "train/recipes/audit_windows.h"

#include "core/time.h"
#include "data/vocab.h"

namespace chart {

WindowInputs window_inputs(const data::TokenDataset& ds, const std::string& split,
                           const std::vector<data::SubjectRef>& refs, const std::vector<Window>& windows,
                           int64_t context) {
  const auto B = static_cast<int64_t>(windows.size());
  WindowInputs in{torch::full({B, context}, int64_t(data::Vocab::kPad), torch::kInt64),
                  torch::zeros({B, context}, torch::kFloat32), torch::full({B, context}, -1, torch::kInt32)};
  auto tok = in.tokens.accessor<int64_t, 2>();
  auto age = in.ages.accessor<float, 2>();
  auto seg = in.segments.accessor<int32_t, 2>();
  for (int64_t b = 0; b < B; ++b) {
    const Window& w = windows[size_t(b)];
    const auto& sh = ds.shards(split)[refs[w.subject].shard];
    const auto& e = sh.subject(refs[w.subject].entry);
    for (int64_t j = 0; j < w.n; ++j) {
      const uint64_t at = e.token_start + uint64_t(w.start + j);
      tok[b][j] = sh.tokens()[at];
      age[b][j] = age_years(sh.times()[at], e.birth_us);
      seg[b][j] = 0;
    }
  }
  return in;
}

std::vector<data::SubjectRef> audited_subjects(const data::TokenDataset& ds, const std::string& split, int64_t n) {
  std::vector<data::SubjectRef> out;
  for (const auto& ref : ds.subjects(split)) {
    if (n > 0 && static_cast<int64_t>(out.size()) == n) break;
    if (ds.shards(split)[ref.shard].subject(ref.entry).n_tokens >= 2) out.push_back(ref);
  }
  return out;
}

}  // namespace chart
