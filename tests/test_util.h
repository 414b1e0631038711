// Helpers shared by the tests: temporary directories, running the chart binary.
#pragma once
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace chart::testing {
namespace fs = std::filesystem;

// A fresh directory under the build's temp area, removed when the test ends.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "chart-test-XXXXXX").string();
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }
  fs::path operator/(const std::string& s) const { return path_ / s; }

 private:
  fs::path path_;
};

inline bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

inline fs::path source_dir() { return CHART_SOURCE_DIR; }
// A config of the repository, e.g. config("tiny.yaml"), config("finetune/full.yaml").
inline std::string config(const char* name) { return (source_dir() / "configs" / name).string(); }

// Runs a shell command line; returns its exit status (128 + signal if killed), stdout+stderr in *output.
inline int run_shell(const std::string& command, std::string* output = nullptr) {
  FILE* p = popen((command + " 2>&1").c_str(), "r");
  if (!p) return -1;
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int status = pclose(p);
  if (output) *output = out;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// `build/chart <args>`, and the build's Python with <args> (a script and its arguments, or -c ...).
inline int run_chart(const std::string& args, std::string* output = nullptr) {
  return run_shell(std::string(CHART_BINARY) + " " + args, output);
}
inline int run_python(const std::string& args, std::string* output = nullptr) {
  return run_shell("\"" + std::string(CHART_PYTHON_EXE) + "\" " + args, output);
}

}  // namespace chart::testing
