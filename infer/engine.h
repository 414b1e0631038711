// The generation engine: sampled futures of many prompts through a fixed pool of decode slots
// (the rows of one batched KV cache, each at its own length).
//   - Shared prefill: each prompt runs once (infer/prefill.h); its keys and values are copied
//     into a slot for each of its samples.
//   - Continuous batching: a trajectory that stops (outcome, stop code, horizon, token budget)
//     frees its slot at once; the next waiting sample, or the next prompt's, is prefilled into
//     it between decode steps while the other slots keep decoding.
//   - A trajectory that fills the context goes on in a new window of its last prompt_tokens
//     tokens: its cache row slides (ClinicalTransformer::slide_cache_row, no model run), or with
//     slide off those tokens are prefilled into its slot again.
//   - Every trajectory draws from its own random stream (infer/sampling.h), so its tokens do not
//     depend on the pool's size or on which trajectories share a step.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "infer/sampling.h"
#include "model/device.h"
#include "model/transformer.h"

namespace chart::infer {

struct EngineOptions {
  int64_t slots = 256;         // trajectories decoded together (generate.batch_size)
  int64_t samples = 20;        // trajectories per prompt (generate.samples)
  int64_t context = 0;         // positions a slot holds (model.context)
  int64_t prompt_tokens = 0;   // tokens that prompt a context window
  int64_t max_new_tokens = 0;  // per trajectory, across windows
  int64_t horizon_us = 0;      // a trajectory ends once its clock passes prediction_time + this
  double temperature = 1.0;
  int64_t top_k = 0;
  uint64_t seed = 0;
  bool keep_tokens = false;    // keep each trajectory's sampled tokens in its result
  bool slide = true;           // a full slot slides its cache (generate.window=slide) or re-prefills
};

// A prompt: its history up to prediction_time (the last prompt_tokens tokens are used).
struct Prompt {
  std::vector<int64_t> tokens;
  std::vector<float> ages;  // years, one per token
  double age = 0;           // the clock at the last token, years
  double elapsed_us = 0;    // last token's time minus prediction_time (<= 0)
  int64_t row = 0;          // names the prompt's random streams (prompt_stream of its subject and time)
};

struct TrajectoryResult {
  bool hit = false, truncated = false;
  double expected = 0;  // the sum of P(an outcome code) over the steps it ran (infer/risk.h)
  int64_t generated = 0;
  std::vector<int64_t> sampled;  // only with keep_tokens
};

struct EngineStats {
  int64_t generated = 0;       // tokens sampled
  int64_t prefills = 0;        // prompts and new windows prefilled
  int64_t prefill_tokens = 0;
  int64_t windows = 0;         // new context windows of running trajectories (slid or prefilled)
  int64_t decode_steps = 0;
  int64_t slot_steps = 0;      // rows decoded, summed over steps (busy or not)
};

// Runs the `samples` trajectories of every prompt; result [p * samples + k] is prompt p's k-th.
// on_prompt_done(p) is called when prompt p's last trajectory ends.
std::vector<TrajectoryResult> generate(ClinicalTransformer& model, const TokenRoles& roles, const EngineOptions& opt,
                                       const DeviceChoice& dev, const std::vector<Prompt>& prompts, EngineStats& stats,
                                       const std::function<void(size_t)>& on_prompt_done = {});

}  // namespace chart::infer
