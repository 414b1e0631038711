#include "train/recipes/eval_subgroups.h"

#include <cmath>
#include <unordered_map>

#include <fmt/format.h>

#include "core/time.h"

namespace chart {
namespace {

struct SubjectFacts {
  int64_t birth_us = 0;
  std::vector<std::string> statics;  // the static prefix's code tokens
};

// Each subject's birth and static tokens: those after [BOS] at the birth time, before any event.
std::unordered_map<int64_t, SubjectFacts> subject_facts(const data::TokenDataset& ds) {
  std::unordered_map<int64_t, SubjectFacts> out;
  const data::Vocab& v = ds.vocab();
  for (const auto& split : {"train", "tuning", "held_out"}) {
    const auto& shards = ds.shards(split);
    for (const data::SubjectRef& ref : ds.subjects(split)) {
      const data::TokenShard& sh = shards[ref.shard];
      const data::SubjectEntry& e = sh.subject(ref.entry);
      SubjectFacts f{e.birth_us, {}};
      for (uint32_t j = 1; j < e.n_tokens; ++j) {
        const uint32_t tok = sh.tokens()[e.token_start + j];
        if (sh.times()[e.token_start + j] != e.birth_us || v.kind(tok) != data::TokenKind::kCode) break;
        f.statics.push_back(v.token(tok));
      }
      out.emplace(e.subject_id, std::move(f));
    }
  }
  return out;
}

std::string static_with_prefix(const SubjectFacts& f, const std::vector<std::string>& prefixes) {
  for (const auto& s : f.statics)
    for (const auto& p : prefixes)
      if (s.rfind(p, 0) == 0) return s;
  return "";
}

}  // namespace

std::string age_band(double years, const std::vector<std::string>& edges) {
  if (edges.empty()) return "all";
  if (years < std::stod(edges.front())) return "<" + edges.front();
  for (size_t i = 0; i + 1 < edges.size(); ++i)
    if (years < std::stod(edges[i + 1])) return edges[i] + "-" + edges[i + 1];
  return ">=" + edges.back();
}

std::vector<SubgroupDimension> subgroup_dimensions(const data::TokenDataset& ds, const std::vector<data::LabelRow>& rows,
                                                   const EvalConfig& cfg) {
  const auto facts = subject_facts(ds);
  std::vector<SubgroupDimension> dims;
  for (const std::string& name : cfg.subgroups) {
    SubgroupDimension d{name, {}};
    for (const data::LabelRow& r : rows) {
      auto it = facts.find(r.subject_id);
      if (it == facts.end()) d.group_of_row.emplace_back();
      else if (name == "sex") d.group_of_row.push_back(static_with_prefix(it->second, {"GENDER//", "SEX//"}));
      else if (name == "age")
        d.group_of_row.push_back(age_band(age_years(r.prediction_time_us, it->second.birth_us), cfg.age_bands));
      else d.group_of_row.push_back(static_with_prefix(it->second, {name}));
    }
    dims.push_back(std::move(d));
  }
  return dims;
}

GroupTable evaluate_groups(const std::vector<SubgroupDimension>& dims, size_t n, std::vector<std::string> columns,
                           const std::function<GroupScore(const std::vector<size_t>& rows)>& score) {
  GroupTable t;
  t.columns = std::move(columns);
  for (const auto& d : dims) {
    const auto [groups, unassigned] = groups_of(d, n);
    t.unassigned.emplace_back(d.name, unassigned);
    for (const auto& [group, rows] : groups) {
      GroupScore s = score(rows);
      t.rows.push_back({d.name, group, static_cast<int64_t>(rows.size()), std::move(s.cells), std::move(s.metrics),
                        s.warning.empty() ? "" : fmt::format("{} {}: {}", d.name, group, s.warning)});
    }
  }
  return t;
}

std::string cell_with_interval(double v, const Interval& ci) {
  auto num = [](double x) { return std::isfinite(x) ? fmt::format("{:.3f}", x) : std::string("n/a"); };
  return std::isfinite(ci.lo) ? fmt::format("{} ({}&ndash;{})", num(v), num(ci.lo), num(ci.hi)) : num(v);
}

}  // namespace chart
