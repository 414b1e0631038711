#include "train/report/metrics_log.h"

#include <sys/resource.h>

#include <sstream>

#include "core/error.h"
#include "core/files.h"
#include "core/json.h"

namespace chart {

MetricsLog::MetricsLog(const std::filesystem::path& run_dir, int64_t resume_step)
    : path_(run_dir / "metrics.jsonl") {
  std::string kept;
  if (resume_step >= 0 && std::filesystem::exists(path_)) {
    std::istringstream in(read_file(path_));
    std::string line;
    while (std::getline(in, line)) {
      // Lines start with {"step": N, as write() makes them.
      auto colon = line.find(':');
      if (line.rfind("{\"step\":", 0) != 0 || colon == std::string::npos) continue;
      if (std::stoll(line.substr(colon + 1)) <= resume_step) kept += line + "\n";
    }
  }
  write_file_atomic(path_, kept);
  f_ = std::fopen(path_.c_str(), "ab");
  if (!f_) fail("cannot open {}", path_.string());
  tb_ = std::make_unique<TensorBoardWriter>(run_dir / "tb");
}

MetricsLog::~MetricsLog() {
  if (f_) std::fclose(f_);
}

void MetricsLog::write(int64_t step, const std::string& split,
                       const std::vector<std::pair<std::string, double>>& values) {
  std::string line = fmt::format("{{\"step\": {}, \"split\": {}", step, json_string(split));
  for (const auto& [k, v] : values) {
    line += fmt::format(", {}: {}", json_string(k), json_number(v));
    tb_->scalar(split + "/" + k, static_cast<float>(v), step);
  }
  line += "}\n";
  std::fputs(line.c_str(), f_);
  std::fflush(f_);
  tb_->flush();
}

double peak_rss_gib() {
  struct rusage u {};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / (1024.0 * 1024.0);  // ru_maxrss is in KiB on Linux
}

}  // namespace chart
