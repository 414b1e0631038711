#include "data/labels.h"

#include <arrow/api.h>
#include <arrow/io/api.h>
#include <parquet/arrow/reader.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <string>

#include <fmt/ranges.h>

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
    for (const char* other : {"integer_value", "categorical_value"})
      if (t.GetColumnByName(other))
        throw Error(fmt::format("{}: labels with '{}' are multi-class; this command takes boolean_value labels",
                                file.string(), other),
                    "chart finetune and chart eval take multi-class labels; for this command binarise the label "
                    "into a boolean_value column");
    if (t.GetColumnByName("float_value"))
      throw Error(fmt::format("{}: labels with 'float_value' (regression) are not supported yet", file.string()),
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

// The one value column a label file holds. Columns that are null throughout do not count: ACES
// writes all four, filling the one its task defines.
std::string value_column(const arrow::Table& t, const fs::path& file) {
  std::vector<std::string> present;
  for (const char* c : {"boolean_value", "integer_value", "float_value", "categorical_value"})
    if (auto col = t.GetColumnByName(c); col && (col->null_count() < col->length() || t.num_rows() == 0))
      present.push_back(c);
  if (t.num_rows() == 0 && !present.empty()) return present.front();  // an empty file: its first column
  if (present.size() > 1)
    fail("{}: more than one label column ({}): a label file holds one task's values", file.string(),
         fmt::join(present, ", "));
  if (present.empty())
    fail("{}: no label column (boolean_value, integer_value or categorical_value; columns: {})", file.string(),
         fmt::join(t.ColumnNames(), ", "));
  return present[0];
}

// Rows of a multi-class label file; values[i] is row i's class as text.
std::vector<LabelRow> read_class_columns(const arrow::Table& t, const fs::path& file, const std::string& column_name,
                                         std::vector<std::string>& values) {
  auto sid = column(t, "subject_id", arrow::Type::INT64, file);
  auto ptime = column(t, "prediction_time", arrow::Type::TIMESTAMP, file);
  const bool integer = column_name == "integer_value";
  auto value = column(t, column_name, integer ? arrow::Type::INT64 : arrow::Type::STRING, file);
  no_nulls(sid, "subject_id", file);
  no_nulls(ptime, "prediction_time", file);
  no_nulls(value, column_name, file);
  std::vector<LabelRow> rows(static_cast<size_t>(t.num_rows()));
  for (int64_t i = 0; i < t.num_rows(); ++i) {
    LabelRow& r = rows[static_cast<size_t>(i)];
    r.subject_id = static_cast<const arrow::Int64Array&>(*sid).Value(i);
    r.prediction_time_us = to_micros(static_cast<const arrow::TimestampArray&>(*ptime), i);
    values.push_back(integer ? std::to_string(static_cast<const arrow::Int64Array&>(*value).Value(i))
                             : static_cast<const arrow::StringArray&>(*value).GetString(i));
  }
  return rows;
}

// Rows of a regression label file: float_value (float32, or float64 from other tools), finite.
std::vector<LabelRow> read_value_columns(const arrow::Table& t, const fs::path& file) {
  auto sid = column(t, "subject_id", arrow::Type::INT64, file);
  auto ptime = column(t, "prediction_time", arrow::Type::TIMESTAMP, file);
  no_nulls(sid, "subject_id", file);
  no_nulls(ptime, "prediction_time", file);
  const std::vector<double> v = float_column(t, "float_value", file);
  std::vector<LabelRow> rows(static_cast<size_t>(t.num_rows()));
  for (int64_t i = 0; i < t.num_rows(); ++i) {
    LabelRow& r = rows[static_cast<size_t>(i)];
    r.subject_id = static_cast<const arrow::Int64Array&>(*sid).Value(i);
    r.prediction_time_us = to_micros(static_cast<const arrow::TimestampArray&>(*ptime), i);
    r.value = v[static_cast<size_t>(i)];
    if (!std::isfinite(r.value)) fail("{} row {}: float_value {} is not finite", file.string(), i, r.value);
  }
  return rows;
}

// Integers by value ("-1" < "2" < "10"), other text by its bytes.
bool class_before(const std::string& a, const std::string& b, bool integer) {
  return integer ? std::stoll(a) < std::stoll(b) : a < b;
}

}  // namespace

LabelSet read_label_set(const fs::path& path) {
  LabelSet set;
  std::vector<std::string> values;
  bool first = true;
  for (const auto& file : parquet_files(path)) {
    auto t = read_parquet_table(file);
    const std::string c = value_column(*t, file);
    if (!first && c != set.column)
      fail("{}: labels in '{}', but other files of {} hold '{}'", file.string(), c, path.string(), set.column);
    set.column = c, first = false;
    auto rows = c == "boolean_value" ? read_label_columns(*t, file)
                : c == "float_value"     ? read_value_columns(*t, file)
                                         : read_class_columns(*t, file, c, values);
    set.rows.insert(set.rows.end(), rows.begin(), rows.end());
  }
  if (set.rows.empty()) fail("labels {} hold no rows", path.string());
  if (set.column == "boolean_value" || set.regression()) return set;
  set.classes = values;
  const bool integer = set.column == "integer_value";
  std::sort(set.classes.begin(), set.classes.end(), [&](auto& a, auto& b) { return class_before(a, b, integer); });
  set.classes.erase(std::unique(set.classes.begin(), set.classes.end()), set.classes.end());
  for (size_t i = 0; i < set.rows.size(); ++i)
    set.rows[i].class_index = static_cast<int32_t>(
        std::lower_bound(set.classes.begin(), set.classes.end(), values[i],
                         [&](auto& a, auto& b) { return class_before(a, b, integer); }) - set.classes.begin());
  return set;
}

void use_classes(LabelSet& set, const std::vector<std::string>& classes, const std::string& what) {
  std::map<std::string, int32_t> index;
  for (size_t i = 0; i < classes.size(); ++i) index[classes[i]] = static_cast<int32_t>(i);
  for (size_t i = 0; i < set.rows.size(); ++i) {
    const std::string& name = set.classes[size_t(set.rows[i].class_index)];
    auto it = index.find(name);
    if (it == index.end())
      throw Error(fmt::format("{}: row {} has class '{}', which the model does not know (its classes: {})", what, i,
                              name, fmt::join(classes, ", ")),
                  "evaluate on labels of the classes the model was fine-tuned on");
    set.rows[i].class_index = it->second;
  }
  set.classes = classes;
}

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

namespace {

// A class name as a file name: characters other than letters, digits, '.', '-' and '_' become '_'.
std::string file_safe(const std::string& name) {
  std::string out = name;
  for (char& c : out)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_')) c = '_';
  return out.empty() ? "_" : out;
}

int argmax_of(const std::vector<double>& p) {
  return static_cast<int>(std::max_element(p.begin(), p.end()) - p.begin());
}

}  // namespace

void write_value_predictions(const fs::path& path, const std::vector<LabelRow>& rows, const std::vector<double>& predicted,
                             double half_width) {
  if (rows.size() != predicted.size()) fail("{}: {} rows but {} predictions", path.string(), rows.size(), predicted.size());
  const bool labelled = rows.empty() || rows.front().has_label;
  TableBuilder t(path);
  auto& sid = t.add<arrow::Int64Builder>(arrow::field("subject_id", arrow::int64(), false));
  auto& ptime = t.add_timestamp("prediction_time", false);
  arrow::FloatBuilder* value = labelled ? &t.add<arrow::FloatBuilder>(arrow::field("float_value", arrow::float32(), false)) : nullptr;
  auto& pred = t.add<arrow::FloatBuilder>(arrow::field("predicted_float_value", arrow::float32(), false));
  const bool interval = std::isfinite(half_width);
  arrow::FloatBuilder* lower = interval ? &t.add<arrow::FloatBuilder>(arrow::field("predicted_float_value_lower", arrow::float32(), false)) : nullptr;
  arrow::FloatBuilder* upper = interval ? &t.add<arrow::FloatBuilder>(arrow::field("predicted_float_value_upper", arrow::float32(), false)) : nullptr;
  for (size_t i = 0; i < rows.size(); ++i) {
    if (rows[i].has_label != labelled) fail("{}: labelled and unlabelled rows in one predictions file", path.string());
    t.append(sid, rows[i].subject_id);
    t.append(ptime, rows[i].prediction_time_us);
    if (value) t.append(*value, static_cast<float>(rows[i].value));
    t.append(pred, static_cast<float>(predicted[i]));
    if (interval) t.append(*lower, static_cast<float>(predicted[i] - half_width)), t.append(*upper, static_cast<float>(predicted[i] + half_width));
  }
  t.write();
}

void write_class_predictions(const fs::path& path, const std::vector<LabelRow>& rows,
                             const std::vector<std::vector<double>>& probabilities, const std::string& column_name,
                             const std::vector<std::string>& classes, const fs::path& by_class_dir) {
  if (rows.size() != probabilities.size()) fail("{}: {} rows but {} predictions", path.string(), rows.size(), probabilities.size());
  const bool integer = column_name == "integer_value";
  const bool labelled = rows.empty() || rows.front().has_label;
  TableBuilder t(path);
  auto& sid = t.add<arrow::Int64Builder>(arrow::field("subject_id", arrow::int64(), false));
  auto& ptime = t.add_timestamp("prediction_time", false);
  arrow::Int64Builder* ilabel = nullptr;
  arrow::StringBuilder* slabel = nullptr;
  if (labelled && integer) ilabel = &t.add<arrow::Int64Builder>(arrow::field(column_name, arrow::int64(), false));
  if (labelled && !integer) slabel = &t.add<arrow::StringBuilder>(arrow::field(column_name, arrow::utf8(), false));
  arrow::Int64Builder* ipred = nullptr;
  arrow::StringBuilder* spred = nullptr;
  if (integer) ipred = &t.add<arrow::Int64Builder>(arrow::field("predicted_" + column_name, arrow::int64(), false));
  else spred = &t.add<arrow::StringBuilder>(arrow::field("predicted_" + column_name, arrow::utf8(), false));
  std::vector<arrow::FloatBuilder*> prob;
  for (const auto& c : classes)
    prob.push_back(&t.add<arrow::FloatBuilder>(arrow::field("predicted_probability//" + c, arrow::float32(), false)));
  for (size_t i = 0; i < rows.size(); ++i) {
    const LabelRow& r = rows[i];
    if (r.has_label != labelled) fail("{}: labelled and unlabelled rows in one predictions file", path.string());
    t.append(sid, r.subject_id);
    t.append(ptime, r.prediction_time_us);
    const std::string& truth = labelled ? classes.at(size_t(r.class_index)) : classes.front();
    const std::string& guess = classes.at(size_t(argmax_of(probabilities[i])));
    if (ilabel) t.append(*ilabel, std::stoll(truth));
    if (slabel) t.append(*slabel, truth);
    if (ipred) t.append(*ipred, std::stoll(guess));
    if (spred) t.append(*spred, guess);
    for (size_t c = 0; c < classes.size(); ++c) t.append(*prob[c], static_cast<float>(probabilities[i][c]));
  }
  t.write();
  if (by_class_dir.empty() || !labelled) return;
  fs::create_directories(by_class_dir);
  for (size_t c = 0; c < classes.size(); ++c) {
    TableBuilder b(by_class_dir / fmt::format("{:02d}_{}.parquet", c, file_safe(classes[c])));  // unique, in class order
    auto& bs = b.add<arrow::Int64Builder>(arrow::field("subject_id", arrow::int64(), false));
    auto& bt = b.add_timestamp("prediction_time", false);
    auto& bv = b.add<arrow::BooleanBuilder>(arrow::field("boolean_value", arrow::boolean(), false));
    auto& bp = b.add<arrow::BooleanBuilder>(arrow::field("predicted_boolean_value", arrow::boolean()));
    auto& bq = b.add<arrow::FloatBuilder>(arrow::field("predicted_boolean_probability", arrow::float32()));
    for (size_t i = 0; i < rows.size(); ++i) {
      b.append(bs, rows[i].subject_id);
      b.append(bt, rows[i].prediction_time_us);
      b.append(bv, rows[i].class_index == static_cast<int32_t>(c));
      b.append(bp, argmax_of(probabilities[i]) == static_cast<int>(c));
      b.append(bq, static_cast<float>(probabilities[i][c]));
    }
    b.write();
  }
}

void write_survival_predictions(const fs::path& path, const std::vector<LabelRow>& rows,
                                const std::vector<std::string>& horizons, const std::vector<std::vector<double>>& survival) {
  if (rows.size() != survival.size()) fail("{}: {} rows but {} predictions", path.string(), rows.size(), survival.size());
  const bool labelled = rows.empty() || rows.front().has_label;
  TableBuilder t(path);
  auto& sid = t.add<arrow::Int64Builder>(arrow::field("subject_id", arrow::int64(), false));
  auto& ptime = t.add_timestamp("prediction_time", false);
  arrow::FloatBuilder* days = nullptr;
  arrow::BooleanBuilder* seen = nullptr;
  if (labelled) {
    days = &t.add<arrow::FloatBuilder>(arrow::field("time_to_event_days", arrow::float32(), false));
    seen = &t.add<arrow::BooleanBuilder>(arrow::field("event_observed", arrow::boolean(), false));
  }
  std::vector<arrow::FloatBuilder*> s;
  for (const auto& h : horizons)
    s.push_back(&t.add<arrow::FloatBuilder>(arrow::field("predicted_survival//" + h, arrow::float32(), false)));
  for (size_t i = 0; i < rows.size(); ++i) {
    if (rows[i].has_label != labelled) fail("{}: labelled and unlabelled rows in one predictions file", path.string());
    if (survival[i].size() != horizons.size()) fail("{}: row {}: {} survival values for {} horizons", path.string(), i, survival[i].size(), horizons.size());
    t.append(sid, rows[i].subject_id);
    t.append(ptime, rows[i].prediction_time_us);
    if (days) t.append(*days, static_cast<float>(rows[i].value));
    if (seen) t.append(*seen, rows[i].label);
    for (size_t h = 0; h < horizons.size(); ++h) t.append(*s[h], static_cast<float>(survival[i][h]));
  }
  t.write();
}

}  // namespace chart::data
