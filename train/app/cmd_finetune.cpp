// chart finetune CONFIG [--set k=v]...: fine-tune a pretrained checkpoint on MEDS labels (train/recipes/finetune.h).
#include "train/app/commands.h"
#include "train/recipes/finetune.h"

namespace chart {

int cmd_finetune(Args& args) { return run_finetune(recipe_config(args, "configs/finetune/full.yaml")); }

}  // namespace chart
