// SHA-256, for manifest and checkpoint checksums that `sha256sum` can verify by hand. OpenSSL's
// libcrypto computes it (with the CPU's SHA instructions where it has them).
#pragma once
#include <filesystem>
#include <string>
#include <string_view>

struct evp_md_ctx_st;  // OpenSSL's EVP_MD_CTX, kept out of every includer

namespace chart {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(const void* data, size_t n);
  void update(std::string_view s) { update(s.data(), s.size()); }
  std::string hex();  // finishes the hash; call once

 private:
  evp_md_ctx_st* ctx_;
};

std::string sha256_hex(std::string_view bytes);
std::string sha256_file(const std::filesystem::path& path);  // streams; throws chart::Error

}  // namespace chart
