// JSON in chart: nlohmann::json for every file chart reads or writes as JSON (manifests, model
// cards, config.json, eval.json, metrics.jsonl). ordered_json keeps an object's keys in the order
// they were inserted, so files read top to bottom in the order the writer chose.
#pragma once
#include <filesystem>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace chart {

using Json = nlohmann::ordered_json;

// One JSON document; malformed text is a chart::Error naming `what` (a path, or what the text
// is) and where it breaks (byte, line and column).
Json parse_json(std::string_view text, const std::string& what);
Json read_json_file(const std::filesystem::path& path);

// Two-space indents and a final newline. NaN and inf are written as null (JSON has neither);
// bytes that are not UTF-8 become U+FFFD rather than an exception halfway through a write.
std::string dump_json(const Json& j);
// One line with Python's json.dumps separators, {"step": 1, "split": "train"} (metrics.jsonl).
std::string dump_json_line(const Json& j);

}  // namespace chart
