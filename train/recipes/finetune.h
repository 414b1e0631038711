// `chart finetune`: a pretrained checkpoint (init.checkpoint) plus MEDS labels (task.labels)
// -> a classifier. Each example is its subject's timeline up to and including prediction_time
// (data/examples.h), its last finetune.context tokens feeding a linear head on the final hidden
// state. Recipes:
//   full    every backbone weight and the head train
//   lora    the backbone is frozen; LoRA adapters (finetune.lora_*) and the head train, and the
//           adapters are merged into the weights on save
//   probe   the backbone is frozen and run once per example to compute features; a linear head
//           (logistic regression) trains on them
// Training examples come from the token dataset's train split, early stopping from its tuning
// split (AUROC every train.eval_every steps, finetune.patience); the best weights are saved to
// run.dir/checkpoints/step_<best step>/ with finetune.yaml describing the task.
#pragma once
#include "core/config.h"

namespace chart {

int run_finetune(const Config& config);

}  // namespace chart
