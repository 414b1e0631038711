// Checkpoints: run.dir/checkpoints/step_<N>/ holding
//   model.safetensors       weights (metadata format=pt), readable from Python
//   optimizer.safetensors   AdamW moments and step counts, by parameter name
//   rng.safetensors         CPU (and CUDA) generator states
//   trainer_state.yaml      optimizer step, loader position (epoch, step), tokens seen
//   config.yaml             the resolved config of the run
//   SHA256SUMS              `sha256sum -c` checks every file above
// and run.dir/checkpoints/latest naming the newest. A checkpoint is built under a temporary name,
// fsynced and renamed, so one that exists is whole; its checksums catch later damage.
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <optional>
#include <string>

#include "data/loader.h"
#include "model/transformer.h"

namespace chart {

struct TrainerState {
  int64_t step = 0;  // optimizer steps completed
  data::LoaderState loader;
  int64_t tokens_seen = 0;
  std::string vocab_hash;  // of the dataset trained on: fine-tuning checks it (train/pretrained.h)
};

// Writes step_<state.step>, points `latest` at it, then keeps only the newest keep_last.
std::filesystem::path save_checkpoint(const std::filesystem::path& run_dir, const std::string& config_yaml,
                                      ClinicalTransformer& model, torch::optim::AdamW& optimizer,
                                      const TrainerState& state, int64_t keep_last);

// A weights-only checkpoint (a fine-tuned model): model.safetensors, config.yaml,
// trainer_state.yaml and `extra` files (name, text), checksummed, step_<state.step>, `latest`.
std::filesystem::path save_model_checkpoint(const std::filesystem::path& run_dir, const std::string& config_yaml,
                                            torch::nn::Module& model, const TrainerState& state,
                                            const std::vector<std::pair<std::string, std::string>>& extra = {});

// Throws chart::Error naming the file that is missing or does not match its checksum.
void verify_checkpoint(const std::filesystem::path& dir);

// --resume auto: the newest checkpoint that verifies, warning about each damaged one skipped;
// none if the run has none. --resume PATH: that checkpoint, which must verify.
std::optional<std::filesystem::path> resume_checkpoint(const std::filesystem::path& run_dir,
                                                       const std::string& resume);

// Restores weights, optimizer moments, RNG and trainer state. The model config of the
// checkpoint must equal the run's (model_yaml), or it is refused with the difference named.
TrainerState load_checkpoint(const std::filesystem::path& dir, ClinicalTransformer& model,
                             torch::optim::AdamW* optimizer);

// Weights only (fine-tuning, eval): names must match exactly.
void load_weights(const std::filesystem::path& safetensors_file, torch::nn::Module& model);

}  // namespace chart
