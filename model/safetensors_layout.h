// The layout of a safetensors file, checked without LibTorch (so that a fuzzer can drive it
// under AddressSanitizer; scripts/fuzz_safetensors.sh):
//   [u64 little-endian header length N][N bytes of JSON header][tensor bytes]
// parse_safetensors_layout() trusts nothing: the header length against the file, the JSON
// (nlohmann-json; a key twice, nesting deeper than a header's or an array longer than 64 refused),
// the type of every field (objects, strings, non-negative integers), each tensor's dtype, shape
// and data_offsets, and that the offsets tile the data exactly (in range, no overlap, no gap,
// nothing left over). Any failure is a chart::Error naming the file and what is wrong.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace chart {

struct SafetensorsEntry {
  std::string name;
  std::string dtype;          // "F32", "BF16", ... (safetensors names)
  size_t element_size = 0;    // bytes per element of dtype
  std::vector<int64_t> shape;
  uint64_t numel = 0;
  uint64_t begin = 0, end = 0;  // byte range within the data section
};

struct SafetensorsLayout {
  std::vector<SafetensorsEntry> tensors;  // in header order
  std::map<std::string, std::string> metadata;
  uint64_t data_start = 0;  // file offset of the data section (8 + header length)
};

// Bytes per element of a safetensors dtype name; 0 when chart does not know it.
size_t safetensors_dtype_size(std::string_view dtype);

// `name` is used in error messages only (the file's path).
SafetensorsLayout parse_safetensors_layout(std::string_view bytes, const std::string& name);
// The same from the first bytes alone (at least the length prefix and the header), for a file of
// file_size bytes.
SafetensorsLayout parse_safetensors_layout(std::string_view head, uint64_t file_size, const std::string& name);

}  // namespace chart
