// libFuzzer target for the safetensors reader (scripts/fuzz_safetensors.sh builds and runs it):
// parse_safetensors_layout() on arbitrary bytes must either return a layout whose every tensor
// lies inside the data, sized exactly as its dtype and shape say, or throw chart::Error. Any other
// exception, a sanitizer report or a trap is a bug. Then it copies each tensor's bytes as
// parse_safetensors() does (without LibTorch), so AddressSanitizer checks those reads too.
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "model/safetensors_layout.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  try {
    chart::SafetensorsLayout l = chart::parse_safetensors_layout(bytes, "fuzz");
    if (l.data_start < 8 || l.data_start > size) __builtin_trap();
    const uint64_t data_size = size - l.data_start;
    uint64_t covered = 0;
    std::vector<char> buf;
    for (const auto& t : l.tensors) {
      uint64_t numel = 1;
      for (int64_t s : t.shape) numel *= static_cast<uint64_t>(s);
      if (t.begin > t.end || t.end > data_size || numel != t.numel || t.end - t.begin != numel * t.element_size ||
          t.element_size != chart::safetensors_dtype_size(t.dtype))
        __builtin_trap();
      buf.resize(t.end - t.begin);
      if (!buf.empty()) std::memcpy(buf.data(), bytes.data() + l.data_start + t.begin, buf.size());
      covered += t.end - t.begin;
    }
    if (covered != data_size) __builtin_trap();  // the tensors tile the data exactly
  } catch (const chart::Error&) {
  }
  return 0;
}
