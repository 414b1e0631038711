// Where a run's numbers go: run.dir/metrics.jsonl (one JSON object per line, each with at least
// step, split and loss) and TensorBoard event files under run.dir/tb.
#pragma once
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "train/report/tensorboard.h"

namespace chart {

class MetricsLog {
 public:
  // resume_step >= 0: keep only the lines of steps <= resume_step (a resumed run rewrites what
  // the interrupted one logged after its checkpoint); -1: start a fresh file.
  MetricsLog(const std::filesystem::path& run_dir, int64_t resume_step);
  ~MetricsLog();
  // values: name -> number, written in the given order after step and split. A line is written
  // whole or not at all (a failed write is cut back off the file); false when it could not be
  // written, to the file or to TensorBoard, with failure() saying why.
  bool write(int64_t step, const std::string& split, const std::vector<std::pair<std::string, double>>& values);
  const std::string& failure() const { return failure_; }  // the first failed write; "" if none

 private:
  bool append_line(const std::string& line);
  std::filesystem::path path_;
  int fd_ = -1;
  std::unique_ptr<TensorBoardWriter> tb_;
  std::string failure_;
};

// Peak resident memory of this process in GiB.
double peak_rss_gib();

}  // namespace chart
