// Writing JSON by hand (manifests, metrics.jsonl): a string literal with the escapes JSON needs,
// and numbers that are never NaN or inf (JSON has neither; they are written as null).
#pragma once
#include <cmath>
#include <string>
#include <string_view>

#include <fmt/format.h>

namespace chart {

inline std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) out += fmt::format("\\u{:04x}", c);
        else out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

inline std::string json_number(double x) {
  if (!std::isfinite(x)) return "null";
  return fmt::format("{}", x);
}

}  // namespace chart
