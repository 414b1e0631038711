// The resampling every interval of `chart eval` is drawn from: a deterministic splitmix64 stream,
// resamples as counts per position (the data is sorted once; a resample only reweights it), and
// the 95% percentile interval of the resampled values.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "core/mix.h"
#include "train/validation/binary_metrics.h"

namespace chart {

// splitmix64: the stream whose step core/mix.h implements.
struct SplitMix64 {
  uint64_t state;
  uint64_t next() {
    uint64_t r = mix(state);
    state += 0x9e3779b97f4a7c15ULL;
    return r;
  }
  // Uniform in [0, n) by multiply-shift (Lemire); the bias is below n / 2^64.
  size_t below(size_t n) { return static_cast<size_t>((static_cast<unsigned __int128>(next()) * n) >> 64); }
};

// counts[i] = how often position i is drawn in n draws with replacement (n = counts.size()).
inline void draw_resample(SplitMix64& rng, std::vector<uint32_t>& counts) {
  std::fill(counts.begin(), counts.end(), 0u);
  for (size_t k = 0; k < counts.size(); ++k) ++counts[rng.below(counts.size())];
}

// The 2.5th and 97.5th percentiles of v, interpolated linearly as numpy.percentile does, over the
// resamples on which the metric is defined (not NaN); NaN bounds when v is empty or more than
// `max_undefined` of it is NaN (by default none may be).
inline Interval percentile_interval(std::vector<double> v, double max_undefined = 0) {
  constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  const size_t n = v.size();
  v.erase(std::remove_if(v.begin(), v.end(), [](double x) { return std::isnan(x); }), v.end());
  if (v.empty() || static_cast<double>(n - v.size()) > max_undefined * static_cast<double>(n)) return {kNaN, kNaN};
  std::sort(v.begin(), v.end());
  auto at = [&](double q) {
    double pos = q * static_cast<double>(v.size() - 1);
    size_t lo = static_cast<size_t>(pos);
    size_t hi = std::min(lo + 1, v.size() - 1);
    return v[lo] + (pos - static_cast<double>(lo)) * (v[hi] - v[lo]);
  };
  return {at(0.025), at(0.975)};
}

}  // namespace chart
