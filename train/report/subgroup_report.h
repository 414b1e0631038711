// The report's subgroup section: a table of every metric per group (small groups flagged, not
// hidden) and a forest plot of AUROC with 95% intervals against the overall AUROC.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "core/json.h"
#include "train/validation/subgroups.h"

namespace chart {

std::string subgroup_section_html(const SubgroupReport& r, const BinaryEvaluation& overall);

// The subgroups of a multi-class, regression or time-to-event evaluation: one row per group with
// its task's headline metrics already formatted (cells, under `columns`), the same as JSON for
// eval.json, and a warning for a small group (shown, not hidden).
struct GroupTableRow {
  std::string dimension, group;
  int64_t n = 0;
  std::vector<std::string> cells;
  Json metrics;
  std::string warning;
};
struct GroupTable {
  std::vector<std::string> columns;
  std::vector<GroupTableRow> rows;
  std::vector<std::pair<std::string, int64_t>> unassigned;  // per dimension: rows in no group
  std::string note;  // what a reader should know of these metrics within a group
  Json json() const;  // {"groups": [{dimension, group, n, warning, metrics...}], "unassigned_rows": {...}}
};
std::string group_table_html(const GroupTable& t);

}  // namespace chart
