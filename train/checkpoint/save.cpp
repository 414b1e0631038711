// Writing checkpoints: training checkpoints (weights, AdamW moments, RNG, trainer state, per-rank
// parts) and weights-only ones (fine-tuned models), each staged, checksummed and renamed whole.
#include <algorithm>

#include "core/error.h"
#include "core/files.h"
#include "core/sha256.h"
#include "model/safetensors.h"
#include "train/checkpoint/checkpoint.h"
#include "train/checkpoint/optimizer_state.h"
#include "train/distributed/dist.h"

namespace chart {
namespace fs = std::filesystem;
namespace {

const char* kFiles[] = {"model.safetensors", "optimizer.safetensors", "rng.safetensors",
                        "trainer_state.yaml", "config.yaml", "model_card.json", "MODEL_CARD.md"};

// Checksums `files` into SHA256SUMS, renames the staged directory into place and points
// `latest` at it: a checkpoint that exists is whole.
void commit_checkpoint(StagingDir& stage, const std::vector<std::string>& files, const fs::path& ckpt_dir,
                       const std::string& name) {
  std::string sums;
  for (const auto& f : files) sums += sha256_file(stage.path() / f) + "  " + f + "\n";
  write_file_atomic(stage.path() / "SHA256SUMS", sums);
  stage.commit(/*replace=*/true);
  write_file_atomic(ckpt_dir / "latest", name + "\n");
}

// keep_last counts the steps up to `newest`, the one just written and named by `latest`; a later
// step (left by an earlier run) is never deleted for it, so `latest` never names a deleted
// directory and nothing valid is lost to a restart.
void prune_checkpoints(const fs::path& ckpt_dir, int64_t newest, int64_t keep_last) {
  std::vector<fs::path> older;
  for (const auto& [step, dir] : list_checkpoints(ckpt_dir))
    if (step <= newest) older.push_back(dir);
  for (size_t i = 0; i + static_cast<size_t>(keep_last) < older.size(); ++i) {
    std::error_code ec;
    fs::remove_all(older[i], ec);
  }
}

}  // namespace

fs::path save_checkpoint(const fs::path& run_dir, const std::string& config_yaml, ClinicalTransformer& model,
                         torch::optim::AdamW& optimizer, const TrainerState& state, int64_t keep_last, Dist* dist,
                         ModelCard card, const Zero1* zero) {
  const fs::path ckpt_dir = run_dir / "checkpoints";
  fs::create_directories(ckpt_dir);
  const std::string name = "step_" + std::to_string(state.step);
  const bool multi = dist && dist->active();
  const int rank = multi ? dist->rank() : 0;

  NamedTensors weights;
  for (const auto& p : model->named_parameters()) weights.emplace_back(p.key(), p.value());
  // The moments this rank's optimizer holds (ZeRO-1: of its pieces, by element range).
  const NamedTensors moments = moment_tensors(moment_slots(model, zero), optimizer);
  require_finite(weights, fmt::format("checkpoint {} (not written)", name));
  require_finite(moments, fmt::format("checkpoint {} (not written): optimizer", name));
  NamedTensors rng = {{"cpu", at::detail::getDefaultCPUGenerator().get_state()}};
  if (torch::cuda::is_available())
    rng.emplace_back("cuda", at::globalContext().defaultGenerator(at::kCUDA).get_state());

  // Ranks > 0 write their parts beside the checkpoint; rank 0 moves them in before the checksums.
  auto part = [&](int r, const std::string& file) { return ckpt_dir / fmt::format(".{}.rank{}.{}", name, r, file); };
  const std::string rank_rng = "rng.rank" + std::to_string(rank) + ".safetensors";
  const std::string rank_opt = "optimizer.rank" + std::to_string(rank) + ".safetensors";
  if (rank > 0) {
    save_safetensors(part(rank, rank_rng), rng);
    if (dist->zero1()) save_safetensors(part(rank, rank_opt), moments);
    dist->barrier();  // parts written
    dist->barrier();  // checkpoint committed by rank 0
    return ckpt_dir / name;
  }

  StagingDir stage(ckpt_dir / name);
  save_safetensors(stage.path() / "model.safetensors", weights, {{"step", std::to_string(state.step)}});
  save_safetensors(stage.path() / "optimizer.safetensors", moments);
  save_safetensors(stage.path() / "rng.safetensors", rng);
  write_file_atomic(stage.path() / "trainer_state.yaml",
                    fmt::format("format: chart-checkpoint\nversion: 1\nstep: {}\nloader_epoch: {}\n"
                                "loader_step: {}\ntokens_seen: {}\nworld_size: {}\nwindows_per_loader_step: {}\n"
                                "skipped_steps: {}\nvocab_hash: {}\n",
                                state.step, state.loader.epoch, state.loader.step, state.tokens_seen,
                                state.world_size, state.windows_per_loader_step, state.skipped_steps,
                                state.vocab_hash));
  write_file_atomic(stage.path() / "config.yaml", config_yaml);
  fill_model_card(card, *model, config_yaml, state.step, state.tokens_seen, state.vocab_hash);
  write_model_card(stage.path(), card);
  std::vector<std::string> files(std::begin(kFiles), std::end(kFiles));
  if (multi) {
    dist->barrier();
    for (int r = 1; r < dist->world_size(); ++r) {
      std::vector<std::string> mine = {"rng.rank" + std::to_string(r) + ".safetensors"};
      if (dist->zero1()) mine.push_back("optimizer.rank" + std::to_string(r) + ".safetensors");
      for (const auto& f : mine) {
        if (!fs::exists(part(r, f)))
          fail("checkpoint {}: rank {} did not write {} (run.dir must be on storage every rank shares)",
               name, r, part(r, f).string());
        fs::rename(part(r, f), stage.path() / f);
        files.push_back(f);
      }
    }
  }
  commit_checkpoint(stage, files, ckpt_dir, name);

  prune_checkpoints(ckpt_dir, state.step, keep_last);
  if (multi) dist->barrier();
  return ckpt_dir / name;
}

fs::path save_model_checkpoint(const fs::path& run_dir, const std::string& config_yaml, torch::nn::Module& model,
                               const TrainerState& state, const std::vector<std::pair<std::string, std::string>>& extra) {
  const fs::path ckpt_dir = run_dir / "checkpoints";
  fs::create_directories(ckpt_dir);
  const std::string name = "step_" + std::to_string(state.step);
  StagingDir stage(ckpt_dir / name);
  NamedTensors weights;
  for (const auto& p : model.named_parameters()) weights.emplace_back(p.key(), p.value());
  require_finite(weights, fmt::format("checkpoint {} (not written)", name));
  save_safetensors(stage.path() / "model.safetensors", weights, {{"step", std::to_string(state.step)}});
  write_file_atomic(stage.path() / "trainer_state.yaml",
                    fmt::format("format: chart-checkpoint\nversion: 1\nstep: {}\ntokens_seen: {}\nvocab_hash: {}\n",
                                state.step, state.tokens_seen, state.vocab_hash));
  write_file_atomic(stage.path() / "config.yaml", config_yaml);
  std::vector<std::string> files = {"model.safetensors", "trainer_state.yaml", "config.yaml"};
  for (const auto& [file, text] : extra) {
    write_file_atomic(stage.path() / file, text);
    files.push_back(file);
  }
  commit_checkpoint(stage, files, ckpt_dir, name);
  return ckpt_dir / name;
}

}  // namespace chart
