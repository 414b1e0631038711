// SHA-256, for manifest and checkpoint checksums that `sha256sum` can verify by hand.
#pragma once
#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace chart {

class Sha256 {
 public:
  // portable: never use the CPU's SHA instructions (for tests of the portable code).
  explicit Sha256(bool portable = false);
  void update(const void* data, size_t n);
  void update(std::string_view s) { update(s.data(), s.size()); }
  std::string hex();  // finishes the hash; call once

 private:
  void block(const uint8_t* p);
  std::array<uint32_t, 8> h_;
  std::array<uint8_t, 64> buf_;
  size_t buf_len_ = 0;
  uint64_t total_ = 0;
  bool portable_ = false;
};

std::string sha256_hex(std::string_view bytes);
std::string sha256_file(const std::filesystem::path& path);  // streams; throws chart::Error

}  // namespace chart
