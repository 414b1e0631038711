// chart finetune|eval|generate CONFIG [--set k=v]...: the recipe commands share one shape.
#include "core/config.h"
#include "train/commands.h"
#include "train/eval.h"
#include "train/finetune.h"
#include "train/generate.h"

namespace chart {
namespace {

Config recipe_config(Args& args) {
  auto config_path = args.positional();
  if (!config_path) throw UsageError("CONFIG is required (e.g. configs/finetune/full.yaml)");
  const auto sets = args.all("--set");
  args.done();
  return load_config(*config_path, sets);
}

}  // namespace

int cmd_finetune(Args& args) { return run_finetune(recipe_config(args)); }
int cmd_eval(Args& args) { return run_eval(recipe_config(args)); }
int cmd_generate(Args& args) { return run_generate(recipe_config(args)); }

}  // namespace chart
