#include "model/safetensors_layout.h"

#include <algorithm>
#include <cctype>
#include <limits>
#include <set>

#include "core/error.h"

namespace chart {
namespace {

// A JSON reader for exactly what a safetensors header holds: objects, arrays, strings and
// non-negative integers. Anything else, or anything malformed, is an error.
class HeaderParser {
 public:
  HeaderParser(std::string_view text, const std::string& file) : s_(text), file_(file) {}

  struct Entry {
    std::string dtype;
    std::vector<int64_t> shape;
    std::vector<uint64_t> offsets;
  };

  void parse(std::vector<std::pair<std::string, Entry>>& entries, std::map<std::string, std::string>& meta) {
    expect('{');
    if (peek() == '}') { ++i_; return end(); }
    for (;;) {
      std::string key = string();
      expect(':');
      if (key == "__metadata__") {
        expect('{');
        if (peek() != '}')
          for (;;) {
            std::string k = string();
            expect(':');
            meta[k] = string();
            if (peek() == ',') { ++i_; continue; }
            break;
          }
        expect('}');
      } else {
        Entry e;
        expect('{');
        for (;;) {
          std::string field = string();
          expect(':');
          if (field == "dtype") e.dtype = string();
          else if (field == "shape") e.shape = int_array<int64_t>();
          else if (field == "data_offsets") e.offsets = int_array<uint64_t>();
          else error("unknown field '" + field + "' in tensor '" + key + "'");
          if (peek() == ',') { ++i_; continue; }
          break;
        }
        expect('}');
        if (!names_.insert(key).second) error("tensor '" + key + "' appears twice");
        entries.emplace_back(key, std::move(e));
      }
      if (peek() == ',') { ++i_; continue; }
      break;
    }
    expect('}');
    end();
  }

 private:
  [[noreturn]] void error(const std::string& what) {
    fail("{}: bad safetensors header at byte {}: {}", file_, 8 + i_, what);
  }
  void skip_ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\t' || s_[i_] == '\r')) ++i_;
  }
  char peek() {
    skip_ws();
    if (i_ >= s_.size()) error("unexpected end");
    return s_[i_];
  }
  void expect(char c) {
    if (peek() != c) error(std::string("expected '") + c + "'");
    ++i_;
  }
  void end() {
    skip_ws();
    if (i_ != s_.size()) error("trailing bytes after the header object");
  }
  std::string string() {
    expect('"');
    std::string out;
    while (i_ < s_.size() && s_[i_] != '"') {
      char c = s_[i_++];
      if (static_cast<unsigned char>(c) < 0x20) error("control character in a string");
      if (c == '\\') {
        if (i_ >= s_.size()) error("unexpected end in a string");
        char e = s_[i_++];
        switch (e) {
          case '"': case '\\': case '/': out += e; break;
          case 'n': out += '\n'; break;
          case 't': out += '\t'; break;
          case 'r': out += '\r'; break;
          case 'b': out += '\b'; break;
          case 'f': out += '\f'; break;
          case 'u': {
            if (i_ + 4 > s_.size()) error("bad \\u escape");
            unsigned v = 0;
            for (int k = 0; k < 4; ++k) {
              char h = s_[i_++];
              v = v * 16 + (std::isdigit(static_cast<unsigned char>(h)) ? h - '0'
                            : (h >= 'a' && h <= 'f') ? h - 'a' + 10
                            : (h >= 'A' && h <= 'F') ? h - 'A' + 10
                                                     : (error("bad \\u escape"), 0));
            }
            if (v < 0x80) out += static_cast<char>(v);
            else if (v < 0x800) { out += char(0xC0 | (v >> 6)); out += char(0x80 | (v & 0x3F)); }
            else { out += char(0xE0 | (v >> 12)); out += char(0x80 | ((v >> 6) & 0x3F)); out += char(0x80 | (v & 0x3F)); }
            break;
          }
          default: error("bad escape");
        }
      } else {
        out += c;
      }
    }
    if (i_ >= s_.size()) error("unterminated string");
    ++i_;
    return out;
  }
  template <typename T>
  std::vector<T> int_array() {
    std::vector<T> out;
    expect('[');
    if (peek() == ']') { ++i_; return out; }
    for (;;) {
      skip_ws();
      if (i_ >= s_.size() || !std::isdigit(static_cast<unsigned char>(s_[i_]))) error("expected a non-negative integer");
      uint64_t v = 0;
      while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) {
        uint64_t d = static_cast<uint64_t>(s_[i_++] - '0');
        if (v > (static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) - d) / 10) error("integer too large");
        v = v * 10 + d;
      }
      out.push_back(static_cast<T>(v));
      if (out.size() > 64) error("array too long");
      if (peek() == ',') { ++i_; continue; }
      break;
    }
    expect(']');
    return out;
  }
  std::string_view s_;
  std::string file_;
  size_t i_ = 0;
  std::set<std::string> names_;  // a header of n tensors is checked for duplicates in O(n log n)
};

}  // namespace

size_t safetensors_dtype_size(std::string_view dtype) {
  static const std::pair<const char*, size_t> kSizes[] = {
      {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8},
      {"I32", 4}, {"I16", 2}, {"I8", 1},  {"U8", 1},   {"BOOL", 1}};
  for (const auto& [n, s] : kSizes)
    if (dtype == n) return s;
  return 0;
}

SafetensorsLayout parse_safetensors_layout(std::string_view bytes, const std::string& name) {
  if (bytes.size() < 8) fail("{}: {} bytes, too short for a safetensors file", name, bytes.size());
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
  if (n > bytes.size() - 8 || n > (100u << 20))
    fail("{}: safetensors header length {} exceeds the file ({} bytes): truncated or not safetensors",
         name, n, bytes.size());
  std::vector<std::pair<std::string, HeaderParser::Entry>> entries;
  SafetensorsLayout out;
  HeaderParser(bytes.substr(8, n), name).parse(entries, out.metadata);
  out.data_start = 8 + n;
  const uint64_t data_size = bytes.size() - 8 - n;
  for (auto& [tname, e] : entries) {
    SafetensorsEntry t;
    t.name = tname;
    t.element_size = safetensors_dtype_size(e.dtype);
    if (t.element_size == 0) fail("{}: tensor '{}' has unknown dtype '{}'", name, tname, e.dtype);
    if (e.offsets.size() != 2) fail("{}: tensor '{}' needs data_offsets [begin, end]", name, tname);
    t.numel = 1;
    for (int64_t s : e.shape) {
      if (s != 0 && t.numel > std::numeric_limits<uint64_t>::max() / 16 / static_cast<uint64_t>(s))
        fail("{}: tensor '{}' shape is too large", name, tname);
      t.numel *= static_cast<uint64_t>(s);
    }
    t.begin = e.offsets[0];
    t.end = e.offsets[1];
    if (t.begin > t.end || t.end > data_size)
      fail("{}: tensor '{}' data_offsets [{}, {}] lie outside the {} data bytes", name, tname, t.begin, t.end,
           data_size);
    if (t.end - t.begin != t.numel * t.element_size)
      fail("{}: tensor '{}' has {} bytes for {} elements of {} ({} expected)", name, tname, t.end - t.begin,
           t.numel, e.dtype, t.numel * t.element_size);
    t.dtype = std::move(e.dtype);
    t.shape = std::move(e.shape);
    out.tensors.push_back(std::move(t));
  }
  // Offsets must tile the data exactly: in range, no overlap, no gap, nothing left over.
  std::vector<std::pair<uint64_t, uint64_t>> spans;
  for (const auto& t : out.tensors) spans.emplace_back(t.begin, t.end);
  std::sort(spans.begin(), spans.end());
  uint64_t pos = 0;
  for (const auto& [b, e] : spans) {
    if (b != pos)
      fail("{}: tensor data {} at byte {} of the data (overlapping or a gap)", name,
           b < pos ? "overlaps" : "leaves a gap", b);
    pos = e;
  }
  if (pos != data_size)
    fail("{}: {} bytes after the last tensor: not a valid safetensors file", name, data_size - pos);
  return out;
}

}  // namespace chart
