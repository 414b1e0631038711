#include "train/recipes/risk_tables.h"

#include <optional>

#include "data/parquet_table.h"

namespace chart {
namespace {

struct KeyColumns {  // subject_id, prediction_time, boolean_value (when the rows have labels)
  arrow::Int64Builder* subject;
  arrow::TimestampBuilder* time;
  arrow::BooleanBuilder* label;
};

KeyColumns add_keys(data::TableBuilder& t, const GenerateRun& r) {
  KeyColumns k;
  k.subject = &t.add<arrow::Int64Builder>(arrow::field("subject_id", arrow::int64(), false));
  k.time = &t.add_timestamp("prediction_time", false);
  const bool labelled = r.examples.empty() || r.examples.front().row.has_label;
  k.label = labelled ? &t.add<arrow::BooleanBuilder>(arrow::field("boolean_value", arrow::boolean(), false)) : nullptr;
  return k;
}

void append_keys(data::TableBuilder& t, const KeyColumns& k, const data::LabelRow& row) {
  t.append(*k.subject, row.subject_id);
  t.append(*k.time, row.prediction_time_us);
  if (k.label) t.append(*k.label, row.label);
}

arrow::DoubleBuilder& add_double(data::TableBuilder& t, const char* name) {
  return t.add<arrow::DoubleBuilder>(arrow::field(name, arrow::float64(), false));
}

}  // namespace

void write_risk_table(const std::filesystem::path& file, const GenerateRun& r) {
  data::TableBuilder t(file);
  const KeyColumns keys = add_keys(t, r);
  auto& samples = t.add<arrow::Int64Builder>(arrow::field("samples", arrow::int64(), false));
  auto& hits = add_double(t, "hit_fraction");
  auto& hits_low = add_double(t, "hit_fraction_low");
  auto& hits_high = add_double(t, "hit_fraction_high");
  auto& expected = add_double(t, "expected");
  auto& expected_low = add_double(t, "expected_low");
  auto& expected_high = add_double(t, "expected_high");
  for (size_t x = 0; x < r.risks.size(); ++x) {
    const infer::RiskEstimate& e = r.risks[x];
    append_keys(t, keys, r.examples[x].row);
    t.append(samples, e.samples);
    t.append(hits, e.hit_fraction);
    t.append(hits_low, e.hit_low);
    t.append(hits_high, e.hit_high);
    t.append(expected, e.expected);
    t.append(expected_low, e.expected_low);
    t.append(expected_high, e.expected_high);
  }
  t.write();
}

void write_trajectory_table(const std::filesystem::path& file, const GenerateRun& r) {
  data::TableBuilder t(file);
  const KeyColumns keys = add_keys(t, r);
  auto& sample = t.add<arrow::Int64Builder>(arrow::field("sample", arrow::int64(), false));
  auto& hit = t.add<arrow::BooleanBuilder>(arrow::field("hit", arrow::boolean(), false));
  auto& expected = add_double(t, "expected");
  auto& generated = t.add<arrow::Int64Builder>(arrow::field("tokens_generated", arrow::int64(), false));
  auto& truncated = t.add<arrow::BooleanBuilder>(arrow::field("truncated", arrow::boolean(), false));
  for (size_t x = 0; x < r.examples.size(); ++x)
    for (int64_t k = 0; k < r.K; ++k) {
      const infer::TrajectoryResult& traj = r.results[x * size_t(r.K) + size_t(k)];
      append_keys(t, keys, r.examples[x].row);
      t.append(sample, k);
      t.append(hit, traj.hit);
      t.append(expected, traj.expected);
      t.append(generated, traj.generated);
      t.append(truncated, traj.truncated);
    }
  t.write();
}

namespace {

// The value a quantile token stands for after code `code`: the middle of its bin.
std::optional<float> bin_value(const data::Vocab& vocab, uint32_t code, uint32_t quantile, uint32_t q1) {
  const auto& cuts = vocab.cuts(code);
  if (cuts.empty()) return std::nullopt;
  const auto bin = static_cast<int64_t>(quantile) - q1;  // 0-based: bin b covers [cuts[b-1], cuts[b])
  const auto n = static_cast<int64_t>(cuts.size());
  if (bin <= 0) return cuts.front();
  if (bin >= n) return cuts.back();
  return 0.5f * (cuts[size_t(bin - 1)] + cuts[size_t(bin)]);
}

}  // namespace

void write_trajectory_events(const std::filesystem::path& file, const GenerateRun& r) {
  const data::Vocab& vocab = r.ds.vocab();
  const uint32_t q1 = vocab.find("Q1").value_or(0);
  data::TableBuilder t(file);
  auto& subject = t.add<arrow::Int64Builder>(arrow::field("subject_id", arrow::int64(), false));
  auto& time = t.add_timestamp("time", true);
  auto& code = t.add<arrow::StringBuilder>(arrow::field("code", arrow::utf8(), false));
  auto& value = t.add<arrow::FloatBuilder>(arrow::field("numeric_value", arrow::float32(), true));
  auto& ptime = t.add_timestamp("prediction_time", false);
  auto& sample = t.add<arrow::Int64Builder>(arrow::field("sample", arrow::int64(), false));
  for (size_t x = 0; x < r.examples.size(); ++x)
    for (int64_t k = 0; k < r.K; ++k) {
      const auto& tokens = r.results[x * size_t(r.K) + size_t(k)].sampled;
      int64_t clock = r.clock_start_us[x];
      for (size_t i = 0; i < tokens.size(); ++i) {
        const auto id = static_cast<uint32_t>(tokens[i]);
        clock += r.roles.advance_us[id];
        if (vocab.kind(id) != data::TokenKind::kCode) continue;
        std::optional<float> v;
        if (i + 1 < tokens.size() && vocab.kind(uint32_t(tokens[i + 1])) == data::TokenKind::kQuantile)
          v = bin_value(vocab, id, uint32_t(tokens[i + 1]), q1);
        t.append(subject, r.examples[x].row.subject_id);
        t.append(time, clock);
        t.append(code, vocab.token(id));
        t.append_or_null(value, v);
        t.append(ptime, r.examples[x].row.prediction_time_us);
        t.append(sample, k);
      }
    }
  t.write();
}

}  // namespace chart
