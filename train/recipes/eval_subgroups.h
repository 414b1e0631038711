// The subgroups `chart eval` reports (eval.subgroups), read from the token dataset the rows'
// subjects are in: "sex" is the subject's static GENDER// or SEX// token; "age" its age at
// prediction_time in eval.age_bands; any other entry is a code prefix ("RACE//"), the group the
// subject's static token with that prefix. A subject without such a token (or a subject the
// dataset lacks) is in no group of that dimension.
#pragma once
#include <functional>
#include <vector>

#include "core/config.h"
#include "train/report/subgroup_report.h"
#include "data/labels.h"
#include "data/token_dataset.h"
#include "train/validation/subgroups.h"

namespace chart {

std::vector<SubgroupDimension> subgroup_dimensions(const data::TokenDataset& ds, const std::vector<data::LabelRow>& rows,
                                                   const EvalConfig& cfg);

// The subgroup table of a multi-class, regression or time-to-event evaluation: `score` evaluates
// one group's rows (indices into the evaluated rows) into its cells under `columns`, its metrics
// and a warning when it is small.
struct GroupScore {
  std::vector<std::string> cells;
  Json metrics;
  std::string warning;
};
GroupTable evaluate_groups(const std::vector<SubgroupDimension>& dims, size_t n, std::vector<std::string> columns,
                           const std::function<GroupScore(const std::vector<size_t>& rows)>& score);

// A value with its 95% interval for a report cell: "0.812 (0.701&ndash;0.905)".
std::string cell_with_interval(double v, const Interval& ci);

// "<18", "18-40", ..., ">=80" for an age in years and the bands' lower edges.
std::string age_band(double years, const std::vector<std::string>& edges);

}  // namespace chart
