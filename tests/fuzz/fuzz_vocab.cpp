// libFuzzer target for the vocabulary reader (vocab.tsv), which `chart export` and the import of an
// export read from directories made elsewhere: data::Vocab::parse() on arbitrary bytes must return
// a vocabulary with the special tokens first, or throw chart::Error; anything else is a bug.
#include <cstdint>
#include <string>

#include "core/error.h"
#include "data/vocab.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto v = chart::data::Vocab::parse(std::string(reinterpret_cast<const char*>(data), size), "fuzz");
    if (v.size() < 3 || v.token(chart::data::Vocab::kPad) != "[PAD]") __builtin_trap();
    for (uint32_t id = 0; id < v.size(); ++id)
      if (v.find(v.token(id)).value_or(~0u) != id) __builtin_trap();  // the index agrees with the list
  } catch (const chart::Error&) {
  }
  return 0;
}
