#include "core/faults.h"

#include <cstdlib>
#include <sstream>
#include <string>

#include "core/error.h"
#include "core/log.h"

namespace chart {

std::set<int64_t> nonfinite_fault_steps(int rank) {
  std::set<int64_t> steps;
  const char* list = std::getenv("CHART_FAULT_NONFINITE_STEPS");
  if (list == nullptr || *list == 0) return steps;
  if (const char* only = std::getenv("CHART_FAULT_NONFINITE_RANK"); only && std::to_string(rank) != only) return steps;
  std::stringstream in(list);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (item.empty() || item.size() > 18 || item.find_first_not_of("0123456789") != std::string::npos)
      fail("CHART_FAULT_NONFINITE_STEPS='{}': expected step numbers separated by commas", list);
    steps.insert(std::stoll(item));
  }
  warn("CHART_FAULT_NONFINITE_STEPS: the loss is made NaN at step(s) {} (fault injection for tests)", list);
  return steps;
}

}  // namespace chart
