#include "train/report/metrics_log.h"

#include <sys/resource.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <cmath>
#include <sstream>

#include "core/error.h"
#include "core/files.h"
#include "core/json.h"
#include "core/log.h"

namespace chart {

MetricsLog::MetricsLog(const std::filesystem::path& run_dir, int64_t resume_step)
    : path_(run_dir / "metrics.jsonl") {
  std::string kept;
  if (resume_step >= 0 && std::filesystem::exists(path_)) {
    std::istringstream in(read_file(path_));
    std::string line;
    while (std::getline(in, line)) {
      // A line of a step after the checkpoint, or one cut short by the crash, is dropped.
      const Json j = Json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (j.is_object() && j.contains("step") && j["step"].is_number_integer() &&
          j["step"].get<int64_t>() <= resume_step)
        kept += line + "\n";
    }
  }
  write_file_atomic(path_, kept);
  fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd_ < 0) fail("cannot open {}: {}", path_.string(), std::strerror(errno));
  tb_ = std::make_unique<TensorBoardWriter>(run_dir / "tb");
  if (resume_step >= 0) {
    tb_->session_start(resume_step + 1);
    tb_->flush();
  }
}

MetricsLog::~MetricsLog() {
  if (fd_ >= 0) ::close(fd_);
}

bool MetricsLog::append_line(const std::string& line) {
  // One write(2) per line, unbuffered: nothing of a failed line lingers in a buffer to land later.
  const off_t before = ::lseek(fd_, 0, SEEK_END);
  const ssize_t n = ::write(fd_, line.data(), line.size());
  if (n == static_cast<ssize_t>(line.size())) return true;
  const int err = n < 0 ? errno : ENOSPC;  // a short write: the device filled up
  // No torn line for a reader to trip on: what reached the file of this line is cut off again.
  if (before >= 0 && n > 0 && ::ftruncate(fd_, before) != 0) warn("cannot cut the torn line off {}", path_.string());
  if (failure_.empty()) failure_ = fmt::format("cannot write {}: {}", path_.string(), std::strerror(err));
  return false;
}

bool MetricsLog::write(int64_t step, const std::string& split,
                       const std::vector<std::pair<std::string, double>>& values) {
  Json j;
  j["step"] = step;
  j["split"] = split;
  bool tb_ok = true;
  for (const auto& [k, v] : values) {
    // Whole numbers (tokens_seen, counts) as integers, as the lines have always had them.
    if (std::trunc(v) == v && std::fabs(v) < 0x1p53) j[k] = static_cast<int64_t>(v);
    else j[k] = v;
    try {
      tb_->scalar(split + "/" + k, static_cast<float>(v), step);
    } catch (const Error& e) {
      if (failure_.empty()) failure_ = e.what();
      tb_ok = false;
    }
  }
  bool ok = append_line(dump_json_line(j) + "\n") && tb_ok;
  try {
    tb_->flush();
  } catch (const Error& e) {
    if (failure_.empty()) failure_ = e.what();
    ok = false;
  }
  return ok;
}

double peak_rss_gib() {
  struct rusage u {};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / (1024.0 * 1024.0);  // ru_maxrss is in KiB on Linux
}

}  // namespace chart
