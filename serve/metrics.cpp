#include "serve/metrics.h"

#include <fmt/format.h>

namespace chart::serve {
namespace {

template <size_t N, typename H>
void observe(H& h, const std::array<double, N>& bounds, double v) {
  for (size_t i = 0; i < N; ++i)
    if (v <= bounds[i]) {
      ++h.le[i];
      break;
    }
  ++h.count;
  h.sum += v;
}

template <size_t N, typename H>
void write_histogram(std::string& out, const std::string& name, const std::string& labels, const H& h,
                     const std::array<double, N>& bounds) {
  const std::string sep = labels.empty() ? "" : ",";
  int64_t cumulative = 0;
  for (size_t i = 0; i < N; ++i) {
    cumulative += h.le[i];
    out += fmt::format("{}_bucket{{{}{}le=\"{}\"}} {}\n", name, labels, sep, bounds[i], cumulative);
  }
  out += fmt::format("{}_bucket{{{}{}le=\"+Inf\"}} {}\n", name, labels, sep, h.count);
  const std::string braces = labels.empty() ? "" : "{" + labels + "}";
  out += fmt::format("{}_sum{} {}\n{}_count{} {}\n", name, braces, h.sum, name, braces, h.count);
}

}  // namespace

void Metrics::request(const std::string& route, int status, double seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++requests_[{route, status}];
  observe(latency_[route], kLatencyS, seconds);
}

void Metrics::error(const std::string& code) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++errors_[code];
}

void Metrics::batch(size_t size) {
  std::lock_guard<std::mutex> lock(mutex_);
  observe(batches_, kBatch, static_cast<double>(size));
}

std::string Metrics::prometheus() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::string out;
  out += "# HELP chart_requests_total HTTP requests answered, by route pattern and status.\n"
         "# TYPE chart_requests_total counter\n";
  for (const auto& [key, n] : requests_)
    out += fmt::format("chart_requests_total{{route=\"{}\",status=\"{}\"}} {}\n", key.first, key.second, n);
  out += "# HELP chart_request_seconds Time from the request's arrival to its answer.\n"
         "# TYPE chart_request_seconds histogram\n";
  for (const auto& [route, h] : latency_)
    write_histogram(out, "chart_request_seconds", fmt::format("route=\"{}\"", route), h, kLatencyS);
  out += "# HELP chart_errors_total Error answers by their code.\n# TYPE chart_errors_total counter\n";
  for (const auto& [code, n] : errors_) out += fmt::format("chart_errors_total{{code=\"{}\"}} {}\n", code, n);
  out += "# HELP chart_batch_size Requests per forward pass of the model.\n# TYPE chart_batch_size histogram\n";
  write_histogram(out, "chart_batch_size", "", batches_, kBatch);
  return out;
}

}  // namespace chart::serve
