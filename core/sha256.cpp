#include "core/sha256.h"

#include <cstdio>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <cstring>
#include <vector>

#include "core/error.h"

namespace chart {
namespace {
constexpr uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

inline uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

#if defined(__x86_64__)
// The same compression with the x86 SHA extensions (SHA-NI), ~5x the portable code; used when the
// CPU has them. The known-answer tests cover whichever path runs.
__attribute__((target("sha,sse4.1"))) void block_shani(uint32_t* h, const uint8_t* p) {
  const __m128i shuffle = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
  __m128i tmp = _mm_loadu_si128(reinterpret_cast<const __m128i*>(h));       // DCBA
  __m128i state1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(h + 4));  // HGFE
  tmp = _mm_shuffle_epi32(tmp, 0xB1);                                        // CDAB
  state1 = _mm_shuffle_epi32(state1, 0x1B);                                  // EFGH
  __m128i state0 = _mm_alignr_epi8(tmp, state1, 8);                          // ABEF
  state1 = _mm_blend_epi16(state1, tmp, 0xF0);                               // CDGH
  const __m128i abef = state0, cdgh = state1;
  __m128i w[4];
  for (int i = 0; i < 4; ++i)
    w[i] = _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * i)), shuffle);
  for (int r = 0; r < 16; ++r) {
    __m128i cur = w[r % 4];
    if (r >= 4) {
      // w[r] = sha256msg2(sha256msg1(w[r-4], w[r-3]) + alignr(w[r-1], w[r-2], 4), w[r-1])
      __m128i m = _mm_sha256msg1_epu32(w[r % 4], w[(r + 1) % 4]);
      m = _mm_add_epi32(m, _mm_alignr_epi8(w[(r + 3) % 4], w[(r + 2) % 4], 4));
      cur = w[r % 4] = _mm_sha256msg2_epu32(m, w[(r + 3) % 4]);
    }
    __m128i msg = _mm_add_epi32(cur, _mm_loadu_si128(reinterpret_cast<const __m128i*>(K + 4 * r)));
    state1 = _mm_sha256rnds2_epu32(state1, state0, msg);
    msg = _mm_shuffle_epi32(msg, 0x0E);
    state0 = _mm_sha256rnds2_epu32(state0, state1, msg);
  }
  state0 = _mm_add_epi32(state0, abef);
  state1 = _mm_add_epi32(state1, cdgh);
  tmp = _mm_shuffle_epi32(state0, 0x1B);                                     // FEBA
  state1 = _mm_shuffle_epi32(state1, 0xB1);                                  // DCHG
  state0 = _mm_blend_epi16(tmp, state1, 0xF0);                               // DCBA
  state1 = _mm_alignr_epi8(state1, tmp, 8);                                  // ABEF
  _mm_storeu_si128(reinterpret_cast<__m128i*>(h), state0);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(h + 4), state1);
}
const bool kHaveShaNi = __builtin_cpu_supports("sha") && __builtin_cpu_supports("sse4.1");
#else
const bool kHaveShaNi = false;
#endif
}  // namespace

Sha256::Sha256(bool portable)
    : h_{0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19},
      portable_(portable) {}

void Sha256::block(const uint8_t* p) {
#if defined(__x86_64__)
  if (kHaveShaNi && !portable_) return block_shani(h_.data(), p);
#endif
  uint32_t w[64];
  for (int i = 0; i < 16; ++i)
    w[i] = uint32_t(p[4 * i]) << 24 | uint32_t(p[4 * i + 1]) << 16 | uint32_t(p[4 * i + 2]) << 8 |
           uint32_t(p[4 * i + 3]);
  for (int i = 16; i < 64; ++i) {
    uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  uint32_t a = h_[0], b = h_[1], c = h_[2], d = h_[3], e = h_[4], f = h_[5], g = h_[6], h = h_[7];
  for (int i = 0; i < 64; ++i) {
    uint32_t t1 = h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
    uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    h = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
  }
  h_[0] += a; h_[1] += b; h_[2] += c; h_[3] += d; h_[4] += e; h_[5] += f; h_[6] += g; h_[7] += h;
}

void Sha256::update(const void* data, size_t n) {
  auto* p = static_cast<const uint8_t*>(data);
  total_ += n;
  if (buf_len_ > 0) {
    size_t take = std::min(n, 64 - buf_len_);
    std::memcpy(buf_.data() + buf_len_, p, take);
    buf_len_ += take; p += take; n -= take;
    if (buf_len_ == 64) { block(buf_.data()); buf_len_ = 0; }
  }
  for (; n >= 64; p += 64, n -= 64) block(p);
  if (n > 0) { std::memcpy(buf_.data(), p, n); buf_len_ = n; }
}

std::string Sha256::hex() {
  uint64_t bits = total_ * 8;
  uint8_t pad = 0x80;
  update(&pad, 1);
  uint8_t zero = 0;
  while (buf_len_ != 56) update(&zero, 1);
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = uint8_t(bits >> (56 - 8 * i));
  update(len, 8);
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (uint32_t v : h_)
    for (int s = 28; s >= 0; s -= 4) out += digits[(v >> s) & 0xf];
  return out;
}

std::string sha256_hex(std::string_view bytes) {
  Sha256 h;
  h.update(bytes);
  return h.hex();
}

std::string sha256_file(const std::filesystem::path& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) fail("cannot open {} to checksum", path.string());
  Sha256 h;
  std::vector<char> buf(1 << 20);
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) h.update(buf.data(), n);
  bool bad = std::ferror(f);
  std::fclose(f);
  if (bad) fail("read error while checksumming {}", path.string());
  return h.hex();
}

}  // namespace chart
