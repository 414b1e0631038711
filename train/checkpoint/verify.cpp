// Checking a checkpoint before it is trusted (every file against SHA256SUMS), and choosing the
// one to resume from.
#include <algorithm>
#include <sstream>

#include "core/error.h"
#include "core/files.h"
#include "core/log.h"
#include "core/sha256.h"
#include "train/checkpoint/checkpoint.h"
#include "train/checkpoint/model_weights.h"

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

std::vector<std::string> verify_sha256sums(const fs::path& dir, const std::vector<std::string>& required) {
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
  return listed;
}

void verify_checkpoint(const fs::path& dir) {
  if (!fs::is_directory(dir)) fail("checkpoint {} does not exist", dir.string());
  if (!fs::exists(dir / "SHA256SUMS")) fail("checkpoint {} has no SHA256SUMS: incomplete", dir.string());
  try {
    const bool split = fs::exists(dir / kWeightsIndex);
    const auto listed = verify_sha256sums(dir, {split ? kWeightsIndex : kWeightsFile, "config.yaml", "trainer_state.yaml"});
    // The files the index names are known once it has verified; each must be listed too.
    for (const auto& f : weight_files(dir))
      if (std::find(listed.begin(), listed.end(), f) == listed.end())
        fail("{}: SHA256SUMS does not list {}, which {} names", dir.string(), f, kWeightsIndex);
  } catch (const Error& e) {
    throw Error("checkpoint " + std::string(e.what()), e.hint());
  }
}

namespace {

template <typename Tensors>
void require_finite_impl(const Tensors& tensors, const std::string& where) {
  // One device-to-host read for the common case (all finite); the name only on failure.
  std::vector<torch::Tensor> flags;
  for (const auto& [name, t] : tensors)
    if (t.is_floating_point()) flags.push_back(torch::isfinite(t).all().reshape({1}));
  if (flags.empty() || torch::cat(flags).all().template item<bool>()) return;
  for (const auto& [name, t] : tensors)
    if (t.is_floating_point() && !torch::isfinite(t).all().template item<bool>())
      throw Error(fmt::format("{}: tensor '{}' holds NaN or infinite values", where, name),
                  "the run that wrote it diverged: use an earlier checkpoint (--resume PATH or init.checkpoint)");
}

}  // namespace

void require_finite(const std::vector<std::pair<std::string, torch::Tensor>>& tensors, const std::string& where) {
  require_finite_impl(tensors, where);
}
void require_finite(const std::map<std::string, torch::Tensor>& tensors, const std::string& where) {
  require_finite_impl(tensors, where);
}

std::optional<fs::path> resume_checkpoint(const fs::path& run_dir, const std::string& resume) {
  if (resume.empty() || resume == "fresh") return std::nullopt;
  if (resume != "auto") {
    verify_checkpoint(resume);
    return fs::path(resume);
  }
  const fs::path dir = run_dir / "checkpoints";
  auto all = list_checkpoints(dir);
  std::string damaged;
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    try {
      verify_checkpoint(it->second);
      return it->second;
    } catch (const Error& e) {
      warn("skipping damaged checkpoint: {}", e.what());
      damaged += fmt::format("\n  {}", first_line(e.what()));
    }
  }
  // Checkpoints were there and none is usable: starting again at step 0 would silently throw the
  // run away (and keep_last would then prune the new ones against the old), so stop and say so.
  if (!all.empty() || fs::exists(dir / "latest"))
    throw Error(fmt::format("--resume auto: {} holds {} checkpoint(s) and none verifies:{}", dir.string(), all.size(),
                            all.empty() ? "\n  `latest` names a checkpoint that is not there" : damaged),
                "restore a checkpoint from a backup, pass --resume PATH for one you trust, or --resume fresh to "
                "start over (what the run left is moved to run.dir/abandoned-<time>/)");
  return std::nullopt;
}

}  // namespace chart
