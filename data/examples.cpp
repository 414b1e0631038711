#include "data/examples.h"

#include <cmath>

#include <unordered_map>

#include "core/error.h"
#include "core/log.h"
#include "core/time.h"

namespace chart::data {

ExampleSplits make_examples(const TokenDataset& ds, const std::vector<LabelRow>& labels, const std::string& labels_path) {
  struct Where {
    const char* split;
    SubjectRef ref;
  };
  static const char* kSplits[] = {"train", "tuning", "held_out"};
  std::unordered_map<int64_t, Where> where;
  for (const char* split : kSplits) {
    const auto& shards = ds.shards(split);
    for (const SubjectRef& ref : ds.subjects(split))
      where[shards[ref.shard].subject(ref.entry).subject_id] = {split, ref};
  }
  ExampleSplits out;
  for (const char* split : kSplits) out.by_split[split];
  for (const LabelRow& row : labels) {
    auto it = where.find(row.subject_id);
    if (it == where.end()) {
      ++out.unknown_subjects;
      continue;
    }
    const TokenShard& sh = ds.shards(it->second.split)[it->second.ref.shard];
    const SubjectEntry& e = sh.subject(it->second.ref.entry);
    const int64_t* times = sh.times() + e.token_start;
    uint32_t n = 0;
    while (n < e.n_tokens && times[n] <= row.prediction_time_us) ++n;  // stop at the first later token
    if (n == 0) {
      ++out.empty_prefix;
      continue;
    }
    if (n == e.n_tokens && row.prediction_time_us > times[n - 1]) ++out.after_record;
    out.by_split[it->second.split].push_back({row, it->second.split, it->second.ref, n});
  }
  if (out.unknown_subjects > kMaxUnknownSubjectFraction * static_cast<double>(labels.size()))
    throw Error(fmt::format("{}: {} of {} label rows ({:.0f}%) name subjects that are not in {}", labels_path,
                            out.unknown_subjects, labels.size(), 100.0 * out.unknown_subjects / labels.size(),
                            ds.dir().string()),
                "these labels look made for another dataset: pass the token dataset prepared from their MEDS data "
                "(data.dir), or labels of this dataset's subjects");
  const int64_t outside = out.empty_prefix + out.after_record;
  if (outside > kMaxUnknownSubjectFraction * static_cast<double>(labels.size() - out.unknown_subjects))
    throw Error(fmt::format("{}: {} of {} label rows predict outside their subject's record in {} ({} before its first "
                            "event, {} after its last)", labels_path, outside, labels.size() - out.unknown_subjects,
                            ds.dir().string(), out.empty_prefix, out.after_record),
                "these labels look made for another dataset whose subject ids happen to match: pass the token dataset "
                "prepared from their MEDS data (data.dir)");
  if (out.after_record > 0)
    warn("{}: {} label rows predict after their subject's last event in {} (the whole record is seen)", labels_path,
         out.after_record, ds.dir().string());
  if (out.unknown_subjects > 0)
    warn("{}: {} of {} label rows name subjects that are not in {} (dropped)", labels_path, out.unknown_subjects,
         labels.size(), ds.dir().string());
  if (out.empty_prefix > 0)
    warn("{} label rows predict before the subject's first event (dropped)", out.empty_prefix);
  return out;
}

ExampleBatch empty_batch(int64_t B, int64_t L) {
  ExampleBatch b;
  b.tokens = torch::zeros({B, L}, torch::kInt64);  // [PAD] is 0
  b.ages = torch::zeros({B, L}, torch::kFloat32);
  b.segments = torch::full({B, L}, -1, torch::kInt32);
  b.last_index = torch::empty({B}, torch::kInt64);
  b.labels = torch::zeros({B}, torch::kFloat32);
  b.events = torch::zeros({B}, torch::kFloat32);
  return b;
}

void fill_row(ExampleBatch& b, int64_t r, const uint32_t* tokens, const int64_t* times, int64_t n_tokens,
              int64_t birth_us) {
  const int64_t L = b.tokens.size(1);
  const int64_t n = std::min<int64_t>(n_tokens, L);
  const int64_t from = n_tokens - n;
  int64_t* tok = b.tokens.data_ptr<int64_t>() + r * L;
  float* age = b.ages.data_ptr<float>() + r * L;
  int32_t* seg = b.segments.data_ptr<int32_t>() + r * L;
  for (int64_t j = 0; j < n; ++j) {
    tok[j] = tokens[from + j];
    age[j] = age_years(times[from + j], birth_us);
    seg[j] = 0;
  }
  b.last_index[r] = n - 1;
}

ExampleBatch collate(const TokenDataset& ds, const std::vector<Example>& examples, size_t begin, size_t end,
                     int64_t L) {
  ExampleBatch b = empty_batch(static_cast<int64_t>(end - begin), L);
  for (int64_t r = 0; r < b.tokens.size(0); ++r) {
    const Example& ex = examples[begin + static_cast<size_t>(r)];
    const TokenShard& sh = ds.shards(ex.split)[ex.ref.shard];
    const SubjectEntry& e = sh.subject(ex.ref.entry);
    fill_row(b, r, sh.tokens() + e.token_start, sh.times() + e.token_start, ex.n_tokens, e.birth_us);
    b.labels[r] = ex.row.class_index >= 0      ? float(ex.row.class_index)
                  : std::isfinite(ex.row.value) ? float(ex.row.value)
                  : ex.row.label                ? 1.0f
                                                : 0.0f;
    b.events[r] = ex.row.label ? 1.0f : 0.0f;
  }
  return b;
}

}  // namespace chart::data
