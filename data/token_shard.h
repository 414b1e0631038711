// Token shards: the binary files `chart prepare` writes and the loader memory-maps.
//
//   offset 0    header (256 bytes): magic "CHARTTOK", format version, section offsets and sizes,
//               the SHA-256 of the vocabulary the tokens index
//   tokens      uint32 x n_tokens      token ids
//   times       int64  x n_tokens      each token's absolute time, microseconds since 1970 (UTC)
//   index       SubjectEntry x n_subjects
// All little-endian; sections 64-byte aligned. The reader checks magic, version, the vocabulary
// hash and that every section lies inside the file before trusting any of it.
#pragma once
#include <array>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

namespace chart::data {

inline constexpr char kShardMagic[8] = {'C', 'H', 'A', 'R', 'T', 'T', 'O', 'K'};
inline constexpr uint32_t kShardVersion = 1;

struct SubjectEntry {
  int64_t subject_id;
  uint64_t token_start;  // index of the subject's first token in the shard
  uint32_t n_tokens;
  uint32_t reserved;
  int64_t birth_us;      // birth time (or first event time) in microseconds
};
static_assert(sizeof(SubjectEntry) == 32, "on-disk layout");

using VocabHash = std::array<uint8_t, 32>;
VocabHash vocab_hash_from_hex(const std::string& hex);
std::string vocab_hash_hex(const VocabHash& h);

// Streams subjects into a shard: tokens go straight to the file, times to a side file appended
// at finish(). The file is complete and valid only after finish() returns.
class ShardWriter {
 public:
  ShardWriter(std::filesystem::path path, const VocabHash& vocab_hash);
  ~ShardWriter();
  void add(int64_t subject_id, int64_t birth_us, const std::vector<uint32_t>& tokens,
           const std::vector<int64_t>& times);
  void finish();
  uint64_t n_tokens() const { return n_tokens_; }
  uint64_t n_subjects() const { return index_.size(); }

 private:
  std::filesystem::path path_, times_path_;
  VocabHash hash_;
  FILE* f_ = nullptr;
  FILE* times_ = nullptr;
  std::vector<SubjectEntry> index_;
  uint64_t n_tokens_ = 0;
  bool finished_ = false;
};

// A memory-mapped shard. Movable, not copyable.
class TokenShard {
 public:
  // Throws chart::Error naming the file if it is not a valid shard or indexes another vocabulary.
  static TokenShard open(const std::filesystem::path& path, const VocabHash& expected_vocab);
  TokenShard(TokenShard&& o) noexcept;
  TokenShard& operator=(TokenShard&& o) noexcept;
  TokenShard(const TokenShard&) = delete;
  ~TokenShard();

  size_t n_subjects() const { return n_subjects_; }
  uint64_t n_tokens() const { return n_tokens_; }
  const SubjectEntry& subject(size_t i) const { return index_[i]; }
  const uint32_t* tokens() const { return tokens_; }
  const int64_t* times() const { return times_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  TokenShard() = default;
  std::filesystem::path path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  size_t n_subjects_ = 0;
  uint64_t n_tokens_ = 0;
  const uint32_t* tokens_ = nullptr;
  const int64_t* times_ = nullptr;
  const SubjectEntry* index_ = nullptr;
};

}  // namespace chart::data
