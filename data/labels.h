// MEDS label files and prediction files.
//
// Labels (meds.LabelSchema): subject_id int64, prediction_time timestamp, boolean_value bool;
// a `true_probability` float64 column (written by `chart synth`) is read when present. A label
// path is one parquet file or a directory searched recursively for *.parquet.
// Predictions (the meds-evaluation shape): subject_id, prediction_time, boolean_value,
// predicted_boolean_value, predicted_boolean_probability.
#pragma once
#include <cstdint>
#include <filesystem>
#include <limits>
#include <vector>

namespace chart::data {

struct LabelRow {
  int64_t subject_id = 0;
  int64_t prediction_time_us = 0;  // microseconds since 1970 (UTC)
  bool label = false;
  double true_probability = std::numeric_limits<double>::quiet_NaN();  // NaN when not known
};

// Throws chart::Error naming the file (and row) on a missing column, a wrong type or a null.
std::vector<LabelRow> read_labels(const std::filesystem::path& path);

struct Prediction {
  LabelRow row;
  double probability = 0;
};

// Written through a temporary file and a rename. `threshold` gives predicted_boolean_value.
void write_predictions(const std::filesystem::path& path, const std::vector<Prediction>& predictions,
                       double threshold);
// Reads a predictions file (as written above, or by another tool in that shape).
std::vector<Prediction> read_predictions(const std::filesystem::path& path);

}  // namespace chart::data
