// Metrics by subgroup: every metric of `chart eval`, with its bootstrap interval, for each group
// of each dimension (sex, an age band at prediction time, a static code family), and the largest
// AUROC gap between the groups of a dimension that are not small. A group too small to say much is reported with a
// warning, never hidden: fewer than kFewCases positives (or negatives).
#pragma once
#include <map>
#include <string>
#include <vector>

#include "train/validation/binary_metrics.h"

namespace chart {

inline constexpr int64_t kFewSubgroupCases = 10;

// One dimension: its name ("sex") and each row's group in it ("GENDER//F"); rows whose group is
// "" are in none (their subject's value is unknown) and are counted as such.
struct SubgroupDimension {
  std::string name;
  std::vector<std::string> group_of_row;
};

// A dimension's groups with their rows (by group name) and how many of its n rows are in none;
// chart::Error when the dimension does not have n rows.
struct DimensionGroups {
  std::map<std::string, std::vector<size_t>> rows;
  int64_t unassigned = 0;
};
DimensionGroups groups_of(const SubgroupDimension& d, size_t n);

struct SubgroupResult {
  std::string dimension, group;
  BinaryEvaluation eval;
  std::string warning;  // "" unless the group is small
};

struct SubgroupGap {  // the largest AUROC difference between two groups that are not small
  std::string dimension, lowest, highest;
  double lowest_auroc = 0, highest_auroc = 0, auroc_gap = 0;
};

struct SubgroupReport {
  std::vector<SubgroupResult> groups;  // by dimension, then group name
  std::vector<SubgroupGap> gaps;       // one per dimension with two groups or more that are not small
  std::vector<std::pair<std::string, int64_t>> unassigned;  // per dimension: rows in no group
};

// p, y as for evaluate_binary; each group is evaluated on its own rows with the same seed.
SubgroupReport evaluate_subgroups(const std::vector<double>& p, const std::vector<int>& y,
                                  const std::vector<SubgroupDimension>& dims, int64_t bootstrap, uint64_t seed,
                                  int ece_bins);

}  // namespace chart
