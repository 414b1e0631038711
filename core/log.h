// Logging: one-line messages to stderr, and a progress line for long work that redraws in place
// on a terminal and prints plain, complete lines (at most every few seconds) in CI logs.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

#include <fmt/format.h>

namespace chart {

void log_line(const std::string& line);  // thread-safe, stderr, ends the progress line if drawn
bool stderr_is_terminal();

template <typename... Args>
void info(fmt::format_string<Args...> f, Args&&... args) {
  log_line(fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void warn(fmt::format_string<Args...> f, Args&&... args) {
  log_line("warning: " + fmt::format(f, std::forward<Args>(args)...));
}

// "1m05s", "2h03m", "12s": compact durations for ETA and elapsed time.
std::string format_duration(double seconds);
// "12.3k", "4.56M": compact counts for rates.
std::string format_count(double n);

// Progress over `total` units of work. update() is cheap; it redraws at most ~10 times a second on
// a terminal and once per `plain_interval_s` otherwise. The caller supplies the detail text.
class Progress {
 public:
  Progress(std::string label, int64_t total, double plain_interval_s = 10.0);
  // done: units completed so far; detail: e.g. "loss 3.21 | 12.3k tok/s".
  void update(int64_t done, const std::string& detail = {});
  void finish(const std::string& detail = {});  // prints the final line
  double elapsed_s() const;

 private:
  std::string line(int64_t done, const std::string& detail) const;
  std::string label_;
  int64_t total_;
  double plain_interval_s_;
  bool tty_;
  std::chrono::steady_clock::time_point start_, last_draw_;
  bool drawn_ = false;
};

}  // namespace chart
