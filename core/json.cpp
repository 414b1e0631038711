#include "core/json.h"

#include "core/error.h"
#include "core/files.h"

namespace chart {
namespace {

// nlohmann's text without its "[json.exception.parse_error.101] " prefix.
std::string without_prefix(const std::string& what) {
  const size_t p = what.find("] ");
  return p == std::string::npos ? what : what.substr(p + 2);
}

std::string scalar_text(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

void append_line(const Json& j, std::string& out) {
  if (j.is_object()) {
    out += '{';
    bool first = true;
    for (const auto& [k, v] : j.items()) {
      out += first ? "" : ", ";
      out += scalar_text(Json(k)) + ": ";
      append_line(v, out);
      first = false;
    }
    out += '}';
  } else if (j.is_array()) {
    out += '[';
    for (size_t i = 0; i < j.size(); ++i) {
      out += i ? ", " : "";
      append_line(j[i], out);
    }
    out += ']';
  } else {
    out += scalar_text(j);
  }
}

}  // namespace

Json parse_json(std::string_view text, const std::string& what) {
  try {
    return Json::parse(text.begin(), text.end());
  } catch (const Json::exception& e) {  // parse_error, or out_of_range for a number beyond a double
    throw Error(fmt::format("{}: not valid JSON: {}", what, without_prefix(e.what())),
                "chart writes these files whole (write, fsync, rename); one that fails here was truncated "
                "or edited by hand: restore it or write it again");
  }
}

Json read_json_file(const std::filesystem::path& path) { return parse_json(read_file(path), path.string()); }

std::string dump_json(const Json& j) { return j.dump(2, ' ', false, Json::error_handler_t::replace) + "\n"; }

std::string dump_json_line(const Json& j) {
  std::string out;
  append_line(j, out);
  return out;
}

}  // namespace chart
