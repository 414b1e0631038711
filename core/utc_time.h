// Absolute times as text: ISO 8601 in UTC, the way MEDS, FHIR and CDS Hooks write them.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace chart {

// Microseconds since 1970 -> "2020-01-31T12:00:00Z" (whole seconds, rounded down).
std::string format_utc(int64_t us);
// "2020-01-31", "2020-01-31T12:00:00", with ".ffffff" and "Z" or "+hh:mm" / "-hh:mm" -> microseconds
// since 1970 (UTC); nullopt for anything else (including impossible dates such as 2020-02-30).
std::optional<int64_t> parse_utc(std::string_view text);
int64_t now_utc_us();

}  // namespace chart
