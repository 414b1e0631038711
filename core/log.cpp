#include "core/log.h"

#include <unistd.h>

#include <cstdio>
#include <mutex>

namespace chart {
namespace {
std::mutex g_log_mutex;
bool g_progress_open = false;  // a terminal progress line is drawn and not yet ended
}  // namespace

bool stderr_is_terminal() {
  static const bool tty = isatty(fileno(stderr)) != 0;
  return tty;
}

void log_line(const std::string& line) {
  std::lock_guard<std::mutex> lock(g_log_mutex);
  if (g_progress_open) {
    std::fputs("\n", stderr);
    g_progress_open = false;
  }
  std::fputs(line.c_str(), stderr);
  std::fputs("\n", stderr);
  std::fflush(stderr);
}

std::string format_duration(double s) {
  if (!(s >= 0) || s > 1e8) return "?";
  auto total = static_cast<int64_t>(s + 0.5);
  int64_t h = total / 3600, m = (total % 3600) / 60, sec = total % 60;
  if (h > 0) return fmt::format("{}h{:02d}m", h, m);
  if (m > 0) return fmt::format("{}m{:02d}s", m, sec);
  return fmt::format("{}s", sec);
}

std::string format_count(double n) {
  if (n >= 1e9) return fmt::format("{:.2f}G", n / 1e9);
  if (n >= 1e6) return fmt::format("{:.2f}M", n / 1e6);
  if (n >= 1e3) return fmt::format("{:.1f}k", n / 1e3);
  return fmt::format("{:.0f}", n);
}

Progress::Progress(std::string label, int64_t total, double plain_interval_s)
    : label_(std::move(label)),
      total_(total),
      plain_interval_s_(plain_interval_s),
      tty_(stderr_is_terminal()),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

double Progress::elapsed_s() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

std::string Progress::line(int64_t done, const std::string& detail) const {
  double el = elapsed_s();
  std::string s = fmt::format("{} {}/{}", label_, done, total_);
  if (total_ > 0) s += fmt::format(" ({:.0f}%)", 100.0 * done / total_);
  if (!detail.empty()) s += " | " + detail;
  s += " | " + format_duration(el);
  if (done > 0 && done < total_) s += " ETA " + format_duration(el / done * (total_ - done));
  return s;
}

void Progress::update(int64_t done, const std::string& detail) {
  auto now = std::chrono::steady_clock::now();
  double since = std::chrono::duration<double>(now - last_draw_).count();
  if (since < (tty_ ? 0.1 : plain_interval_s_)) return;
  last_draw_ = now;
  std::string s = line(done, detail);
  std::lock_guard<std::mutex> lock(g_log_mutex);
  if (tty_) {
    std::fprintf(stderr, "\r\033[2K%s", s.c_str());
    g_progress_open = true;
  } else {
    std::fprintf(stderr, "%s\n", s.c_str());
  }
  std::fflush(stderr);
  drawn_ = true;
}

void Progress::finish(const std::string& detail) {
  std::string s = line(total_, detail);
  std::lock_guard<std::mutex> lock(g_log_mutex);
  std::fprintf(stderr, tty_ ? "\r\033[2K%s\n" : "%s\n", s.c_str());
  std::fflush(stderr);
  g_progress_open = false;
}

}  // namespace chart
