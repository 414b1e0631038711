// train.save_batches: the batches the first N steps train on, as the loader built them, and the
// weights those steps start from, so that another implementation can replay the run step for
// step and compare its losses with metrics.jsonl (scripts/replay_run.py; the GPU
// check's PyTorch eager and torch.compile runs train on exactly chart's data this way).
#include <fmt/format.h>

#include "model/safetensors.h"
#include "train/pretrain/train_run.h"

namespace chart {
namespace fs = std::filesystem;

bool recording_batches(const TrainRun& r) { return r.st.step < r.cfg.train.save_batches; }

void record_start_weights(TrainRun& r) {
  if (!recording_batches(r) || !r.main()) return;
  const fs::path dir = r.run_dir / "batches";
  fs::create_directories(dir);
  NamedTensors weights;
  for (const auto& p : r.model->named_parameters()) weights.emplace_back(p.key(), p.value().detach());
  save_safetensors(dir / fmt::format("weights_step_{:06d}.safetensors", r.st.step), weights,
                   {{"step", std::to_string(r.st.step)}});
}

void record_step_batches(TrainRun& r, const std::vector<data::Batch>& micro) {
  if (!recording_batches(r)) return;
  // The step's micro-batches one after another along the rows: the loss divides by the step's
  // target count over all of them, so a replay may treat them as one batch.
  auto rows = [&](torch::Tensor data::Batch::*field) {
    std::vector<torch::Tensor> parts;
    for (const auto& b : micro) parts.push_back(b.*field);
    return torch::cat(parts, 0);
  };
  const fs::path dir = r.run_dir / "batches";
  fs::create_directories(dir);  // every rank: rank 0 may not have made it yet
  const int64_t step = r.st.step + 1;  // as metrics.jsonl numbers it
  save_safetensors(dir / fmt::format("step_{:06d}.rank{}.safetensors", step, r.dist.rank()),
                   {{"tokens", rows(&data::Batch::tokens)},
                    {"ages", rows(&data::Batch::ages)},
                    {"segments", rows(&data::Batch::segments)},
                    {"targets", rows(&data::Batch::targets)},
                    {"target_dt", rows(&data::Batch::target_dt)}},
                   {{"step", std::to_string(step)},
                    {"rank", std::to_string(r.dist.rank())},
                    {"world_size", std::to_string(r.dist.world_size())},
                    {"micro_batches", std::to_string(micro.size())}});
}

}  // namespace chart
