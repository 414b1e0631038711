// chart eval CONFIG [--set k=v]...: metrics, predictions and a report for a fine-tuned checkpoint or a predictions file (train/recipes/eval.h).
#include "train/app/commands.h"
#include "train/recipes/eval.h"

namespace chart {

int cmd_eval(Args& args) { return run_eval(recipe_config(args, "configs/finetune/full.yaml")); }

}  // namespace chart
