// Memorisation by extraction (docs/privacy.md): prompt the model with a subject's timeline up to
// and including its rarest code (the one fewest train subjects have) and ask whether greedy
// decoding reproduces the next audit.extract_tokens tokens of that timeline exactly. A rare code
// is where a memorised timeline differs most from the population's: a model that reproduces
// what followed it for train subjects more often than for subjects it never saw has memorised
// those people, not the pattern. Scored teacher-forced in one forward pass per window (greedy
// decoding reproduces the continuation exactly iff every continuation token is the argmax
// given the true tokens before it), with the true times as ages.
#pragma once
#include <cstdint>

#include "core/config.h"
#include "core/json.h"
#include "data/subject_counts.h"
#include "model/device.h"
#include "model/transformer.h"
#include "train/recipes/audit_windows.h"

namespace chart {

// audit.json's `extraction`: per side (members, non-members) the prompts tried, the share
// reproduced exactly with its 95% Wilson interval, the share of continuation tokens that were
// the model's first choice, the continuation's mean log-probability, and the AUROC of telling
// members from non-members by that log-probability. Needs audit.extract_tokens < model.context.
Json extraction_audit(ClinicalTransformer& model, const data::TokenDataset& ds, const SplitSubjects& members,
                      const SplitSubjects& non_members, const data::SubjectCounts& train_counts, const Config& cfg,
                      const DeviceChoice& dev);

}  // namespace chart
