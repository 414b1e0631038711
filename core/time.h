// Time in chart, one representation per use and every conversion here:
//   absolute times     int64 microseconds since the Unix epoch (MEDS timestamp[us])
//   ages               float years since birth (Julian years of 365.25 days): what the model sees
//                      per token, for its age encoding and the time-decay bias
//   gaps               days: the waiting-time head's targets and the time-decay bias's argument
// Plain constexpr and inline code, so CUDA kernels include it too.
#pragma once
#include <cstdint>

namespace chart {

constexpr int64_t kMicrosPerSecond = 1000000;
constexpr int64_t kMicrosPerDay = 86400 * kMicrosPerSecond;
constexpr double kDaysPerYear = 365.25;
constexpr double kMicrosPerYear = kDaysPerYear * 86400.0 * 1e6;
// Gaps shorter than a minute count as a minute (same-time events; the waiting-time NLL needs dt > 0).
constexpr double kMinGapDays = 1.0 / 1440.0;

// A token's age: years from birth_us to time_us.
inline float age_years(int64_t time_us, int64_t birth_us) {
  return static_cast<float>(static_cast<double>(time_us - birth_us) / kMicrosPerYear);
}
inline double micros_to_years(double micros) { return micros / kMicrosPerYear; }
// The gap from t0_us to t1_us in days.
inline float gap_days(int64_t t0_us, int64_t t1_us) {
  return static_cast<float>(static_cast<double>(t1_us - t0_us) / static_cast<double>(kMicrosPerDay));
}

}  // namespace chart
