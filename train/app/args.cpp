#include "train/app/args.h"

#include <fmt/format.h>

namespace chart {

// Options that take no value; every other "--name" takes the next argument.
static bool is_flag(const std::string& name) { return name == "--overwrite" || name == "--drop-time-features"; }

Args::Args(std::string command, const std::vector<std::string>& argv) : command_(std::move(command)) {
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (a.rfind("--", 0) == 0 && a.size() > 2) {
      auto eq = a.find('=');
      if (eq != std::string::npos) {
        items_.push_back({a.substr(0, eq), a.substr(eq + 1), true});
      } else if (is_flag(a)) {
        items_.push_back({a, "", false});
      } else {
        if (i + 1 >= argv.size()) throw UsageError(fmt::format("{} needs a value", a));
        items_.push_back({a, argv[++i], true});
      }
    } else {
      items_.push_back({"", a, true});
    }
  }
}

std::optional<std::string> Args::option(const std::string& name) {
  std::optional<std::string> out;
  for (auto& it : items_)
    if (it.name == name) {
      if (out) throw UsageError(fmt::format("{} given more than once", name));
      it.used = true;
      out = it.value;
    }
  return out;
}

std::string Args::required(const std::string& name) {
  auto v = option(name);
  if (!v || v->empty()) throw UsageError(fmt::format("{} is required", name));
  return *v;
}

int64_t Args::integer(const std::string& name, int64_t fallback, int64_t lo, int64_t hi) {
  auto v = option(name);
  if (!v) return fallback;
  size_t pos = 0;
  int64_t x = 0;
  try {
    x = std::stoll(*v, &pos);
  } catch (const std::exception&) {
    pos = 0;
  }
  if (pos == 0 || pos != v->size())
    throw UsageError(fmt::format("{} expects an integer, got '{}'", name, *v));
  if (x < lo || x > hi)
    throw UsageError(fmt::format("{} {} is out of range [{}, {}]", name, x, lo, hi));
  return x;
}

bool Args::flag(const std::string& name) {
  bool seen = false;
  for (auto& it : items_)
    if (it.name == name) it.used = seen = true;
  return seen;
}

std::vector<std::string> Args::all(const std::string& name) {
  std::vector<std::string> out;
  for (auto& it : items_)
    if (it.name == name) {
      it.used = true;
      out.push_back(it.value);
    }
  return out;
}

std::vector<std::string> Args::sets() {
  auto out = all("--set");
  for (const auto& kv : out)
    if (kv.find('=') == std::string::npos || kv.front() == '=')
      throw UsageError(fmt::format("--set '{}': expected key=value, e.g. --set train.steps=100", kv));
  return out;
}

std::optional<std::string> Args::positional() {
  for (auto& it : items_)
    if (it.name.empty() && !it.used) {
      it.used = true;
      return it.value;
    }
  return std::nullopt;
}

void Args::done() const {
  for (const auto& it : items_)
    if (!it.used)
      throw UsageError(it.name.empty() ? fmt::format("unexpected argument '{}'", it.value)
                                       : fmt::format("unknown option {}", it.name));
}

Config recipe_config(Args& args, const char* example) {
  auto config_path = args.positional();
  if (!config_path) throw UsageError(fmt::format("CONFIG is required (e.g. {})", example));
  const auto sets = args.sets();
  args.done();
  return load_config(*config_path, sets);
}

}  // namespace chart
