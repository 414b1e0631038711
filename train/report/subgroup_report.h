// The report's subgroup section: a table of every metric per group (small groups flagged, not
// hidden) and a forest plot of AUROC with 95% intervals against the overall AUROC.
#pragma once
#include <string>

#include "train/validation/subgroups.h"

namespace chart {

std::string subgroup_section_html(const SubgroupReport& r, const BinaryEvaluation& overall);

}  // namespace chart
