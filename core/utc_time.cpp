#include "core/utc_time.h"

#include <chrono>
#include <cstdio>
#include <ctime>

namespace chart {
namespace {

// Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (H. Hinnant's algorithm).
int64_t days_from_civil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

int days_in_month(int64_t y, int64_t m) {
  static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m == 2 && leap ? 29 : days[m - 1];
}

// Reads exactly n digits at text[i...]; false if they are not all digits.
bool digits(std::string_view text, size_t& i, int n, int64_t& out) {
  if (i + static_cast<size_t>(n) > text.size()) return false;
  out = 0;
  for (int k = 0; k < n; ++k, ++i) {
    const char c = text[i];
    if (c < '0' || c > '9') return false;
    out = out * 10 + (c - '0');
  }
  return true;
}

bool expect(std::string_view text, size_t& i, char c) {
  if (i >= text.size() || text[i] != c) return false;
  ++i;
  return true;
}

}  // namespace

std::string format_utc(int64_t us) {
  std::time_t s = static_cast<std::time_t>(us >= 0 ? us / 1000000 : -((-us + 999999) / 1000000));
  std::tm tm{};
  gmtime_r(&s, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::optional<int64_t> parse_utc(std::string_view text) {
  size_t i = 0;
  int64_t y, mo, d, h = 0, mi = 0, s = 0, frac_us = 0, offset_min = 0;
  if (!digits(text, i, 4, y) || !expect(text, i, '-') || !digits(text, i, 2, mo) || !expect(text, i, '-') ||
      !digits(text, i, 2, d))
    return std::nullopt;
  if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo)) return std::nullopt;
  if (i < text.size()) {
    if (!expect(text, i, 'T') || !digits(text, i, 2, h) || !expect(text, i, ':') || !digits(text, i, 2, mi) ||
        !expect(text, i, ':') || !digits(text, i, 2, s))
      return std::nullopt;
    if (h > 23 || mi > 59 || s > 60) return std::nullopt;
    if (i < text.size() && text[i] == '.') {
      ++i;
      int n = 0;
      int64_t scale = 100000;
      while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
        if (n++ < 6) frac_us += (text[i] - '0') * scale, scale /= 10;
        ++i;
      }
      if (n == 0) return std::nullopt;
    }
    if (i < text.size() && text[i] == 'Z') {
      ++i;
    } else if (i < text.size() && (text[i] == '+' || text[i] == '-')) {
      const int sign = text[i] == '+' ? 1 : -1;
      ++i;
      int64_t oh, om;
      if (!digits(text, i, 2, oh) || !expect(text, i, ':') || !digits(text, i, 2, om) || oh > 23 || om > 59)
        return std::nullopt;
      offset_min = sign * (oh * 60 + om);
    }
    if (i != text.size()) return std::nullopt;
  }
  const int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s - offset_min * 60;
  return secs * 1000000 + frac_us;
}

int64_t now_utc_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace chart
