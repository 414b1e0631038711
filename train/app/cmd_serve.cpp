// chart serve CONFIG [--set k=v]...: fine-tuned models behind an HTTP API (serve/server.h).
#include "serve/server.h"
#include "train/app/commands.h"

namespace chart {

int cmd_serve(Args& args) {
  auto config_path = args.positional();
  if (!config_path) throw UsageError("CONFIG is required (e.g. configs/serve.yaml)");
  serve::ServeSource source{*config_path, args.sets()};
  args.done();
  return serve::run_serve(source);
}

}  // namespace chart
