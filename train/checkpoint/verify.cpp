// Checking a checkpoint before it is trusted (every file against SHA256SUMS), and choosing the
// one to resume from.
#include <algorithm>
#include <sstream>

#include "core/error.h"
#include "core/files.h"
#include "core/log.h"
#include "core/sha256.h"
#include "train/checkpoint/checkpoint.h"

namespace chart {
namespace fs = std::filesystem;

int64_t checkpoint_step(const fs::path& checkpoint_dir) {
  const std::string name = checkpoint_dir.filename().string();
  const std::string digits = name.rfind("step_", 0) == 0 ? name.substr(5) : "";
  if (digits.empty() || digits.size() > 18 || digits.find_first_not_of("0123456789") != std::string::npos)
    fail("{} is not named step_<N>", checkpoint_dir.string());
  return std::stoll(digits);
}

std::vector<std::pair<int64_t, fs::path>> list_checkpoints(const fs::path& dir) {
  std::vector<std::pair<int64_t, fs::path>> out;
  if (!fs::is_directory(dir)) return out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (!e.is_directory()) continue;
    try {
      out.emplace_back(checkpoint_step(e.path()), e.path());
    } catch (const Error&) {  // step_N.tmp-PID, or anything else that is not a checkpoint
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

void verify_sha256sums(const fs::path& dir, const std::vector<std::string>& required) {
  if (!fs::is_directory(dir)) fail("{} does not exist", dir.string());
  if (!fs::exists(dir / "SHA256SUMS")) fail("{} has no SHA256SUMS: incomplete", dir.string());
  std::istringstream in(read_file(dir / "SHA256SUMS"));
  std::string hash, file;
  std::vector<std::string> listed;
  while (in >> hash >> file) {
    if (file.find('/') != std::string::npos || file.find("..") != std::string::npos)
      fail("{}: SHA256SUMS names a path outside it: {}", dir.string(), file);
    if (!fs::exists(dir / file)) fail("{}: {} is missing", dir.string(), file);
    if (sha256_file(dir / file) != hash) fail("{}: {} does not match its checksum", dir.string(), file);
    listed.push_back(file);
  }
  for (const auto& r : required)
    if (std::find(listed.begin(), listed.end(), r) == listed.end())
      fail("{}: SHA256SUMS does not list {}", dir.string(), r);
}

void verify_checkpoint(const fs::path& dir) {
  if (!fs::is_directory(dir)) fail("checkpoint {} does not exist", dir.string());
  if (!fs::exists(dir / "SHA256SUMS")) fail("checkpoint {} has no SHA256SUMS: incomplete", dir.string());
  try {
    verify_sha256sums(dir, {"model.safetensors", "config.yaml", "trainer_state.yaml"});
  } catch (const Error& e) {
    throw Error("checkpoint " + std::string(e.what()), e.hint());
  }
}

std::optional<fs::path> resume_checkpoint(const fs::path& run_dir, const std::string& resume) {
  if (resume.empty()) return std::nullopt;
  if (resume != "auto") {
    verify_checkpoint(resume);
    return fs::path(resume);
  }
  auto all = list_checkpoints(run_dir / "checkpoints");
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    try {
      verify_checkpoint(it->second);
      return it->second;
    } catch (const Error& e) {
      warn("skipping damaged checkpoint: {}", e.what());
    }
  }
  return std::nullopt;
}

}  // namespace chart
