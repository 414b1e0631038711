// chart train CONFIG [--set k=v]... [--resume auto|fresh|PATH]
#include "core/config.h"
#include "train/app/commands.h"
#include "train/pretrain/trainer.h"

namespace chart {

int cmd_train(Args& args) {
  auto config_path = args.positional();
  if (!config_path) throw UsageError("CONFIG is required (e.g. configs/tiny.yaml)");
  const auto sets = args.sets();
  const std::string resume = args.option("--resume").value_or("");
  args.done();
  return run_training(load_config(*config_path, sets), resume);
}

}  // namespace chart
