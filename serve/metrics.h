// The service's counters in the Prometheus text format (GET /metrics): requests by route and
// status, a latency histogram per route, the sizes of the engine's batches, errors by code.
// Routes are the patterns ("/cds-services/{id}"), never raw paths: no patient data in labels.
#pragma once
#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>

namespace chart::serve {

class Metrics {
 public:
  void request(const std::string& route, int status, double seconds);
  void error(const std::string& code);
  void batch(size_t size);
  std::string prometheus() const;

 private:
  static constexpr std::array<double, 13> kLatencyS = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                        0.25,  0.5,    1,     2.5,  5,     10};
  static constexpr std::array<double, 10> kBatch = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512};
  template <size_t N>
  struct Histogram {
    std::array<int64_t, N> le{};  // cumulative counts are made when written
    int64_t count = 0;
    double sum = 0;
  };
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, int64_t> requests_;
  std::map<std::string, Histogram<kLatencyS.size()>> latency_;
  std::map<std::string, int64_t> errors_;
  Histogram<kBatch.size()> batches_;
};

}  // namespace chart::serve
