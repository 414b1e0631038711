// chart prepare --meds DIR --out DIR [--vocab FROM] [--config F] [--set k=v]... [--overwrite]
#include "core/config.h"
#include "core/log.h"
#include "data/prepare.h"
#include "train/app/commands.h"
#include "train/interop/vocab_source.h"

namespace chart {

int cmd_prepare(Args& args) {
  const std::string meds = args.required("--meds");
  const std::string out = args.required("--out");
  const std::string config_path = args.option("--config").value_or("");
  auto sets = args.sets();
  if (auto from = args.option("--vocab")) sets.push_back("prepare.vocab=" + *from);  // validated with the rest
  const bool overwrite = args.flag("--overwrite");
  args.done();
  Config config = load_config(config_path, sets);
  std::optional<data::FixedVocab> fixed;
  if (!config.prepare.vocab.empty()) fixed = vocab_source(config.prepare.vocab);
  data::PrepareResult r = data::prepare_dataset(meds, out, config, overwrite, fixed ? &*fixed : nullptr);
  for (const auto& [name, c] : r.splits)
    info("prepare: {:>8}: {} subjects, {} events -> {} tokens ({} [UNK], {:.2f}%) in {} shard(s)", name, c.subjects,
         c.events, c.tokens, c.unknown, c.events ? 100.0 * c.unknown / c.events : 0.0, c.shards);
  info("prepare: wrote {} in {:.1f}s (vocabulary {} tokens, hash {}{})", out, r.seconds, r.vocab_size,
       r.vocab_hash.substr(0, 12), r.vocab_from.empty() ? "" : ", from " + r.vocab_from);
  return 0;
}

}  // namespace chart
