// `chart train`: pretraining on one process or N data-parallel ranks (CPU or GPU). Each step:
// grad_accum micro-batches -> the ranks agree on the target count and on stopping (SIGTERM/SIGUSR1
// save a checkpoint and exit 0) -> learning rate -> forward, loss, backward -> gradient sync ->
// clip -> AdamW step -> metrics -> evaluation on the tuning split -> checkpoint. The loop is
// train_loop() in trainer.cpp; its steps are in train_run.h.
#pragma once
#include <string>

#include "core/config.h"

namespace chart {

// resume: "" (start fresh; refuses a run.dir that already has checkpoints), "auto" or a path.
int run_training(const Config& config, const std::string& resume);

}  // namespace chart
