#include "data/labels.h"

#include <arrow/api.h>
#include <arrow/io/api.h>
#include <parquet/arrow/reader.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/files.h"
#include "data/parquet_table.h"

namespace chart::data {
namespace fs = std::filesystem;
namespace {

std::vector<fs::path> parquet_files(const fs::path& path) {
  if (!fs::exists(path)) fail("labels {} do not exist", path.string());
  if (!fs::is_directory(path)) return {path};
  std::vector<fs::path> files;
  for (const auto& e : fs::recursive_directory_iterator(path))
    if (e.is_regular_file() && e.path().extension() == ".parquet") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  if (files.empty()) fail("labels directory {} holds no .parquet file", path.string());
  return files;
}


// The column `name` as one array of `type`, or an error naming the file.
std::shared_ptr<arrow::Array> column(const arrow::Table& t, const std::string& name, arrow::Type::type type,
                                     const fs::path& file) {
  auto c = t.GetColumnByName(name);
  if (!c) fail("{}: no column '{}' (columns: {})", file.string(), name, fmt::join(t.ColumnNames(), ", "));
  if (c->type()->id() != type)
    fail("{}: column '{}' has type {}, expected {}", file.string(), name, c->type()->ToString(),
         arrow::internal::ToString(type));
  if (c->num_chunks() == 0) return nullptr;
  return c->chunk(0);
}

void no_nulls(const std::shared_ptr<arrow::Array>& a, const std::string& name, const fs::path& file) {
  if (!a || a->null_count() == 0) return;
  for (int64_t i = 0; i < a->length(); ++i)
    if (a->IsNull(i)) fail("{} row {}: '{}' is null", file.string(), i, name);
}

int64_t to_micros(const arrow::TimestampArray& a, int64_t i) {
  switch (static_cast<const arrow::TimestampType&>(*a.type()).unit()) {
    case arrow::TimeUnit::SECOND: return a.Value(i) * 1000000;
    case arrow::TimeUnit::MILLI: return a.Value(i) * 1000;
    case arrow::TimeUnit::MICRO: return a.Value(i);
    case arrow::TimeUnit::NANO: return a.Value(i) / 1000;
  }
  return a.Value(i);
}

// Rows shared by labels and predictions: subject_id, prediction_time, and, unless `times_only`,
// boolean_value.
std::vector<LabelRow> read_label_columns(const arrow::Table& t, const fs::path& file, bool times_only = false) {
  auto sid = column(t, "subject_id", arrow::Type::INT64, file);
  auto ptime = column(t, "prediction_time", arrow::Type::TIMESTAMP, file);
  if (times_only && !(t.GetColumnByName("boolean_value") && t.GetColumnByName("boolean_value")->null_count() == 0)) {
    no_nulls(sid, "subject_id", file);
    no_nulls(ptime, "prediction_time", file);
    std::vector<LabelRow> rows(static_cast<size_t>(t.num_rows()));
    for (int64_t i = 0; i < t.num_rows(); ++i) {
      rows[static_cast<size_t>(i)].subject_id = static_cast<const arrow::Int64Array&>(*sid).Value(i);
      rows[static_cast<size_t>(i)].prediction_time_us = to_micros(static_cast<const arrow::TimestampArray&>(*ptime), i);
      rows[static_cast<size_t>(i)].has_label = false;
    }
    return rows;
  }
  if (!t.GetColumnByName("boolean_value")) {
    for (const char* other : {"integer_value", "float_value", "categorical_value"})
      if (t.GetColumnByName(other))
        throw Error(fmt::format("{}: labels with '{}' are not supported yet: only boolean_value", file.string(), other),
                    "binarise the label (e.g. value > threshold) into a boolean_value column");
  }
  auto value = column(t, "boolean_value", arrow::Type::BOOL, file);
  no_nulls(sid, "subject_id", file);
  no_nulls(ptime, "prediction_time", file);
  no_nulls(value, "boolean_value", file);
  std::vector<LabelRow> rows(static_cast<size_t>(t.num_rows()));
  if (t.num_rows() == 0) return rows;
  auto& s = static_cast<const arrow::Int64Array&>(*sid);
  auto& p = static_cast<const arrow::TimestampArray&>(*ptime);
  auto& v = static_cast<const arrow::BooleanArray&>(*value);
  for (int64_t i = 0; i < t.num_rows(); ++i) {
    LabelRow& r = rows[static_cast<size_t>(i)];
    r.subject_id = s.Value(i);
    r.prediction_time_us = to_micros(p, i);
    r.label = v.Value(i);
  }
  return rows;
}

// A float32 or float64 column as doubles (meds-evaluation writes float32, other tools float64).
std::vector<double> float_column(const arrow::Table& t, const std::string& name, const fs::path& file) {
  auto c = t.GetColumnByName(name);
  if (!c) fail("{}: no column '{}' (columns: {})", file.string(), name, fmt::join(t.ColumnNames(), ", "));
  const auto id = c->type()->id();
  if (id != arrow::Type::FLOAT && id != arrow::Type::DOUBLE)
    fail("{}: column '{}' has type {}, expected float or double", file.string(), name, c->type()->ToString());
  std::vector<double> out(static_cast<size_t>(t.num_rows()));
  if (c->num_chunks() == 0) return out;
  const auto a = c->chunk(0);
  no_nulls(a, name, file);
  for (int64_t i = 0; i < a->length(); ++i)
    out[static_cast<size_t>(i)] = id == arrow::Type::FLOAT ? static_cast<const arrow::FloatArray&>(*a).Value(i)
                                                           : static_cast<const arrow::DoubleArray&>(*a).Value(i);
  return out;
}

}  // namespace

std::vector<LabelRow> read_labels(const fs::path& path) {
  std::vector<LabelRow> all;
  for (const auto& file : parquet_files(path)) {
    auto rows = read_label_columns(*read_parquet_table(file), file);
    all.insert(all.end(), rows.begin(), rows.end());
  }
  if (all.empty()) fail("labels {} hold no rows", path.string());
  return all;
}

std::string task_name_of(const fs::path& labels) {
  fs::path p = labels.lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  return p.has_extension() ? p.stem().string() : p.filename().string();
}

std::vector<LabelRow> read_prediction_times(const fs::path& path) {
  std::vector<LabelRow> all;
  for (const auto& file : parquet_files(path)) {
    auto rows = read_label_columns(*read_parquet_table(file), file, true);
    all.insert(all.end(), rows.begin(), rows.end());
  }
  if (all.empty()) fail("prediction times {} hold no rows", path.string());
  return all;
}

fs::path oracle_path(const fs::path& labels) {
  // The last "labels" component of the path becomes "oracle": labels/<task>/... -> oracle/<task>/...
  const fs::path p = fs::absolute(labels).lexically_normal();
  std::vector<fs::path> parts(p.begin(), p.end());
  for (size_t i = parts.size(); i-- > 0;) {
    if (parts[i] != "labels") continue;
    fs::path o;
    for (size_t j = 0; j < parts.size(); ++j) o /= j == i ? fs::path("oracle") : parts[j];
    return fs::exists(o) ? o : fs::path();
  }
  return {};
}

Oracle read_oracle(const fs::path& labels) {
  Oracle oracle;
  const fs::path path = oracle_path(labels);
  if (path.empty()) return oracle;
  for (const auto& file : parquet_files(path)) {
    auto t = read_parquet_table(file);
    auto sid = column(*t, "subject_id", arrow::Type::INT64, file);
    auto ptime = column(*t, "prediction_time", arrow::Type::TIMESTAMP, file);
    no_nulls(sid, "subject_id", file);
    no_nulls(ptime, "prediction_time", file);
    const std::vector<double> p = float_column(*t, "true_probability", file);
    for (int64_t i = 0; i < t->num_rows(); ++i)
      oracle[{static_cast<const arrow::Int64Array&>(*sid).Value(i),
              to_micros(static_cast<const arrow::TimestampArray&>(*ptime), i)}] = p[static_cast<size_t>(i)];
  }
  return oracle;
}

size_t add_true_probabilities(const Oracle& oracle, std::vector<LabelRow>& rows) {
  size_t found = 0;
  for (auto& r : rows) {
    auto it = oracle.find({r.subject_id, r.prediction_time_us});
    if (it == oracle.end()) continue;
    r.true_probability = it->second;
    ++found;
  }
  return found;
}

void write_predictions(const fs::path& path, const std::vector<Prediction>& preds, double threshold) {
  TableBuilder t(path);
  auto& sid = t.add<arrow::Int64Builder>(arrow::field("subject_id", arrow::int64(), false));
  auto& ptime = t.add_timestamp("prediction_time", false);
  const bool labelled = preds.empty() || preds.front().row.has_label;
  for (const auto& p : preds)
    if (p.row.has_label != labelled) fail("{}: labelled and unlabelled rows in one predictions file", path.string());
  arrow::BooleanBuilder* value =
      labelled ? &t.add<arrow::BooleanBuilder>(arrow::field("boolean_value", arrow::boolean(), false)) : nullptr;
  auto& predicted = t.add<arrow::BooleanBuilder>(arrow::field("predicted_boolean_value", arrow::boolean()));
  // float32: meds-evaluation's PredictionSchema
  auto& prob = t.add<arrow::FloatBuilder>(arrow::field("predicted_boolean_probability", arrow::float32()));
  for (const auto& p : preds) {
    t.append(sid, p.row.subject_id);
    t.append(ptime, p.row.prediction_time_us);
    if (value) t.append(*value, p.row.label);
    const float q = static_cast<float>(p.probability);  // the value written decides the predicted value
    t.append(predicted, q >= threshold);
    t.append(prob, q);
  }
  t.write();
}

std::vector<Prediction> read_predictions(const fs::path& path) {
  if (!fs::is_regular_file(path)) fail("predictions {} do not exist", path.string());
  auto table = read_parquet_table(path);
  auto rows = read_label_columns(*table, path);
  const std::vector<double> prob = float_column(*table, "predicted_boolean_probability", path);
  std::vector<Prediction> out(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    out[i].row = rows[i];
    out[i].probability = prob[i];
    if (!(out[i].probability >= 0 && out[i].probability <= 1))
      fail("{} row {}: predicted_boolean_probability {} is not in [0, 1]", path.string(), i, out[i].probability);
  }
  return out;
}

}  // namespace chart::data
