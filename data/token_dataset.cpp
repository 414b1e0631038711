#include "data/token_dataset.h"

#include <algorithm>

#include "core/error.h"
#include "core/files.h"
#include "core/sha256.h"
#include "data/meds_reader.h"

namespace chart::data {

TokenDataset TokenDataset::open(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  if (dir.empty())
    throw Error("data.dir is not set", "prepare a dataset with `chart prepare` and pass --set data.dir=DIR");
  if (!fs::is_directory(dir)) fail("token dataset {} does not exist", dir.string());
  if (!fs::exists(dir / "manifest.json"))
    throw Error(fmt::format("{} is not a complete token dataset (no manifest.json)", dir.string()),
                "run `chart prepare --meds MEDS_DIR --out " + dir.string() + "`");
  const std::string tsv = read_file(dir / "vocab.tsv");  // read once: parsed and hashed
  TokenDataset ds(dir, Vocab::parse(tsv, (dir / "vocab.tsv").string()));
  ds.vocab_hash_ = sha256_hex(tsv);
  const VocabHash hash = vocab_hash_from_hex(ds.vocab_hash_);
  for (const auto& split : split_names()) {
    auto& list = ds.shards_[split];
    if (!fs::is_directory(dir / split)) continue;
    std::vector<fs::path> paths;
    for (const auto& e : fs::directory_iterator(dir / split))
      if (e.path().extension() == ".bin") paths.push_back(e.path());
    std::sort(paths.begin(), paths.end());
    for (const auto& p : paths) list.push_back(TokenShard::open(p, hash));
  }
  return ds;
}

const std::vector<TokenShard>& TokenDataset::shards(const std::string& split) const {
  auto it = shards_.find(split);
  if (it == shards_.end()) fail("token dataset {}: unknown split '{}'", dir_.string(), split);
  return it->second;
}

std::vector<SubjectRef> TokenDataset::subjects(const std::string& split) const {
  std::vector<SubjectRef> out;
  const auto& list = shards(split);
  for (uint32_t s = 0; s < list.size(); ++s)
    for (uint32_t e = 0; e < list[s].n_subjects(); ++e) out.push_back({s, e});
  return out;
}

}  // namespace chart::data
