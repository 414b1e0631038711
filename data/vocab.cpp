#include "data/vocab.h"

#include <algorithm>
#include <sstream>

#include "core/error.h"
#include "core/files.h"

namespace chart::data {
namespace {
const char* kind_name(TokenKind k) {
  switch (k) {
    case TokenKind::kSpecial: return "special";
    case TokenKind::kTime: return "time";
    case TokenKind::kQuantile: return "quantile";
    default: return "code";
  }
}
constexpr const char* kHeader = "# chart vocabulary v1\nid\ttoken\tkind\tsubjects\tcuts\n";
}  // namespace

void Vocab::add(std::string token, TokenKind kind, int64_t subjects, std::vector<float> cuts) {
  if (token.find_first_of("\t\n\r") != std::string::npos)
    fail("code '{}' contains a tab or newline, which the vocabulary cannot hold", token);
  auto id = static_cast<uint32_t>(tokens_.size());
  if (index_.count(token)) fail("vocabulary: duplicate token '{}'", token);
  tokens_.push_back(std::move(token));
  index_.emplace(tokens_.back(), id);
  kinds_.push_back(kind);
  subjects_.push_back(subjects);
  cuts_.push_back(std::move(cuts));
}

Vocab::Vocab(const std::vector<std::string>& time_names, int numeric_bins,
             std::vector<CodeEntry> codes) {
  numeric_bins_ = numeric_bins;
  add("[PAD]", TokenKind::kSpecial, 0, {});
  add("[BOS]", TokenKind::kSpecial, 0, {});
  add("[UNK]", TokenKind::kSpecial, 0, {});
  time_base_ = static_cast<uint32_t>(size());
  for (const auto& n : time_names) add(n, TokenKind::kTime, 0, {});
  quantile_base_ = static_cast<uint32_t>(size());
  for (int q = 1; q <= numeric_bins; ++q) add("Q" + std::to_string(q), TokenKind::kQuantile, 0, {});
  for (auto& c : codes) add(std::move(c.key), TokenKind::kCode, c.subjects, std::move(c.cuts));
}

std::optional<uint32_t> Vocab::find(std::string_view key) const {
  auto it = index_.find(key);
  if (it == index_.end()) return std::nullopt;
  return it->second;
}

std::optional<uint32_t> Vocab::quantile_token(uint32_t code_id, float value) const {
  const auto& c = cuts_[code_id];
  if (c.empty()) return std::nullopt;
  auto bin = static_cast<uint32_t>(std::upper_bound(c.begin(), c.end(), value) - c.begin());
  return quantile_base_ + std::min<uint32_t>(bin, numeric_bins_ - 1);
}

std::vector<std::string> Vocab::time_names() const {
  std::vector<std::string> out;
  for (size_t i = 0; i < tokens_.size(); ++i)
    if (kinds_[i] == TokenKind::kTime) out.push_back(tokens_[i]);
  return out;
}

std::string Vocab::to_tsv() const {
  std::string out = kHeader;
  for (size_t i = 0; i < tokens_.size(); ++i) {
    out += fmt::format("{}\t{}\t{}\t{}\t", i, tokens_[i], kind_name(kinds_[i]), subjects_[i]);
    for (size_t j = 0; j < cuts_[i].size(); ++j)
      out += fmt::format("{}{}", j ? "," : "", cuts_[i][j]);  // shortest text that reads back exactly
    out += "\n";
  }
  return out;
}

Vocab Vocab::load(const std::filesystem::path& tsv) { return parse(read_file(tsv), tsv.string()); }

Vocab Vocab::parse(const std::string& text, const std::string& name) {
  if (text.rfind(kHeader, 0) != 0) fail("{}: not a chart vocabulary (bad header)", name);
  Vocab v;
  std::istringstream in(text.substr(std::string(kHeader).size()));
  std::string line;
  int lineno = 2;
  while (std::getline(in, line)) {
    ++lineno;
    std::vector<std::string> f;
    size_t start = 0;
    for (;;) {
      size_t tab = line.find('\t', start);
      f.push_back(line.substr(start, tab - start));
      if (tab == std::string::npos) break;
      start = tab + 1;
    }
    if (f.size() != 5 || f[0] != std::to_string(v.size()))
      fail("{}:{}: malformed vocabulary line", name, lineno);
    TokenKind kind = f[2] == "special" ? TokenKind::kSpecial
                     : f[2] == "time" ? TokenKind::kTime
                     : f[2] == "quantile" ? TokenKind::kQuantile
                     : f[2] == "code" ? TokenKind::kCode
                                      : (fail("{}:{}: unknown token kind '{}'", name, lineno, f[2]),
                                         TokenKind::kCode);
    std::vector<float> cuts;
    std::istringstream cs(f[4]);
    std::string c;
    int64_t subjects = 0;
    try {  // std::stof/stoll throw std::invalid_argument or std::out_of_range on bad text
      while (std::getline(cs, c, ',')) cuts.push_back(std::stof(c));
      subjects = std::stoll(f[3]);
    } catch (const std::logic_error&) {
      fail("{}:{}: bad number in a vocabulary line", name, lineno);
    }
    if (kind == TokenKind::kTime && v.time_base_ == 0) v.time_base_ = static_cast<uint32_t>(v.size());
    if (kind == TokenKind::kQuantile) {
      if (v.quantile_base_ == 0) v.quantile_base_ = static_cast<uint32_t>(v.size());
      ++v.numeric_bins_;
    }
    v.add(f[1], kind, subjects, std::move(cuts));
  }
  if (v.size() < 3 || v.tokens_[kPad] != "[PAD]" || v.tokens_[kBos] != "[BOS]" || v.tokens_[kUnk] != "[UNK]")
    fail("{}: vocabulary lacks the special tokens [PAD] [BOS] [UNK]", name);
  return v;
}

bool code_matches(const std::string& token, const std::string& pattern) {
  if (!pattern.empty() && pattern.back() == '*') return token.rfind(pattern.substr(0, pattern.size() - 1), 0) == 0;
  return token == pattern;
}

std::vector<uint8_t> code_token_mask(const Vocab& vocab, const std::vector<std::string>& patterns,
                                     const std::string& what) {
  std::vector<uint8_t> mask(vocab.size(), 0);
  for (const auto& p : patterns) {
    bool any = false;
    for (uint32_t id = 0; id < vocab.size(); ++id) {
      if (vocab.kind(id) != TokenKind::kCode || !code_matches(vocab.token(id), p)) continue;
      mask[id] = 1;
      any = true;
    }
    if (!any)
      throw Error(fmt::format("{}: no token of the vocabulary matches '{}'", what, p),
                  "name codes as they appear in vocab.tsv of the token dataset (a trailing * matches a prefix); a code "
                  "seen in fewer than prepare.min_subjects train subjects has no token of its own");
  }
  return mask;
}

}  // namespace chart::data
