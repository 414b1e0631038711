#include "train/validation/subgroups.h"

#include <cmath>
#include <map>

#include <fmt/format.h>

#include "core/error.h"

namespace chart {

DimensionGroups groups_of(const SubgroupDimension& d, size_t n) {
  if (d.group_of_row.size() != n)
    fail("subgroups: dimension '{}' has {} rows, the predictions {}", d.name, d.group_of_row.size(), n);
  DimensionGroups g;
  for (size_t i = 0; i < n; ++i) {
    if (d.group_of_row[i].empty()) ++g.unassigned;
    else g.rows[d.group_of_row[i]].push_back(i);
  }
  return g;
}

SubgroupReport evaluate_subgroups(const std::vector<double>& p, const std::vector<int>& y,
                                  const std::vector<SubgroupDimension>& dims, int64_t bootstrap, uint64_t seed,
                                  int ece_bins) {
  SubgroupReport out;
  for (const SubgroupDimension& d : dims) {
    const auto [rows, unassigned] = groups_of(d, p.size());
    out.unassigned.emplace_back(d.name, unassigned);
    const SubgroupResult* lowest = nullptr;
    const SubgroupResult* highest = nullptr;
    const size_t first = out.groups.size();
    for (const auto& [group, idx] : rows) {
      std::vector<double> gp;
      std::vector<int> gy;
      for (size_t i : idx) gp.push_back(p[i]), gy.push_back(y[i]);
      SubgroupResult r{d.name, group, evaluate_binary(gp, gy, bootstrap, seed, ece_bins), ""};
      const int64_t fewer = std::min(r.eval.point.n_pos, r.eval.point.n - r.eval.point.n_pos);
      if (fewer < kFewSubgroupCases)
        r.warning = fmt::format("{} {}: only {} {} of {} rows; its metrics are unreliable", d.name, group, fewer,
                                fewer == r.eval.point.n_pos ? "positive" : "negative", r.eval.point.n);
      out.groups.push_back(std::move(r));
    }
    for (size_t i = first; i < out.groups.size(); ++i) {
      const SubgroupResult& r = out.groups[i];
      if (std::isnan(r.eval.point.auroc) || !r.warning.empty()) continue;  // a gap of 3 rows says nothing
      if (!lowest || r.eval.point.auroc < lowest->eval.point.auroc) lowest = &r;
      if (!highest || r.eval.point.auroc > highest->eval.point.auroc) highest = &r;
    }
    if (lowest && highest && lowest != highest)
      out.gaps.push_back({d.name, lowest->group, highest->group, lowest->eval.point.auroc, highest->eval.point.auroc,
                          highest->eval.point.auroc - lowest->eval.point.auroc});
  }
  return out;
}

}  // namespace chart
