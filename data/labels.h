// MEDS label files and prediction files.
//
// Labels (meds.LabelSchema): subject_id int64, prediction_time timestamp, and one value column:
// boolean_value bool (a binary task), or integer_value int64 / categorical_value string (a
// multi-class task) or float_value float32/float64 (a regression task), the last three read with
// read_label_set.
// A label path is one parquet file or a directory searched recursively for *.parquet.
// The oracle (`chart synth`'s true probabilities) lives outside the label files, which MEDS
// allows no extra column: for labels under .../labels/REST, the file or directory .../oracle/REST
// of subject_id, prediction_time, true_probability float64.
// Predictions (meds-evaluation's PredictionSchema): subject_id, prediction_time, boolean_value,
// predicted_boolean_value, predicted_boolean_probability float32.
#pragma once
#include <cstdint>
#include <filesystem>
#include <limits>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace chart::data {

struct LabelRow {
  int64_t subject_id = 0;
  int64_t prediction_time_us = 0;  // microseconds since 1970 (UTC)
  bool label = false;
  bool has_label = true;  // false: a prediction time without an outcome (chart predict)
  int32_t class_index = -1;  // multi-class labels: the row's class in LabelSet::classes
  double value = std::numeric_limits<double>::quiet_NaN();  // float labels: the target
  double true_probability = std::numeric_limits<double>::quiet_NaN();  // NaN when not known
};

// Boolean labels. Throws chart::Error naming the file (and row) on a missing column, a wrong type
// or a null; integer or categorical labels are an error that says which commands take them.
std::vector<LabelRow> read_labels(const std::filesystem::path& path);

// Labels of either kind. Multi-class labels name their classes in order: integers by value,
// strings by their bytes; each row's class_index points into them. A path whose files disagree
// on the value column, or a file with more than one, is a chart::Error naming the file.
struct LabelSet {
  std::string column = "boolean_value";  // boolean_value, integer_value, categorical_value or float_value
  std::vector<std::string> classes;      // empty for boolean labels
  std::vector<LabelRow> rows;
  bool multiclass() const { return !classes.empty(); }
  bool regression() const { return column == "float_value"; }
};
LabelSet read_label_set(const std::filesystem::path& path);

// Renumbers the rows into `classes` (a fine-tuned head's order). A class that is not among them
// is a chart::Error naming `what` (the labels' path), the row and the classes known.
void use_classes(LabelSet& set, const std::vector<std::string>& classes, const std::string& what);

// The task a label path names: a file's stem or a directory's name (labels/mortality_365d/ ->
// mortality_365d); "" for an empty path.
std::string task_name_of(const std::filesystem::path& labels);

// Prediction times (chart predict): subject_id and prediction_time of a label-shaped file or
// directory. A boolean_value column without nulls is carried along (predictions then hold it, as
// MEDS-DEV's evaluation wants); any other value column is ignored and the rows carry no label.
std::vector<LabelRow> read_prediction_times(const std::filesystem::path& path);

// The oracle path of a label path (see above); empty when the labels have none.
std::filesystem::path oracle_path(const std::filesystem::path& labels);
// (subject_id, prediction_time) -> true probability, from oracle_path(labels); empty when none.
using Oracle = std::map<std::pair<int64_t, int64_t>, double>;
Oracle read_oracle(const std::filesystem::path& labels);
// Sets each row's true_probability from the oracle; returns how many rows it found.
size_t add_true_probabilities(const Oracle& oracle, std::vector<LabelRow>& rows);

struct Prediction {
  LabelRow row;
  double probability = 0;
};

// Written through a temporary file and a rename. `threshold` gives predicted_boolean_value.
// Rows without a label (LabelRow::has_label) are written without the boolean_value column, which
// PredictionSchema allows; labelled and unlabelled rows are not mixed in one file.
void write_predictions(const std::filesystem::path& path, const std::vector<Prediction>& predictions,
                       double threshold);
// Reads a predictions file (as written above, or by another tool in that shape: the probability
// float32 or float64).
std::vector<Prediction> read_predictions(const std::filesystem::path& path);

// Multi-class predictions: subject_id, prediction_time, the label (`column`, int64 for
// integer_value, string for categorical_value; left out for unlabelled rows), predicted_<column>
// (the most probable class) and one float32 column per class, "predicted_probability//<class>".
// meds-evaluation has no multi-class schema; `by_class_dir`, when not empty, also gets one file
// per class, NN_<class>.parquet, in its PredictionSchema (this class vs the rest: boolean_value = the row is of it,
// predicted_boolean_probability = its probability, predicted_boolean_value = it is the most probable).
// Regression predictions: subject_id, prediction_time, float_value (the target, float32; left out
// for unlabelled rows) and predicted_float_value (float32).
// With a finite `half_width`, predicted_float_value_lower and _upper (float32) too: the prediction
// interval prediction -/+ half_width.
void write_value_predictions(const std::filesystem::path& path, const std::vector<LabelRow>& rows,
                             const std::vector<double>& predicted,
                             double half_width = std::numeric_limits<double>::quiet_NaN());

void write_class_predictions(const std::filesystem::path& path, const std::vector<LabelRow>& rows,
                             const std::vector<std::vector<double>>& probabilities, const std::string& column,
                             const std::vector<std::string>& classes, const std::filesystem::path& by_class_dir = {});

// Time-to-event predictions: subject_id, prediction_time, time_to_event_days (float32: to the event
// or the censoring) and event_observed (bool), both left out for unlabelled rows, and one float32
// column per horizon, "predicted_survival//<horizon>" (the probability of no event by then).
void write_survival_predictions(const std::filesystem::path& path, const std::vector<LabelRow>& rows,
                                const std::vector<std::string>& horizons,
                                const std::vector<std::vector<double>>& survival);

}  // namespace chart::data
