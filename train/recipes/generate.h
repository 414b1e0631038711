// `chart generate`: zero-shot risk, as ETHOS and Delphi-2M estimate it. For each label row of a
// split, the subject's history up to prediction_time (its last generate.prompt_tokens tokens) is
// the prompt; generate.samples futures are sampled from the pretrained model with a KV cache,
// the clock advancing by each sampled time-interval token (the middle of its interval; the
// open-ended last interval counts its lower edge, as the tokenizer repeats it per span). A
// trajectory ends when it samples an outcome code within generate.horizon (a hit), a stop code,
// passes the horizon, or uses up generate.max_new_tokens (truncated: no hit, and reported). A
// trajectory that fills the model's context continues in a new window prompted with its last
// prompt_tokens tokens (history and samples alike), as ETHOS slides its window.
// P(outcome within horizon) is the fraction of hits. Writes run.dir/predictions.parquet (the
// shape `chart eval` scores with eval.predictions) and run.dir/generate.json (throughput,
// trajectory lengths, truncation).
#pragma once
#include "core/config.h"

namespace chart {

int run_generate(const Config& config);

}  // namespace chart
