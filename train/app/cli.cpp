#include "train/app/cli.h"

#include <torch/version.h>

#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/log.h"
#include "kernels/kernels.h"
#include "train/app/args.h"
#include "train/app/commands.h"

namespace chart {
namespace {

struct Command {
  const char* name;
  const char* usage;    // arguments after the name
  const char* summary;  // one line for `chart --help`
  std::function<int(Args&)> run;  // empty: not built yet
};

const std::vector<Command>& commands() {
  static const std::vector<Command> table = {
      {"synth", "--out DIR [--subjects N] [--seed S] [--overwrite]",
       "write a synthetic MEDS dataset with ground-truth labels", cmd_synth},
      {"prepare", "--meds DIR --out DIR [--config F] [--set k=v]... [--overwrite]",
       "tokenize a MEDS dataset into a token dataset", cmd_prepare},
      {"train", "CONFIG [--set k=v]... [--resume auto|fresh|PATH]", "pretrain (1 or N ranks)", cmd_train},
      {"finetune", "CONFIG [--set k=v]...", "fine-tune on MEDS labels", cmd_finetune},
      {"eval", "CONFIG [--set k=v]...", "metrics, predictions and a report", cmd_eval},
      {"generate", "CONFIG [--set k=v]...", "zero-shot risk by sampling future timelines", cmd_generate},
      {"export", "--checkpoint PATH --out DIR [--format hf] [--drop-time-features] [--vocab F] [--overwrite]",
       "export a checkpoint for Hugging Face transformers", cmd_export},
  };
  return table;
}

void print_help(FILE* out) {
  std::fprintf(out,
               "chart: pretrain and fine-tune transformers on longitudinal patient timelines (MEDS)\n\n"
               "usage: chart <command> [options]      chart <command> --help\n\ncommands:\n");
  for (const auto& c : commands())
    std::fprintf(out, "  %-9s %-46s %s%s\n", c.name, c.usage, c.summary,
                 c.run ? "" : " [not built yet]");
  std::fprintf(out,
               "\nConfig keys are documented in configs/README.md; --set a.b=value overrides one.\n"
               "Exit status: 0 success, 1 failure (cause on stderr), 2 usage error or command not built.\n");
}

void print_version() {
  std::printf("chart %s\nLibTorch %s\nCUDA kernels: %s\n", CHART_VERSION, TORCH_VERSION,
              kernels::cuda_kernels_built() ? kernels::cuda_kernel_archs().c_str()
                                            : "not built (CPU-only build)");
}

}  // namespace

int cli_main(int argc, char** argv) {
  std::vector<std::string> argv_s(argv + 1, argv + argc);
  if (argv_s.empty() || argv_s[0] == "--help" || argv_s[0] == "-h" || argv_s[0] == "help") {
    print_help(argv_s.empty() ? stderr : stdout);
    return argv_s.empty() ? 2 : 0;
  }
  if (argv_s[0] == "--version") {
    print_version();
    return 0;
  }
  const Command* cmd = nullptr;
  for (const auto& c : commands())
    if (argv_s[0] == c.name) cmd = &c;
  if (!cmd) {
    std::fprintf(stderr, "chart: unknown command '%s'\n---> HINT: chart --help lists the commands\n",
                 argv_s[0].c_str());
    return 2;
  }
  std::vector<std::string> rest(argv_s.begin() + 1, argv_s.end());
  for (const auto& a : rest)
    if (a == "--help" || a == "-h") {
      std::printf("usage: chart %s %s\n  %s\n", cmd->name, cmd->usage, cmd->summary);
      return 0;
    }
  if (!cmd->run) {
    std::fprintf(stderr, "chart: '%s' is not built yet in this version of chart\n", cmd->name);
    return 2;
  }
  try {
    Args args(cmd->name, rest);
    return cmd->run(args);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "chart %s: %s\nusage: chart %s %s\n", cmd->name, e.what(), cmd->name,
                 cmd->usage);
    return 2;
  } catch (const Error& e) {
    log_line(fmt::format("chart {}: error: {}", cmd->name, e.what()));
    if (!e.hint().empty()) log_line("---> HINT: " + e.hint());
    return 1;
  } catch (const std::exception& e) {
    log_line(fmt::format("chart {}: internal error: {}", cmd->name, e.what()));
    return 1;
  }
}

}  // namespace chart
