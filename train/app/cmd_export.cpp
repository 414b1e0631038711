// chart export --checkpoint PATH --out DIR [--format hf] [--drop-time-features] [--vocab FILE] [--overwrite]
#include "core/log.h"
#include "train/app/commands.h"
#include "train/interop/hf_export.h"

namespace chart {

int cmd_export(Args& args) {
  const std::string checkpoint = args.required("--checkpoint");
  const std::string out = args.required("--out");
  const std::string format = args.option("--format").value_or("hf");
  HfExportOptions o;
  o.drop_time_features = args.flag("--drop-time-features");
  o.vocab = args.option("--vocab").value_or("");
  o.overwrite = args.flag("--overwrite");
  args.done();
  if (format != "hf") throw UsageError("--format " + format + " is not known; the one format is hf");
  HfExportResult r = export_hf(checkpoint, out, o);
  info("export: {} tensors to {} (LlamaForCausalLM){}", r.tensors, r.dir.string(),
       r.dropped.empty() ? ", lossless" : "");
  for (const auto& d : r.dropped) warn("export: dropped {}", d);
  return 0;
}

}  // namespace chart
