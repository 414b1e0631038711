// chart prepare --meds DIR --out DIR [--config F] [--set k=v]... [--overwrite]
#include "core/config.h"
#include "core/log.h"
#include "data/prepare.h"
#include "train/app/commands.h"

namespace chart {

int cmd_prepare(Args& args) {
  const std::string meds = args.required("--meds");
  const std::string out = args.required("--out");
  const std::string config_path = args.option("--config").value_or("");
  const auto sets = args.sets();
  const bool overwrite = args.flag("--overwrite");
  args.done();
  Config config = load_config(config_path, sets);
  data::PrepareResult r = data::prepare_dataset(meds, out, config, overwrite);
  for (const auto& [name, c] : r.splits)
    info("prepare: {:>8}: {} subjects, {} events -> {} tokens ({} [UNK]) in {} shard(s)", name,
         c.subjects, c.events, c.tokens, c.unknown, c.shards);
  info("prepare: wrote {} in {:.1f}s (vocabulary {} tokens, hash {})", out, r.seconds, r.vocab_size,
       r.vocab_hash.substr(0, 12));
  return 0;
}

}  // namespace chart
