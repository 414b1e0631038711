// What a reader pastes must be what the project runs: the README's quickstart commands are
// scripts/quickstart.sh's, line for line.
#include <gtest/gtest.h>

#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "core/files.h"
#include "tests/test_util.h"

namespace chart {
namespace {

// Lines starting with `prefix` (after indentation), continuation lines joined, comments and
// quotes dropped, spaces collapsed.
std::vector<std::string> commands(const std::string& text, const std::string& prefix) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line, joined;
  while (std::getline(in, line)) {
    const bool continues = !line.empty() && line.back() == '\\';
    if (continues) line.pop_back();
    if (joined.empty()) {
      const auto start = line.find_first_not_of(' ');
      if (start == std::string::npos || line.compare(start, prefix.size(), prefix) != 0) continue;
    }
    joined += " " + line;
    if (continues) continue;
    if (const auto hash = joined.find(" #"); hash != std::string::npos) joined.erase(hash);
    joined = std::regex_replace(joined, std::regex("[\"]"), "");
    joined = std::regex_replace(joined, std::regex("\\s+"), " ");
    out.push_back(joined.substr(1, joined.find_last_not_of(' ')));
    joined.clear();
  }
  return out;
}

TEST(Docs, TheReadmeQuickstartIsTheScript) {
  const std::string readme = read_file(testing::source_dir() / "README.md");
  const auto from = readme.find("## What the quickstart does"), to = readme.find("\n## ", from + 1);
  ASSERT_NE(from, std::string::npos);
  std::vector<std::string> documented = commands(readme.substr(from, to - from), "chart ");

  std::string script = read_file(testing::source_dir() / "scripts/quickstart.sh");
  script = std::regex_replace(script, std::regex("\\$labels"), "$out/meds/labels/mortality_5y");
  script = std::regex_replace(script, std::regex("\\$out"), "out/quickstart");
  std::vector<std::string> run;
  for (auto c : commands(script, "$chart ")) {
    c = "chart " + c.substr(7);
    if (c != "chart --version") run.push_back(c);
  }
  ASSERT_EQ(run.size(), 7u) << "the quickstart's steps changed: update this test and the README";
  EXPECT_EQ(documented, run);
}

}  // namespace
}  // namespace chart
