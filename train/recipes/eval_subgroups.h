// The subgroups `chart eval` reports (eval.subgroups), read from the token dataset the rows'
// subjects are in: "sex" is the subject's static GENDER// or SEX// token; "age" its age at
// prediction_time in eval.age_bands; any other entry is a code prefix ("RACE//"), the group the
// subject's static token with that prefix. A subject without such a token (or a subject the
// dataset lacks) is in no group of that dimension.
#pragma once
#include <vector>

#include "core/config.h"
#include "data/labels.h"
#include "data/token_dataset.h"
#include "train/validation/subgroups.h"

namespace chart {

std::vector<SubgroupDimension> subgroup_dimensions(const data::TokenDataset& ds, const std::vector<data::LabelRow>& rows,
                                                   const EvalConfig& cfg);

// "<18", "18-40", ..., ">=80" for an age in years and the bands' lower edges.
std::string age_band(double years, const std::vector<std::string>& edges);

}  // namespace chart
