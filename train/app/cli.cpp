#include "train/app/cli.h"

#include <torch/version.h>

#include <csignal>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/log.h"
#include "kernels/kernels.h"
#include "train/app/args.h"
#include "train/app/commands.h"
#include "train/app/help.h"

namespace chart {
namespace {

struct Command {
  CommandHelp help;
  std::function<int(Args&)> run;
};

const std::vector<Command>& commands() {
  static const std::vector<Command> table = {
      {{"synth", "--out DIR [--subjects N] [--seed S] [--overwrite]",
        "write a synthetic MEDS dataset with ground-truth labels",
        "--out DIR\tthe MEDS dataset to write (data/, metadata/, labels/, oracle/)\n"
        "--subjects N\tsubjects to simulate (default 1000)\n--seed S\tdefault 0\n"
        "--overwrite\treplace DIR if it holds an earlier dataset",
        {}, "chart synth --out out/meds --subjects 2000 --seed 1"},
       cmd_synth},
      {{"prepare", "--meds DIR --out DIR [--vocab FROM] [--config F] [--set k=v]... [--overwrite]",
        "tokenize a MEDS dataset into a token dataset",
        "--meds DIR\ta MEDS root (data/, metadata/) or MEDS-like files with a column mapping\n"
        "--out DIR\tthe token dataset to write\n"
        "--vocab FROM\ttokenize with a pretrained model's vocabulary (a token dataset, a checkpoint or an\n"
        "\texport): a new cohort or an external site; coverage.json counts the codes it lacks\n"
        "--config F\ta YAML file with prepare.* keys\n"
        "--set KEY=VALUE\toverride one config key (repeatable)\n--overwrite\treplace DIR if it holds a dataset",
        {"prepare"}, "chart prepare --meds out/meds --out out/tokens --set prepare.min_subjects=20"},
       cmd_prepare},
      {{"train", "CONFIG [--set k=v]... [--resume auto|fresh|PATH]", "pretrain (1 or N ranks)",
        "CONFIG\ta YAML config (configs/tiny.yaml, configs/base.yaml, ...)\n"
        "--set KEY=VALUE\toverride one config key (repeatable)\n"
        "--resume auto\tcontinue from the newest checkpoint that verifies (none: start)\n"
        "--resume fresh\tstart over; the earlier run's files move to run.dir/abandoned-<time>/\n"
        "--resume PATH\tcontinue from that checkpoint",
        {"data", "run", "model", "train", "init", "dist"},
        "chart train configs/tiny.yaml --set data.dir=out/tokens --set run.dir=runs/tiny --resume auto"},
       cmd_train},
      {{"finetune", "CONFIG [--set k=v]...", "fine-tune on MEDS labels",
        "CONFIG\ta recipe (configs/finetune/full.yaml, lora.yaml, probe.yaml)\n"
        "--set KEY=VALUE\toverride one config key (repeatable)",
        {"data", "run", "init", "task", "finetune", "train"},
        "chart finetune configs/finetune/full.yaml --set init.checkpoint=runs/tiny "
        "--set task.labels=out/meds/labels/mortality_365d --set run.dir=runs/ft"},
       cmd_finetune},
      {{"eval", "CONFIG [--set k=v]...", "metrics, predictions and a report",
        "CONFIG\tthe recipe's config\n--set KEY=VALUE\toverride one config key (repeatable)",
        {"data", "run", "init", "task", "eval"},
        "chart eval configs/finetune/full.yaml --set init.checkpoint=runs/ft "
        "--set task.labels=out/meds/labels/mortality_365d --set run.dir=runs/eval"},
       cmd_eval},
      {{"generate", "CONFIG [--set k=v]...", "zero-shot risk by sampling future timelines",
        "CONFIG\tthe pretraining config\n--set KEY=VALUE\toverride one config key (repeatable)",
        {"data", "run", "init", "task", "generate"},
        "chart generate configs/tiny.yaml --set init.checkpoint=runs/tiny "
        "--set task.labels=out/meds/labels/mortality_365d --set run.dir=runs/gen"},
       cmd_generate},
      {{"predict", "CONFIG [--set k=v]...", "predictions for prediction times without labels",
        "CONFIG\tthe recipe's config\n--set KEY=VALUE\toverride one config key (repeatable)\n"
        "\tinit.checkpoint: fine-tuned (its head) or pretrained (zero-shot, generate.* keys)\n"
        "\ttask.labels: prediction times (subject_id, prediction_time), or predict.times=last\n"
        "\tpredict.meds: a raw MEDS dataset to tokenize on the checkpoint's vocabulary first",
        {"data", "run", "init", "task", "predict"},
        "chart predict configs/finetune/full.yaml --set init.checkpoint=runs/ft --set predict.meds=site_b/meds "
        "--set predict.times=last --set run.dir=runs/predict-site-b"},
       cmd_predict},
      {{"audit", "CONFIG [--set k=v]...", "what a pretrained model gives away about its training subjects",
        "CONFIG\tthe pretraining config\n--set KEY=VALUE\toverride one config key (repeatable)\n"
        "\tinit.checkpoint: the pretrained model; data.dir: its dataset (default: the checkpoint's)",
        {"data", "run", "init", "audit"},
        "chart audit configs/tiny.yaml --set init.checkpoint=runs/tiny --set run.dir=runs/audit"},
       cmd_audit},
      {{"serve", "CONFIG [--set k=v]...", "fine-tuned models behind an HTTP API (CDS Hooks, FHIR, JSON)",
        "CONFIG\ta YAML config with serve.* keys (configs/serve.yaml)\n--set KEY=VALUE\toverride one config key (repeatable)\n"
        "\tserve.models: [TASK=CHECKPOINT, ...]; serve.clients: who may call (docs/serve.md); run.dir: audit log\n"
        "\tSIGHUP reloads the config and checkpoints; SIGTERM drains and exits 0",
        {"run", "serve", "train"},
        "chart serve configs/serve.yaml --set 'serve.models=[mortality_365d=runs/ft]' "
        "--set serve.clients=clients.yaml --set run.dir=runs/serve"},
       cmd_serve},
      {{"export", "--checkpoint PATH --out DIR [--format hf] [--drop-time-features] [--vocab F] [--overwrite]",
        "export a checkpoint for Hugging Face transformers",
        "--checkpoint PATH\ta checkpoint or run directory\n--out DIR\tthe export to write\n"
        "--format hf\tthe only format (a Llama transformers loads)\n"
        "--drop-time-features\texport a model with time features without them (lossy)\n"
        "--vocab F\tthe vocabulary file (default: the checkpoint's dataset's)\n"
        "--overwrite\treplace DIR if it holds an export",
        {}, "chart export --checkpoint runs/tiny --out out/hf"},
       cmd_export},
  };
  return table;
}

std::vector<CommandHelp> command_help() {
  std::vector<CommandHelp> out;
  for (const auto& c : commands()) out.push_back(c.help);
  return out;
}

void print_version() {
  std::printf("chart %s\nLibTorch %s\nCUDA kernels: %s\n", CHART_VERSION, TORCH_VERSION,
              kernels::cuda_kernels_built() ? kernels::cuda_kernel_archs().c_str()
                                            : "not built (CPU-only build)");
}

}  // namespace

int cli_main(int argc, char** argv) {
  // A peer that goes away mid-write (a killed rank under Gloo, a client that hangs up on a TLS
  // answer) must be an EPIPE error that names it, not a SIGPIPE that ends chart without a word.
  std::signal(SIGPIPE, SIG_IGN);
  std::vector<std::string> argv_s(argv + 1, argv + argc);
  if (argv_s.empty() || argv_s[0] == "--help" || argv_s[0] == "-h" || argv_s[0] == "help") {
    print_overview(argv_s.empty() ? stderr : stdout, command_help());
    return argv_s.empty() ? 2 : 0;
  }
  if (argv_s[0] == "--version") {
    print_version();
    return 0;
  }
  const Command* cmd = nullptr;
  for (const auto& c : commands())
    if (argv_s[0] == c.help.name) cmd = &c;
  if (!cmd) {
    std::fprintf(stderr, "chart: unknown command '%s'\n---> HINT: chart --help lists the commands\n",
                 argv_s[0].c_str());
    return 2;
  }
  std::vector<std::string> rest(argv_s.begin() + 1, argv_s.end());
  for (const auto& a : rest)
    if (a == "--help" || a == "-h") {
      print_command_help(stdout, cmd->help);
      return 0;
    }
  const char* name = cmd->help.name;
  try {
    Args args(name, rest);
    return cmd->run(args);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "chart %s: %s\nusage: chart %s %s\n(chart %s --help lists the options)\n", name, e.what(),
                 name, cmd->help.usage, name);
    return 2;
  } catch (const Error& e) {
    log_line(fmt::format("chart {}: error: {}", name, e.what()));
    if (!e.hint().empty()) log_line("---> HINT: " + e.hint());
    return 1;
  } catch (const std::exception& e) {
    log_line(fmt::format("chart {}: internal error: {}", name, e.what()));
    return 1;
  }
}

}  // namespace chart
