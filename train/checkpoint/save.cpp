// Writing checkpoints: training checkpoints (weights, AdamW moments, RNG, trainer state, per-rank
// parts) and weights-only ones (fine-tuned models), each staged, checksummed and renamed whole.
// Tensor files are streamed and hashed as they are written (model/safetensors_writer.h); each
// rank writes its own parts, so no rank holds another's bytes and nothing is read back.
#include <algorithm>
#include <map>
#include <sstream>

#include "core/error.h"
#include "core/files.h"
#include "core/sha256.h"
#include "model/safetensors.h"
#include "model/safetensors_writer.h"
#include "train/checkpoint/checkpoint.h"
#include "train/checkpoint/model_weights.h"
#include "train/checkpoint/optimizer_state.h"
#include "train/distributed/dist.h"

namespace chart {
namespace fs = std::filesystem;
namespace {

// Besides the weights (model_weights.h) and the other ranks' parts.
const char* kFiles[] = {"optimizer.safetensors", "rng.safetensors", "trainer_state.yaml", "config.yaml",
                        "model_card.json", "MODEL_CARD.md"};

// Checksums `files` into SHA256SUMS (the hash of each file written here is known already, from
// its stream: only the others are read), renames the staged directory into place and points
// `latest` at it: a checkpoint that exists is whole.
void commit_checkpoint(StagingDir& stage, const std::vector<std::string>& files,
                       const std::map<std::string, std::string>& hashes, const fs::path& ckpt_dir,
                       const std::string& name) {
  std::string sums;
  for (const auto& f : files) {
    auto h = hashes.find(f);
    sums += (h != hashes.end() ? h->second : sha256_file(stage.path() / f)) + "  " + f + "\n";
  }
  write_file_atomic(stage.path() / "SHA256SUMS", sums);
  stage.commit(/*replace=*/true);
  write_file_atomic(ckpt_dir / "latest", name + "\n");
}

// Rank r > 0's files, each streamed beside the checkpoint and hashed as written, then its report
// (the files and their hashes) that rank 0 waits for.
struct RankPart {
  std::string file;
  const NamedTensors* tensors;
  std::map<std::string, std::string> metadata;
};

void write_rank_parts(const fs::path& ckpt_dir, const std::string& name, int rank, const std::vector<RankPart>& parts) {
  auto part = [&](const std::string& file) { return ckpt_dir / fmt::format(".{}.rank{}.{}", name, rank, file); };
  std::string report;
  for (const auto& p : parts) report += save_safetensors_hashed(part(p.file), *p.tensors, p.metadata) + "  " + p.file + "\n";
  write_file_atomic(part("SHA256SUMS"), report);
}

// Rank 0 takes rank r's report and moves the files it names into the staged checkpoint.
void adopt_rank_parts(const fs::path& ckpt_dir, const std::string& name, int rank, StagingDir& stage,
                      std::vector<std::string>& files, std::map<std::string, std::string>& hashes) {
  auto part = [&](const std::string& file) { return ckpt_dir / fmt::format(".{}.rank{}.{}", name, rank, file); };
  if (!fs::exists(part("SHA256SUMS")))
    fail("checkpoint {}: rank {} did not report its files ({} is missing; run.dir must be on storage every rank "
         "shares)", name, rank, part("SHA256SUMS").string());
  std::istringstream in(read_file(part("SHA256SUMS")));
  std::string hash, file;
  while (in >> hash >> file) {
    if (file.find('/') != std::string::npos || file.rfind(".", 0) == 0)
      fail("checkpoint {}: rank {}'s report {} names {}, not a file of the checkpoint", name, rank,
           part("SHA256SUMS").string(), file);
    if (!fs::exists(part(file))) fail("checkpoint {}: rank {} reported {} but it is missing", name, rank, part(file).string());
    fs::rename(part(file), stage.path() / file);
    files.push_back(file);
    hashes[file] = hash;
  }
  fs::remove(part("SHA256SUMS"));
}

std::string trainer_state_yaml(const TrainerState& state) {
  return fmt::format("format: chart-checkpoint\nversion: 1\nstep: {}\nloader_epoch: {}\n"
                     "loader_step: {}\ntokens_seen: {}\nworld_size: {}\nwindows_per_loader_step: {}\n"
                     "skipped_steps: {}\nvocab_hash: {}\n",
                     state.step, state.loader.epoch, state.loader.step, state.tokens_seen, state.world_size,
                     state.windows_per_loader_step, state.skipped_steps, state.vocab_hash);
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
                         ModelCard card, const Zero1* zero, int64_t split_weights_bytes) {
  const fs::path ckpt_dir = run_dir / "checkpoints";
  fs::create_directories(ckpt_dir);
  const std::string name = "step_" + std::to_string(state.step);
  const bool multi = dist && dist->active();
  const int rank = multi ? dist->rank() : 0;

  NamedTensors weights;
  int64_t weight_bytes = 0;
  for (const auto& p : model->named_parameters()) {
    weights.emplace_back(p.key(), p.value());
    weight_bytes += p.value().numel() * static_cast<int64_t>(p.value().element_size());
  }
  // A large model's weights are written by every rank at once, a contiguous part each.
  const bool split = multi && split_weights_bytes >= 0 && weight_bytes >= split_weights_bytes;
  const std::vector<NamedTensors> weight_parts = split ? split_weights(weights, dist->world_size())
                                                       : std::vector<NamedTensors>{weights};
  const int n_parts = static_cast<int>(weight_parts.size());
  const std::map<std::string, std::string> step_metadata = {{"step", std::to_string(state.step)}};
  // The moments this rank's optimizer holds (ZeRO-1: of its pieces, by element range).
  const NamedTensors moments = moment_tensors(moment_slots(model, zero), optimizer);
  require_finite(weights, fmt::format("checkpoint {} (not written)", name));
  require_finite(moments, fmt::format("checkpoint {} (not written): optimizer", name));
  NamedTensors rng = {{"cpu", at::detail::getDefaultCPUGenerator().get_state()}};
  if (torch::cuda::is_available())
    rng.emplace_back("cuda", at::globalContext().defaultGenerator(at::kCUDA).get_state());

  // Ranks > 0 stream their parts beside the checkpoint and report them; rank 0 moves them in.
  if (rank > 0) {
    std::vector<RankPart> parts = {{fmt::format("rng.rank{}.safetensors", rank), &rng, {}}};
    if (dist->zero1()) parts.push_back({fmt::format("optimizer.rank{}.safetensors", rank), &moments, {}});
    if (split && rank < n_parts) parts.push_back({weight_part_name(rank, n_parts), &weight_parts[size_t(rank)], step_metadata});
    write_rank_parts(ckpt_dir, name, rank, parts);
    dist->barrier();  // parts written and reported
    dist->barrier();  // checkpoint committed by rank 0
    return ckpt_dir / name;
  }

  StagingDir stage(ckpt_dir / name);
  std::map<std::string, std::string> hashes;  // of the files streamed here: not read back
  std::vector<std::string> files(std::begin(kFiles), std::end(kFiles));
  const std::string weights_file = split ? weight_part_name(0, n_parts) : kWeightsFile;
  hashes[weights_file] = save_safetensors_hashed(stage.path() / weights_file, weight_parts[0], step_metadata);
  files.push_back(weights_file);
  if (split) {
    write_file_atomic(stage.path() / kWeightsIndex, weights_index_json(weight_parts));
    files.push_back(kWeightsIndex);
  }
  hashes["optimizer.safetensors"] = save_safetensors_hashed(stage.path() / "optimizer.safetensors", moments);
  hashes["rng.safetensors"] = save_safetensors_hashed(stage.path() / "rng.safetensors", rng);
  write_file_atomic(stage.path() / "trainer_state.yaml", trainer_state_yaml(state));
  write_file_atomic(stage.path() / "config.yaml", config_yaml);
  fill_model_card(card, *model, config_yaml, state.step, state.tokens_seen, state.vocab_hash);
  write_model_card(stage.path(), card);
  if (multi) {
    dist->barrier();
    for (int r = 1; r < dist->world_size(); ++r) adopt_rank_parts(ckpt_dir, name, r, stage, files, hashes);
  }
  commit_checkpoint(stage, files, hashes, ckpt_dir, name);

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
  std::map<std::string, std::string> hashes = {{"model.safetensors", save_safetensors_hashed(
      stage.path() / "model.safetensors", weights, {{"step", std::to_string(state.step)}})}};
  write_file_atomic(stage.path() / "trainer_state.yaml",
                    fmt::format("format: chart-checkpoint\nversion: 1\nstep: {}\ntokens_seen: {}\nvocab_hash: {}\n",
                                state.step, state.tokens_seen, state.vocab_hash));
  write_file_atomic(stage.path() / "config.yaml", config_yaml);
  std::vector<std::string> files = {"model.safetensors", "trainer_state.yaml", "config.yaml"};
  for (const auto& [file, text] : extra) {
    write_file_atomic(stage.path() / file, text);
    files.push_back(file);
  }
  commit_checkpoint(stage, files, hashes, ckpt_dir, name);
  return ckpt_dir / name;
}

}  // namespace chart
