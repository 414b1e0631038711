#include "train/report/loss_curves.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <optional>
#include <string_view>

namespace chart {
namespace {

struct FlatObject {
  std::map<std::string, double> numbers;  // null is NaN; true/false are dropped
  std::map<std::string, std::string> strings;
};

// Parses exactly one flat object {"k": "v" | number | true | false | null, ...}; nullopt if the
// line is anything else (nested values included).
class LineParser {
 public:
  explicit LineParser(std::string_view s) : s_(s) {}

  std::optional<FlatObject> object() {
    FlatObject obj;
    if (!eat('{')) return std::nullopt;
    if (!eat('}')) {
      do {
        std::optional<std::string> key = string();
        if (!key || !eat(':')) return std::nullopt;
        ws();
        if (peek() == '"') {
          std::optional<std::string> v = string();
          if (!v) return std::nullopt;
          obj.strings[*key] = *v;
        } else if (word("true") || word("false")) {
        } else if (word("null")) {
          obj.numbers[*key] = std::nan("");
        } else {
          std::optional<double> v = number();
          if (!v) return std::nullopt;
          obj.numbers[*key] = *v;
        }
      } while (eat(','));
      if (!eat('}')) return std::nullopt;
    }
    ws();
    if (i_ != s_.size()) return std::nullopt;
    return obj;
  }

 private:
  char peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
  void ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\r')) ++i_;
  }
  bool eat(char c) {
    ws();
    if (peek() != c) return false;
    ++i_;
    return true;
  }
  bool word(std::string_view w) {
    if (s_.substr(i_, w.size()) != w) return false;
    i_ += w.size();
    return true;
  }
  std::optional<double> number() {
    size_t start = i_;
    while (i_ < s_.size() && std::string_view("+-.0123456789eE").find(s_[i_]) != std::string_view::npos) ++i_;
    std::string text(s_.substr(start, i_ - start));
    if (text.empty()) return std::nullopt;
    char* end = nullptr;
    double v = std::strtod(text.c_str(), &end);
    if (end != text.c_str() + text.size()) return std::nullopt;
    return v;
  }
  std::optional<std::string> string() {
    if (!eat('"')) return std::nullopt;
    std::string out;
    while (i_ < s_.size()) {
      char c = s_[i_++];
      if (c == '"') return out;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (i_ >= s_.size()) return std::nullopt;
      char e = s_[i_++];
      static constexpr std::string_view kFrom = "\"\\/bfnrt", kTo = "\"\\/\b\f\n\r\t";
      if (size_t k = kFrom.find(e); k != std::string_view::npos) {
        out += kTo[k];
      } else if (e == 'u' && i_ + 4 <= s_.size() &&
                 std::all_of(s_.begin() + i_, s_.begin() + i_ + 4,
                             [](unsigned char h) { return std::isxdigit(h) != 0; })) {
        // A surrogate half becomes an (invalid) 3-byte sequence: harmless for a split name.
        append_utf8(out, static_cast<unsigned>(std::stoul(std::string(s_.substr(i_, 4)), nullptr, 16)));
        i_ += 4;
      } else {
        return std::nullopt;
      }
    }
    return std::nullopt;  // unterminated
  }
  static void append_utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  std::string_view s_;
  size_t i_ = 0;
};

}  // namespace

LossCurves read_loss_curves(const std::filesystem::path& metrics_jsonl) {
  LossCurves lc;
  std::ifstream in(metrics_jsonl);
  if (!in) return lc;
  lc.found = true;
  std::string line;
  while (std::getline(in, line)) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    std::optional<FlatObject> o = LineParser(line).object();
    auto number = [&](const char* key) {
      auto it = o->numbers.find(key);
      return it == o->numbers.end() ? NAN : it->second;
    };
    if (!o || !o->strings.count("split") || !std::isfinite(number("step")) || !std::isfinite(number("loss"))) {
      ++lc.skipped_lines;
      continue;
    }
    lc.by_split[o->strings["split"]].emplace_back(number("step"), number("loss"));
  }
  for (auto& [split, pts] : lc.by_split)
    std::stable_sort(pts.begin(), pts.end(), [](auto& a, auto& b) { return a.first < b.first; });
  return lc;
}

}  // namespace chart
