// Checkpoints: run.dir/checkpoints/step_<N>/ holding
//   model.safetensors       weights (metadata format=pt), readable from Python; for a large model
//                           written by several ranks, model-<i>-of-<n>.safetensors and
//                           model.safetensors.index.json instead (model_weights.h)
//   optimizer.safetensors   AdamW moments and step counts, by parameter name
//   rng.safetensors         CPU (and CUDA) generator states
//   trainer_state.yaml      optimizer step, loader position (epoch, step), tokens seen
//   config.yaml             the resolved config of the run
//   model_card.json         what the model is and was trained on (train/model_card.h), and
//   MODEL_CARD.md           the same for a person
//   SHA256SUMS              `sha256sum -c` checks every file above
// With several ranks, rank 0 writes the shared files and its own part of per-rank state under the
// names above; rank r > 0 adds rng.rank<r>.safetensors and, with ZeRO-1 (each rank holds the
// moments of its shard: pieces of parameters, keyed by element range, optimizer_state.h),
// optimizer.rank<r>.safetensors, each streamed and hashed as written by its own rank (rank 0
// commits SHA256SUMS from the hashes reported). A reader reads only the ranges of its own slots
// from the files' headers, so a checkpoint resumes on any number of ranks, with or without ZeRO-1.
// and run.dir/checkpoints/latest naming the newest. A checkpoint is built under a temporary name,
// fsynced and renamed, so one that exists is whole; its checksums catch later damage.
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "data/loader.h"
#include "model/transformer.h"
#include "train/checkpoint/model_card.h"

namespace chart {

struct TrainerState {
  int64_t step = 0;  // optimizer steps completed
  data::LoaderState loader;
  int64_t tokens_seen = 0;
  std::string vocab_hash;  // of the dataset trained on: fine-tuning checks it (train/pretrained.h)
  int64_t world_size = 1;
  int64_t windows_per_loader_step = 0;  // batch_size x world_size when saved; 0: not recorded
  int64_t skipped_steps = 0;  // steps skipped for a non-finite loss or gradient norm, over the run
};

class Dist;
class Zero1;

// Writes step_<state.step>, points `latest` at it, then keeps only the newest keep_last of the
// steps up to it (a checkpoint of a later step, from an earlier run, is never deleted for it).
// Refuses (chart::Error, nothing written) weights or moments that are not finite. `card`
// carries what the caller knows (data lineage, metrics, sections); the rest is filled here
// (fill_model_card) and the card is written before the checksums (rank 0 writes it). With
// several ranks and weights of split_weights_bytes or more (-1: never), each rank writes a part
// of the weights (model_weights.h) instead of rank 0 writing them all.
std::filesystem::path save_checkpoint(const std::filesystem::path& run_dir, const std::string& config_yaml,
                                      ClinicalTransformer& model, torch::optim::AdamW& optimizer,
                                      const TrainerState& state, int64_t keep_last, Dist* dist = nullptr,
                                      ModelCard card = {}, const Zero1* zero = nullptr,
                                      int64_t split_weights_bytes = -1);

// A weights-only checkpoint (a fine-tuned model): model.safetensors, config.yaml,
// trainer_state.yaml and `extra` files (name, text), checksummed, step_<state.step>, `latest`.
std::filesystem::path save_model_checkpoint(const std::filesystem::path& run_dir, const std::string& config_yaml,
                                            torch::nn::Module& model, const TrainerState& state,
                                            const std::vector<std::pair<std::string, std::string>>& extra = {});

// Throws chart::Error naming the file that is missing or does not match its checksum. Every file
// SHA256SUMS lists must match, and the weights (model.safetensors, or the index and every file it
// names), config.yaml and trainer_state.yaml must be among them (older checkpoints without a model card verify too).
void verify_checkpoint(const std::filesystem::path& dir);
// The same for any directory with a SHA256SUMS: each listed file matches, `required` are listed.
// Returns the files listed.
std::vector<std::string> verify_sha256sums(const std::filesystem::path& dir, const std::vector<std::string>& required);

// N of a checkpoint directory named step_<N>; throws chart::Error for another name.
int64_t checkpoint_step(const std::filesystem::path& checkpoint_dir);
// The step_<N> directories under `dir` (run.dir/checkpoints), by step, oldest first.
std::vector<std::pair<int64_t, std::filesystem::path>> list_checkpoints(const std::filesystem::path& dir);

// --resume auto: the newest checkpoint that verifies, warning about each damaged one skipped;
// none if the run has none, and chart::Error if it has some and none verifies. --resume PATH:
// that checkpoint, which must verify. --resume fresh (start over) and "": none.
std::optional<std::filesystem::path> resume_checkpoint(const std::filesystem::path& run_dir,
                                                       const std::string& resume);

// Restores weights, optimizer moments, RNG and trainer state. The model config of the
// checkpoint must equal the run's (model_yaml), or it is refused with the difference named.
// Moments are restored for what the optimizer steps (zero given: this rank's pieces, whatever
// the world size and sharding that saved them); the RNG from rng.rank<rank>.safetensors where
// it exists (rank 0: rng.safetensors).
TrainerState load_checkpoint(const std::filesystem::path& dir, ClinicalTransformer& model,
                             torch::optim::AdamW* optimizer, int rank = 0, const Zero1* zero = nullptr);

// Weights only (fine-tuning, eval) from a checkpoint directory (model_weights.h): names must
// match exactly; non-finite values are refused.
void load_weights(const std::filesystem::path& checkpoint_dir, torch::nn::Module& model);

// Throws chart::Error naming `where` and the first tensor holding a NaN or an infinity: what a
// diverged run leaves is never saved or loaded as if it were a model.
void require_finite(const std::vector<std::pair<std::string, torch::Tensor>>& tensors, const std::string& where);
void require_finite(const std::map<std::string, torch::Tensor>& tensors, const std::string& where);

}  // namespace chart
