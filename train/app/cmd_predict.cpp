// chart predict CONFIG [--set k=v]...: predictions for prediction times without labels (train/recipes/predict.h).
#include "train/app/commands.h"
#include "train/recipes/predict.h"

namespace chart {

int cmd_predict(Args& args) { return run_predict(recipe_config(args, "configs/finetune/full.yaml")); }

}  // namespace chart
