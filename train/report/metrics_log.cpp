#include "train/report/metrics_log.h"

#include <sys/resource.h>

#include <cmath>
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
      // A line of a step after the checkpoint, or one cut short by the crash, is dropped.
      const Json j = Json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (j.is_object() && j.contains("step") && j["step"].is_number_integer() &&
          j["step"].get<int64_t>() <= resume_step)
        kept += line + "\n";
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
  Json j;
  j["step"] = step;
  j["split"] = split;
  for (const auto& [k, v] : values) {
    // Whole numbers (tokens_seen, counts) as integers, as the lines have always had them.
    if (std::trunc(v) == v && std::fabs(v) < 0x1p53) j[k] = static_cast<int64_t>(v);
    else j[k] = v;
    tb_->scalar(split + "/" + k, static_cast<float>(v), step);
  }
  const std::string line = dump_json_line(j) + "\n";
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
