#include "train/interop/vocab_source.h"

#include "core/error.h"
#include "core/files.h"
#include "core/json.h"
#include "core/log.h"
#include "core/sha256.h"
#include "train/checkpoint/model_card.h"
#include "train/interop/load_pretrained.h"

namespace chart {
namespace fs = std::filesystem;

fs::path checkpoint_vocab(const Pretrained& p, const std::string& given, const std::string& option) {
  std::vector<fs::path> candidates;
  if (!given.empty()) candidates.push_back(given);
  candidates.push_back(p.dir / "vocab.tsv");
  if (!p.config.data.dir.empty()) candidates.push_back(fs::path(p.config.data.dir) / "vocab.tsv");
  try {  // the model card records the dataset's absolute path
    const Json card = parse_json(read_model_card_json(p.dir), (p.dir / "model_card.json").string());
    const Json& dir = card.at("training_data").at("dataset_dir");
    if (dir.is_string()) candidates.push_back(fs::path(dir.get<std::string>()) / "vocab.tsv");
  } catch (const std::exception&) {
  }
  for (const auto& c : candidates) {
    const bool is_given = !given.empty() && c == fs::path(given);
    if (!fs::is_regular_file(c)) {
      if (is_given) fail("{} {} does not exist", option, given);
      continue;
    }
    if (p.vocab_hash.empty() || sha256_file(c) == p.vocab_hash) return c;
    if (is_given)
      throw Error(fmt::format("{} {} is not the vocabulary checkpoint {} was trained with (hash {} != {})", option,
                              given, p.dir.string(), sha256_file(c).substr(0, 12), p.vocab_hash.substr(0, 12)),
                  "pass the vocab.tsv of the dataset the model was trained on");
    warn("{} is another vocabulary than checkpoint {}'s; not used", c.string(), p.dir.string());
  }
  throw Error(fmt::format("found no vocab.tsv for checkpoint {} (looked beside it and in its dataset {})",
                          p.dir.string(), p.config.data.dir),
              fmt::format("pass {} DATASET/vocab.tsv (the token dataset the model was trained on)", option));
}

data::FixedVocab vocab_source(const std::string& from) {
  const fs::path f(from);
  if (!fs::exists(f))
    fail("--vocab {}: no such file or directory (a token dataset, a vocab.tsv, a checkpoint or an export)", from);
  if (fs::is_regular_file(f)) return {read_file(f), f.string()};
  if (fs::is_regular_file(f / "vocab.tsv") && fs::is_regular_file(f / "manifest.json"))
    return {read_file(f / "vocab.tsv"), (f / "vocab.tsv").string()};  // a token dataset
  Pretrained p;
  try {
    p = load_pretrained(from);
  } catch (const Error& e) {
    throw Error(fmt::format("--vocab {}: not a token dataset (no vocab.tsv and manifest.json) and not a checkpoint "
                            "or export: {}", from, e.what()),
                "pass the token dataset the model was trained on, its vocab.tsv, a checkpoint or a chart export");
  }
  const fs::path tsv = checkpoint_vocab(p, "", "--vocab");
  return {read_file(tsv), tsv.string()};
}

}  // namespace chart
