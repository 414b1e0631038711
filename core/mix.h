// One 64-bit integer hash (the splitmix64 step): deterministic across platforms, used wherever
// chart needs a reproducible "random" choice from ids (split assignment, value sampling,
// shuffling).
#pragma once
#include <cstdint>

namespace chart {

inline uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace chart
