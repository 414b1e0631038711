// The vocabulary: special tokens, time-interval tokens, quantile tokens Q1..Qn, then one token
// per key (code, birth year, text) seen in at least prepare.min_subjects distinct train subjects,
// most common first. Numeric codes carry the cut points of their quantile bins. Saved as
// vocab.tsv; its SHA-256 is the vocabulary hash that every token shard records.
#pragma once
#include <cstdint>
#include <deque>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace chart::data {

enum class TokenKind { kSpecial, kTime, kQuantile, kCode };

class Vocab;

// A code pattern: the code itself, or "X*" for every code starting with X.
bool code_matches(const std::string& code, const std::string& pattern);
// mask[id] = 1 for code tokens matching one of `patterns`. A pattern no token matches is a
// chart::Error naming `what` (the config key) and the pattern.
std::vector<uint8_t> code_token_mask(const Vocab& vocab, const std::vector<std::string>& patterns,
                                     const std::string& what);

class Vocab {
 public:
  static constexpr uint32_t kPad = 0, kBos = 1, kUnk = 2;

  // time_names from TimeBins; codes: (key, distinct train subjects, cut points), in token order.
  struct CodeEntry {
    std::string key;
    int64_t subjects = 0;
    std::vector<float> cuts;
  };
  Vocab(const std::vector<std::string>& time_names, int numeric_bins, std::vector<CodeEntry> codes);

  Vocab(Vocab&&) = default;  // the index holds views into tokens_: moving keeps them valid,
  Vocab& operator=(Vocab&&) = default;  // copying would not
  Vocab(const Vocab&) = delete;
  Vocab& operator=(const Vocab&) = delete;

  static Vocab load(const std::filesystem::path& tsv);  // throws chart::Error naming the line
  static Vocab parse(const std::string& text, const std::string& name);  // vocab.tsv's contents
  std::string to_tsv() const;

  size_t size() const { return tokens_.size(); }
  const std::string& token(uint32_t id) const { return tokens_.at(id); }
  TokenKind kind(uint32_t id) const { return kinds_.at(id); }
  std::optional<uint32_t> find(std::string_view key) const;
  uint32_t time_token(int interval) const { return time_base_ + interval; }
  // The quantile token for `value` of the code with token `code_id`; none if it has no cut points.
  std::optional<uint32_t> quantile_token(uint32_t code_id, float value) const;
  const std::vector<float>& cuts(uint32_t id) const { return cuts_.at(id); }
  int numeric_bins() const { return numeric_bins_; }
  std::vector<std::string> time_names() const;  // the time-interval tokens, in order

 private:
  Vocab() = default;
  void add(std::string token, TokenKind kind, int64_t subjects, std::vector<float> cuts);
  std::deque<std::string> tokens_;  // a deque: elements never move, so index_ may view them
  std::vector<TokenKind> kinds_;
  std::vector<int64_t> subjects_;
  std::vector<std::vector<float>> cuts_;
  std::unordered_map<std::string_view, uint32_t> index_;
  uint32_t time_base_ = 0, quantile_base_ = 0;
  int numeric_bins_ = 0;
};

}  // namespace chart::data
