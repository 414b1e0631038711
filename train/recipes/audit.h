// `chart audit`: what a pretrained model gives away about the people whose timelines trained it.
// Membership inference (docs/privacy.md has the threat model): an attacker who holds a person's
// timeline and the model asks whether that person was in the training set. The model's fit to a
// timeline is the signal: its mean next-token loss (lower for members when the model memorised
// them) and Min-K% (the mean log-probability of the timeline's k% least likely tokens, a
// reference-free score that discounts timelines that are easy for everyone). The AUROC of telling
// train subjects from subjects it never trained on (held_out, then tuning) by each score, with a 95% bootstrap interval: 0.5 means
// the model leaks nothing this attack can see, 1.0 that it identifies every member. Then
// extraction (audit_extraction.h): how often greedy decoding after a subject's rarest code
// reproduces what followed it, members against non-members.
//   run.dir/audit.json   the scores' AUROCs and intervals, the subjects and tokens they rest on
#pragma once
#include <cstdint>
#include <vector>

#include "core/config.h"

namespace chart {

// One subject's fit over its whole timeline, read in windows of model.context tokens.
struct SubjectFit {
  int64_t subject_id = 0;
  int64_t targets = 0;    // next-token predictions scored
  double mean_nll = 0;    // nats per token
  double min_k = 0;       // mean log-probability of its audit.min_k least likely tokens (<= 0)
};

int run_audit(const Config& cfg);

}  // namespace chart
