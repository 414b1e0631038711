// Command-line options of one subcommand: "--name value", "--name=value", repeated "--set k=v",
// and positional arguments. Each accessor consumes what it reads; done() rejects the rest, so a
// misspelt option is an error rather than silently ignored.
#pragma once
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/config.h"

namespace chart {

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Args {
 public:
  Args(std::string command, const std::vector<std::string>& argv);

  std::optional<std::string> option(const std::string& name);  // "--out" -> value, if given
  std::string required(const std::string& name);
  int64_t integer(const std::string& name, int64_t fallback, int64_t lo, int64_t hi);
  bool flag(const std::string& name);               // "--overwrite": present or not
  std::vector<std::string> all(const std::string& name);  // every value of a repeated option, in order
  std::vector<std::string> sets();  // every "--set key=value"; one without "key=" is a UsageError
  std::optional<std::string> positional();          // the next positional argument
  void done() const;                                // throws UsageError on anything unread

 private:
  struct Item {
    std::string name;  // "" for a positional
    std::string value;
    bool has_value = false;
    bool used = false;
  };
  std::string command_;
  std::vector<Item> items_;
};

// The shape every config-driven command shares: CONFIG [--set k=v]... (nothing else).
// `example` names a config for the usage error when CONFIG is missing.
Config recipe_config(Args& args, const char* example);

}  // namespace chart
