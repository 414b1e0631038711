#include "data/token_shard.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace chart::data {
namespace {

struct Header {
  char magic[8];
  uint32_t version;
  uint32_t header_bytes;
  uint64_t n_subjects;
  uint64_t n_tokens;
  uint64_t tokens_offset;
  uint64_t times_offset;
  uint64_t index_offset;
  uint64_t file_bytes;
  uint8_t vocab_hash[32];
  uint8_t pad[256 - 8 - 4 - 4 - 6 * 8 - 32];
};
static_assert(sizeof(Header) == 256, "on-disk layout");

constexpr uint64_t align64(uint64_t x) { return (x + 63) & ~uint64_t(63); }

void write_all(FILE* f, const void* p, size_t n, const std::filesystem::path& path) {
  if (n && std::fwrite(p, 1, n, f) != n) fail("write to {} failed: {}", path.string(), std::strerror(errno));
}
void write_zeros(FILE* f, size_t n, const std::filesystem::path& path) {
  static const char zeros[64] = {};
  write_all(f, zeros, n, path);
}

}  // namespace

VocabHash vocab_hash_from_hex(const std::string& hex) {
  VocabHash h{};
  if (hex.size() != 64) fail("vocabulary hash '{}' is not 64 hex digits", hex);
  for (size_t i = 0; i < 32; ++i) h[i] = static_cast<uint8_t>(std::stoi(hex.substr(2 * i, 2), nullptr, 16));
  return h;
}

std::string vocab_hash_hex(const VocabHash& h) {
  std::string s;
  for (uint8_t b : h) s += fmt::format("{:02x}", b);
  return s;
}

ShardWriter::ShardWriter(std::filesystem::path path, const VocabHash& vocab_hash)
    : path_(std::move(path)), hash_(vocab_hash) {
  times_path_ = path_;
  times_path_ += ".times";
  f_ = std::fopen(path_.c_str(), "wb");
  times_ = std::fopen(times_path_.c_str(), "w+b");
  if (!f_ || !times_) fail("cannot create {}: {}", path_.string(), std::strerror(errno));
  Header h{};  // a zero header until finish(): an unfinished shard has no magic
  write_all(f_, &h, sizeof h, path_);
}

ShardWriter::~ShardWriter() {
  if (f_) std::fclose(f_);
  if (times_) std::fclose(times_);
  std::error_code ec;
  std::filesystem::remove(times_path_, ec);
  if (!finished_) std::filesystem::remove(path_, ec);
}

void ShardWriter::add(int64_t subject_id, int64_t birth_us, const std::vector<uint32_t>& tokens,
                      const std::vector<int64_t>& times) {
  if (tokens.size() >= UINT32_MAX) fail("subject {} has {} tokens, more than a shard entry holds", subject_id, tokens.size());
  index_.push_back({subject_id, n_tokens_, static_cast<uint32_t>(tokens.size()), 0, birth_us});
  write_all(f_, tokens.data(), tokens.size() * sizeof(uint32_t), path_);
  write_all(times_, times.data(), times.size() * sizeof(int64_t), times_path_);
  n_tokens_ += tokens.size();
}

void ShardWriter::finish() {
  Header h{};
  std::memcpy(h.magic, kShardMagic, 8);
  h.version = kShardVersion;
  h.header_bytes = sizeof(Header);
  h.n_subjects = index_.size();
  h.n_tokens = n_tokens_;
  h.tokens_offset = sizeof(Header);
  uint64_t pos = h.tokens_offset + n_tokens_ * sizeof(uint32_t);
  h.times_offset = align64(pos);
  write_zeros(f_, h.times_offset - pos, path_);
  // Append the times from the side file.
  std::rewind(times_);
  std::vector<char> buf(1 << 20);
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), times_)) > 0) write_all(f_, buf.data(), n, path_);
  if (std::ferror(times_)) fail("read of {} failed", times_path_.string());
  pos = h.times_offset + n_tokens_ * sizeof(int64_t);
  h.index_offset = align64(pos);
  write_zeros(f_, h.index_offset - pos, path_);
  write_all(f_, index_.data(), index_.size() * sizeof(SubjectEntry), path_);
  h.file_bytes = h.index_offset + index_.size() * sizeof(SubjectEntry);
  std::memcpy(h.vocab_hash, hash_.data(), 32);
  // The header last: a shard cut short by a crash has no magic and is refused.
  if (std::fflush(f_) != 0 || std::fseek(f_, 0, SEEK_SET) != 0) fail("write to {} failed", path_.string());
  write_all(f_, &h, sizeof h, path_);
  if (std::fflush(f_) != 0 || ::fsync(fileno(f_)) != 0 || std::fclose(f_) != 0)
    fail("write to {} failed: {}", path_.string(), std::strerror(errno));
  f_ = nullptr;
  finished_ = true;
}

TokenShard TokenShard::open(const std::filesystem::path& path, const VocabHash& expected_vocab) {
  TokenShard s;
  s.path_ = path;
  const std::string name = path.string();
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) fail("cannot open token shard {}: {}", name, std::strerror(errno));
  struct stat st {};
  ::fstat(fd, &st);
  auto size = static_cast<uint64_t>(st.st_size);
  if (size < sizeof(Header)) {
    ::close(fd);
    fail("{}: {} bytes, too small to be a token shard", name, size);
  }
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) fail("cannot map {}: {}", name, std::strerror(errno));
  s.map_ = map;
  s.map_size_ = size;
  Header h;
  std::memcpy(&h, map, sizeof h);
  if (std::memcmp(h.magic, kShardMagic, 8) != 0)
    throw Error(fmt::format("{}: not a chart token shard (bad magic)", name),
                "an interrupted `chart prepare` leaves no magic; prepare the dataset again");
  if (h.version != kShardVersion)
    fail("{}: token shard format version {}, this chart reads version {}", name, h.version, kShardVersion);
  if (std::memcmp(h.vocab_hash, expected_vocab.data(), 32) != 0)
    fail("{}: made with another vocabulary (hash {}) than the dataset's vocab.tsv", name,
         vocab_hash_hex(*reinterpret_cast<const VocabHash*>(h.vocab_hash)));
  bool ok = h.header_bytes == sizeof(Header) && h.file_bytes == size &&
            h.tokens_offset == sizeof(Header) && h.n_tokens <= size / 12 &&
            h.times_offset >= h.tokens_offset + h.n_tokens * 4 && h.times_offset % 8 == 0 &&
            h.index_offset >= h.times_offset + h.n_tokens * 8 && h.index_offset % 8 == 0 &&
            h.n_subjects <= size / sizeof(SubjectEntry) &&
            h.index_offset + h.n_subjects * sizeof(SubjectEntry) == size;
  if (!ok) fail("{}: token shard header does not match the file ({} bytes): truncated or corrupt", name, size);
  auto* base = static_cast<const char*>(map);
  s.n_subjects_ = h.n_subjects;
  s.n_tokens_ = h.n_tokens;
  s.tokens_ = reinterpret_cast<const uint32_t*>(base + h.tokens_offset);
  s.times_ = reinterpret_cast<const int64_t*>(base + h.times_offset);
  s.index_ = reinterpret_cast<const SubjectEntry*>(base + h.index_offset);
  for (size_t i = 0; i < s.n_subjects_; ++i) {
    const auto& e = s.index_[i];
    if (e.token_start + e.n_tokens > h.n_tokens)
      fail("{}: subject entry {} points past the tokens: corrupt shard", name, i);
  }
  return s;
}

TokenShard::TokenShard(TokenShard&& o) noexcept { *this = std::move(o); }

TokenShard& TokenShard::operator=(TokenShard&& o) noexcept {
  if (this != &o) {
    if (map_) ::munmap(map_, map_size_);
    path_ = std::move(o.path_);
    map_ = o.map_;
    map_size_ = o.map_size_;
    n_subjects_ = o.n_subjects_;
    n_tokens_ = o.n_tokens_;
    tokens_ = o.tokens_;
    times_ = o.times_;
    index_ = o.index_;
    o.map_ = nullptr;
  }
  return *this;
}

TokenShard::~TokenShard() {
  if (map_) ::munmap(map_, map_size_);
}

}  // namespace chart::data
