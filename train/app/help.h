// `chart --help` and `chart <command> --help`: the commands, and for each its options, the config
// keys it reads with their defaults (taken from the config's own defaults, so they cannot go
// stale) and an example.
#pragma once
#include <cstdio>
#include <string>
#include <vector>

namespace chart {

struct CommandHelp {
  const char* name;
  const char* usage;    // arguments after the name
  const char* summary;  // one line
  const char* options;  // "--out DIR\tthe dataset to write\n..." (tab between option and meaning)
  std::vector<std::string> sections;  // config sections it reads (--set section.key=value)
  const char* example;
};

void print_overview(FILE* out, const std::vector<CommandHelp>& commands);
void print_command_help(FILE* out, const CommandHelp& command);

}  // namespace chart
