// chart generate CONFIG [--set k=v]...: zero-shot risk by sampling future timelines (train/recipes/generate.h).
#include "train/app/commands.h"
#include "train/recipes/generate.h"

namespace chart {

int cmd_generate(Args& args) { return run_generate(recipe_config(args, "configs/tiny.yaml")); }

}  // namespace chart
