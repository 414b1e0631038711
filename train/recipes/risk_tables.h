// `chart generate`'s per-row and per-trajectory tables, beside predictions.parquet:
//   risk.parquet          one row per label row: both estimators (infer/risk.h) with their 95%
//                         intervals, and the number of samples
//   trajectories.parquet  (generate.trajectories) one row per sampled trajectory: sample index,
//                         hit, expected, tokens generated, truncated
// Both keyed by subject_id and prediction_time as the labels are; boolean_value is the label.
#pragma once
#include <filesystem>

#include "train/recipes/generate_run.h"

namespace chart {

void write_risk_table(const std::filesystem::path& file, const GenerateRun& r);
void write_trajectory_table(const std::filesystem::path& file, const GenerateRun& r);

}  // namespace chart
