// The subcommands, one file each (train/app/cmd_<name>.cpp); cli.cpp dispatches to them.
#pragma once
#include "train/app/args.h"

namespace chart {

int cmd_synth(Args& args);
int cmd_prepare(Args& args);
int cmd_train(Args& args);
int cmd_finetune(Args& args);
int cmd_eval(Args& args);
int cmd_generate(Args& args);
int cmd_predict(Args& args);
int cmd_export(Args& args);
int cmd_audit(Args& args);
int cmd_serve(Args& args);

}  // namespace chart
