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
  // values: name -> number, written in the given order after step and split.
  void write(int64_t step, const std::string& split, const std::vector<std::pair<std::string, double>>& values);

 private:
  std::filesystem::path path_;
  FILE* f_ = nullptr;
  std::unique_ptr<TensorBoardWriter> tb_;
};

// Peak resident memory of this process in GiB.
double peak_rss_gib();

}  // namespace chart
