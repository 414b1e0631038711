// A prepared token dataset on disk (the output of `chart prepare`): its vocabulary and the
// memory-mapped shards of each split, checked against the vocabulary hash.
#pragma once
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "data/token_shard.h"
#include "data/vocab.h"

namespace chart::data {

// Where a subject's tokens are: shard index within its split, and entry index within the shard.
struct SubjectRef {
  uint32_t shard;
  uint32_t entry;
};

class TokenDataset {
 public:
  // Throws chart::Error naming the directory or file when it is not a complete dataset.
  static TokenDataset open(const std::filesystem::path& dir);

  const std::filesystem::path& dir() const { return dir_; }
  const Vocab& vocab() const { return vocab_; }
  const std::string& vocab_hash() const { return vocab_hash_; }
  const std::vector<TokenShard>& shards(const std::string& split) const;
  // Every subject of a split, in shard order.
  std::vector<SubjectRef> subjects(const std::string& split) const;

 private:
  TokenDataset(std::filesystem::path dir, Vocab vocab) : dir_(std::move(dir)), vocab_(std::move(vocab)) {}
  std::filesystem::path dir_;
  Vocab vocab_;
  std::string vocab_hash_;
  std::map<std::string, std::vector<TokenShard>> shards_;
};

}  // namespace chart::data
