// chart audit CONFIG [--set k=v]...: membership inference against a pretrained model (train/recipes/audit.h).
#include "train/app/commands.h"
#include "train/recipes/audit.h"

namespace chart {

int cmd_audit(Args& args) { return run_audit(recipe_config(args, "configs/tiny.yaml")); }

}  // namespace chart
