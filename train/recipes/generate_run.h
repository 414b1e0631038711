// What `chart generate` shares between its two decoding paths: the opened run (model, data,
// label rows, token roles) and its outputs. generate.cpp runs the engine (infer/engine.h);
// generate_batched.cpp keeps the previous batched loop (generate.engine=batched), for comparison.
#pragma once
#include <memory>
#include <vector>

#include "core/config.h"
#include "data/examples.h"
#include "data/labels.h"
#include "infer/engine.h"
#include "infer/risk.h"
#include "infer/sampling.h"
#include "model/device.h"
#include "model/transformer.h"
#include "train/interop/load_pretrained.h"

namespace chart {

struct GenerateRun {
  Config cfg;
  Pretrained pre;
  data::TokenDataset ds;
  int64_t L = 0, P = 0, budget = 0, horizon_us = 0, K = 0;  // context, prompt, token budget, horizon, samples
  TokenRoles roles;
  std::vector<data::Example> examples;
  DeviceChoice dev;
  ClinicalTransformer model{nullptr};
  torch::Tensor banned;  // on the device
  std::vector<data::Prediction> preds;
  std::vector<infer::RiskEstimate> risks;           // per label row (engine only)
  std::vector<infer::TrajectoryResult> results;     // per trajectory, row-major (engine only)
  std::vector<int64_t> clock_start_us;              // per label row: its last event's time
  int64_t generated = 0, truncated = 0, trajectories = 0, hits = 0, windows = 0;
  infer::EngineStats engine;  // the engine's counters (generate.engine=continuous)

  GenerateRun(Config c, Pretrained p, data::TokenDataset d) : cfg(std::move(c)), pre(std::move(p)), ds(std::move(d)) {}
};

// A zero-shot run scores what it is told to: no outcome is assumed (chart::Error otherwise).
void require_outcome(const GenerateConfig& g);
// The model, data and token roles for sampling `examples` (their prompts end at prediction_time).
std::unique_ptr<GenerateRun> open_generate_run(const Config& cfg, Pretrained pre, data::TokenDataset ds,
                                               std::vector<data::Example> examples);
// The rows are task.labels' rows of generate.split.
std::unique_ptr<GenerateRun> open_generate_run(const Config& cfg);
// Label row x's prompt: its last P tokens up to prediction_time, and its clock.
infer::Prompt example_prompt(const GenerateRun& r, size_t x);
// The previous path: batch_size / samples examples at a time, in lockstep (generate_batched.cpp).
void run_batched(GenerateRun& r);
// The engine (infer/engine.h) over every row: r.risks, r.preds (generate.estimator), r.results.
void run_engine(GenerateRun& r);
void write_generate_outputs(const GenerateRun& r, double secs);

}  // namespace chart
