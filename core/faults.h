// Fault injection for tests only: CHART_FAULT_NONFINITE_STEPS=3,4 makes the loss of those
// optimizer steps (1-based, as logged) NaN, in chart train (on every rank, or only on rank
// CHART_FAULT_NONFINITE_RANK) and chart finetune, so that the non-finite guard is tested without
// depending on an unstable learning rate. Unset: nothing happens.
#pragma once
#include <cstdint>
#include <set>

namespace chart {

// The steps to poison for this rank; throws chart::Error naming the variable for a bad list.
std::set<int64_t> nonfinite_fault_steps(int rank = 0);

}  // namespace chart
