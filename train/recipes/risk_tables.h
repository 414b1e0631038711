// `chart generate`'s per-row and per-trajectory tables, beside predictions.parquet:
//   risk.parquet          one row per label row: both estimators (infer/risk.h) with their 95%
//                         intervals, and the number of samples
//   trajectories.parquet  (generate.trajectories) one row per sampled trajectory: sample index,
//                         hit, expected, tokens generated, truncated
//   trajectory_events.parquet  (generate.trajectories) what the trajectories sampled, as MEDS
//                         data rows (subject_id, time, code, numeric_value; see below) plus
//                         prediction_time and sample: a sampled future is a timeline that MEDS
//                         tools (ACES, meds-evaluation's readers) read as they read real data
// Both keyed by subject_id and prediction_time as the labels are; boolean_value is the label.
#pragma once
#include <filesystem>

#include "train/recipes/generate_run.h"

namespace chart {

void write_risk_table(const std::filesystem::path& file, const GenerateRun& r);
void write_trajectory_table(const std::filesystem::path& file, const GenerateRun& r);
// One row per sampled code: its time is the trajectory's clock (the prompt's last event moved by
// each sampled time-interval token, as the engine moves it); a quantile token gives the code
// before it a numeric_value, the middle of the sampled bin (its inner edge for the open first and
// last bins); time and special tokens make no row of their own.
void write_trajectory_events(const std::filesystem::path& file, const GenerateRun& r);

}  // namespace chart
