// `chart train`: pretraining on one process (CPU or one GPU). The loop, in order, each step:
// learning rate -> grad_accum micro-batches (forward, loss, backward) -> clip -> AdamW step ->
// metrics -> evaluation on the tuning split -> checkpoint -> preemption check (SIGTERM/SIGUSR1
// save a checkpoint and exit 0).
#pragma once
#include <string>

#include "core/config.h"

namespace chart {

// resume: "" (start fresh; refuses a run.dir that already has checkpoints), "auto" or a path.
int run_training(const Config& config, const std::string& resume);

}  // namespace chart
