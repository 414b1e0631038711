#include "train/app/help.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <sstream>

#include "core/config.h"

namespace chart {
namespace {

// "section.key" -> its default, as YAML writes it on one line.
std::vector<std::pair<std::string, std::string>> defaults_of(const std::string& section) {
  std::vector<std::pair<std::string, std::string>> out;
  const YAML::Node node = YAML::Load(config_to_yaml(Config{}))[section];
  for (const auto& kv : node) {
    YAML::Emitter e;
    e << YAML::Flow << kv.second;
    std::string v = e.c_str();
    if (v.empty() || v == "~" || v == "\"\"") v = "\"\"";
    out.emplace_back(section + "." + kv.first.as<std::string>(), v);
  }
  return out;
}

}  // namespace

void print_overview(FILE* out, const std::vector<CommandHelp>& commands) {
  std::fprintf(out,
               "chart: pretrain and fine-tune transformers on longitudinal patient timelines (MEDS)\n\n"
               "usage: chart <command> [options]\n\ncommands:\n");
  for (const auto& c : commands) std::fprintf(out, "  %-9s %s\n", c.name, c.summary);
  std::fprintf(out,
               "\n`chart <command> --help` shows its options, the config keys it reads with their defaults,\n"
               "and an example. Config keys are explained in configs/README.md; --set a.b=value overrides one.\n"
               "Exit status: 0 success, 1 failure (cause on stderr), 2 usage error.\n");
}

void print_command_help(FILE* out, const CommandHelp& c) {
  std::fprintf(out, "usage: chart %s %s\n  %s\n", c.name, c.usage, c.summary);
  if (*c.options) {
    std::fprintf(out, "\noptions:\n");
    std::istringstream lines(c.options);
    std::string line;
    while (std::getline(lines, line)) {
      const auto tab = line.find('\t');
      std::fprintf(out, "  %-28s %s\n", line.substr(0, tab).c_str(), tab == std::string::npos ? "" : line.substr(tab + 1).c_str());
    }
  }
  if (!c.sections.empty()) {
    std::fprintf(out, "\nconfig keys (--set KEY=VALUE; the default after each):\n");
    for (const auto& section : c.sections)
      for (const auto& [key, value] : defaults_of(section)) std::fprintf(out, "  %-30s %s\n", key.c_str(), value.c_str());
  }
  std::fprintf(out, "\nexample:\n  %s\n", c.example);
}

}  // namespace chart
