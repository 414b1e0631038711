#include "model/safetensors_layout.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <limits>
#include <set>

#include "core/error.h"

namespace chart {
namespace {

// The header as nlohmann reads it, plus what nlohmann does not check: a key that appears twice
// (nlohmann keeps the last), nesting deeper than a header has, and arrays longer than a shape.
// nlohmann::json, not ordered_json: its std::map keeps a header of n tensors O(n log n) (an
// ordered object searches its keys linearly on every insert); the header's order is kept aside.
struct Header {
  nlohmann::json root;
  std::vector<std::string> order;  // top-level keys in the order they appear
};

// nlohmann's text without its "[json.exception.parse_error.101] " prefix.
std::string message(const nlohmann::json::exception& e) {
  const std::string what = e.what();
  const size_t p = what.find("] ");
  return p == std::string::npos ? what : what.substr(p + 2);
}

constexpr size_t kMaxDepth = 3;  // header object > tensor object > shape or data_offsets
constexpr size_t kMaxArray = 64;

Header parse_header(std::string_view text, const std::string& file) {
  using Event = nlohmann::json::parse_event_t;
  struct Open {
    bool object;
    size_t items = 0;
    std::set<std::string> keys;
  };
  std::vector<Open> open;
  Header h;
  bool complete = false;  // the top-level value has ended
  auto refuse = [&](const std::string& what) { fail("{}: bad safetensors header: {}", file, what); };
  auto count_item = [&] {
    if (!open.empty() && !open.back().object && ++open.back().items > kMaxArray) refuse("array too long");
  };
  auto callback = [&](int, Event ev, nlohmann::json& j) {
    switch (ev) {
      case Event::object_start:
      case Event::array_start:
        count_item();
        if (open.size() >= kMaxDepth) refuse("values nested deeper than a safetensors header has");
        open.push_back({ev == Event::object_start});
        break;
      case Event::key: {
        std::string k = j.get<std::string>();
        if (open.size() == 1) h.order.push_back(k);
        if (!open.back().keys.insert(std::move(k)).second)
          refuse(open.size() == 1 ? "tensor '" + j.get<std::string>() + "' appears twice"
                                  : "key '" + j.get<std::string>() + "' appears twice in one object");
        break;
      }
      case Event::value:
        count_item();
        if (open.empty()) complete = true;
        break;
      case Event::object_end:
      case Event::array_end:
        open.pop_back();
        if (open.empty()) complete = true;
        break;
    }
    return true;
  };
  try {
    h.root = nlohmann::json::parse(text.begin(), text.end(), callback);
  } catch (const nlohmann::json::parse_error& e) {
    if (complete) refuse("trailing bytes after the header object");
    fail("{}: bad safetensors header at byte {}: {}", file, 8 + std::max<size_t>(e.byte, 1) - 1, message(e));
  } catch (const nlohmann::json::exception& e) {  // a number too large for a double, ...
    refuse(message(e));
  }
  return h;
}

// A shape entry or offset: a JSON integer in [0, 2^63).
uint64_t non_negative(const nlohmann::json& v, const std::string& file, const std::string& where) {
  if (v.is_number_unsigned()) {
    const uint64_t x = v.get<uint64_t>();
    if (x > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      fail("{}: bad safetensors header: {}: integer too large", file, where);
    return x;
  }
  if (v.is_number_float() && v.get<double>() >= 0x1p63)  // a literal beyond uint64 reads as a float
    fail("{}: bad safetensors header: {}: integer too large", file, where);
  fail("{}: bad safetensors header: {}: expected a non-negative integer, not {}", file, where, v.dump());
}

template <typename T>
std::vector<T> int_array(const nlohmann::json& v, const std::string& file, const std::string& where) {
  if (!v.is_array()) fail("{}: bad safetensors header: {}: expected an array, not {}", file, where, v.type_name());
  std::vector<T> out;
  for (const auto& x : v) out.push_back(static_cast<T>(non_negative(x, file, where)));
  return out;
}

struct Entry {
  std::string dtype;
  std::vector<int64_t> shape;
  std::vector<uint64_t> offsets;
};

Entry tensor_entry(const std::string& tname, const nlohmann::json& v, const std::string& file) {
  if (!v.is_object())
    fail("{}: bad safetensors header: tensor '{}': expected an object, not {}", file, tname, v.type_name());
  for (const auto& [field, x] : v.items())
    if (field != "dtype" && field != "shape" && field != "data_offsets")
      fail("{}: bad safetensors header: unknown field '{}' in tensor '{}'", file, field, tname);
  Entry e;
  if (!v.contains("dtype") || !v["dtype"].is_string())
    fail("{}: bad safetensors header: tensor '{}' needs a dtype string", file, tname);
  e.dtype = v["dtype"].get<std::string>();
  if (!v.contains("shape")) fail("{}: bad safetensors header: tensor '{}' has no shape", file, tname);
  e.shape = int_array<int64_t>(v["shape"], file, "shape of '" + tname + "'");
  if (v.contains("data_offsets")) e.offsets = int_array<uint64_t>(v["data_offsets"], file, "data_offsets of '" + tname + "'");
  return e;
}

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
  return parse_safetensors_layout(bytes, bytes.size(), name);
}

SafetensorsLayout parse_safetensors_layout(std::string_view bytes, uint64_t file_size, const std::string& name) {
  if (file_size < 8 || bytes.size() < 8) fail("{}: {} bytes, too short for a safetensors file", name, file_size);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
  if (n > file_size - 8 || n > bytes.size() - 8 || n > (100u << 20))
    fail("{}: safetensors header length {} exceeds the file ({} bytes): truncated or not safetensors",
         name, n, file_size);
  const Header h = parse_header(bytes.substr(8, n), name);
  if (!h.root.is_object())
    fail("{}: bad safetensors header: expected '{{' (an object), not {}", name, h.root.type_name());
  SafetensorsLayout out;
  out.data_start = 8 + n;
  const uint64_t data_size = file_size - 8 - n;
  for (const std::string& tname : h.order) {
    const nlohmann::json& v = h.root.at(tname);
    if (tname == "__metadata__") {
      if (!v.is_object())
        fail("{}: bad safetensors header: __metadata__: expected an object, not {}", name, v.type_name());
      for (const auto& [k, s] : v.items()) {
        if (!s.is_string())
          fail("{}: bad safetensors header: __metadata__ '{}': expected '\"' (a string), not {}", name, k,
               s.type_name());
        out.metadata[k] = s.get<std::string>();
      }
      continue;
    }
    Entry e = tensor_entry(tname, v, name);
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
