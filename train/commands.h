// The subcommands, one file each (train/cmd_<name>.cpp); cli.cpp dispatches to them.
#pragma once
#include "train/args.h"

namespace chart {

int cmd_synth(Args& args);    // train/cmd_synth.cpp
int cmd_prepare(Args& args);  // train/cmd_prepare.cpp
int cmd_train(Args& args);    // train/cmd_train.cpp
int cmd_export(Args& args);   // train/cmd_export.cpp
int cmd_finetune(Args& args); // train/cmd_recipes.cpp
int cmd_eval(Args& args);     // train/cmd_recipes.cpp
int cmd_generate(Args& args); // train/cmd_recipes.cpp

}  // namespace chart
