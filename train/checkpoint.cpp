#include "train/checkpoint.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <map>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/files.h"
#include "core/log.h"
#include "core/sha256.h"
#include "model/safetensors.h"
#include "train/distributed.h"

namespace chart {
namespace fs = std::filesystem;
namespace {

const char* kFiles[] = {"model.safetensors", "optimizer.safetensors", "rng.safetensors",
                        "trainer_state.yaml", "config.yaml", "model_card.json", "MODEL_CARD.md"};

std::vector<std::pair<int64_t, fs::path>> list_checkpoints(const fs::path& dir) {
  std::vector<std::pair<int64_t, fs::path>> out;
  if (!fs::is_directory(dir)) return out;
  for (const auto& e : fs::directory_iterator(dir)) {
    std::string name = e.path().filename().string();
    if (!e.is_directory() || name.rfind("step_", 0) != 0) continue;
    const std::string digits = name.substr(5);
    if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos) continue;
    out.emplace_back(std::stoll(digits), e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

at::Generator& cpu_generator() {
  static at::Generator g = at::detail::getDefaultCPUGenerator();
  return g;
}

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

}  // namespace

fs::path save_checkpoint(const fs::path& run_dir, const std::string& config_yaml, ClinicalTransformer& model,
                         torch::optim::AdamW& optimizer, const TrainerState& state, int64_t keep_last, Dist* dist,
                         ModelCard card) {
  const fs::path ckpt_dir = run_dir / "checkpoints";
  fs::create_directories(ckpt_dir);
  const std::string name = "step_" + std::to_string(state.step);
  const bool multi = dist && dist->active();
  const int rank = multi ? dist->rank() : 0;

  NamedTensors weights, moments;  // moments of the parameters this rank's optimizer holds
  for (const auto& p : model->named_parameters()) {
    weights.emplace_back(p.key(), p.value());
    auto it = optimizer.state().find(p.value().unsafeGetTensorImpl());
    if (it == optimizer.state().end()) continue;  // no step taken yet, or another rank's (ZeRO-1)
    auto& s = static_cast<torch::optim::AdamWParamState&>(*it->second);
    moments.emplace_back("exp_avg/" + p.key(), s.exp_avg());
    moments.emplace_back("exp_avg_sq/" + p.key(), s.exp_avg_sq());
    moments.emplace_back("step/" + p.key(), torch::tensor(s.step(), torch::kInt64));
  }
  NamedTensors rng = {{"cpu", cpu_generator().get_state()}};
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
                                "vocab_hash: {}\n",
                                state.step, state.loader.epoch, state.loader.step, state.tokens_seen,
                                state.world_size, state.windows_per_loader_step, state.vocab_hash));
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

  auto all = list_checkpoints(ckpt_dir);
  for (size_t i = 0; i + static_cast<size_t>(keep_last) < all.size(); ++i) {
    std::error_code ec;
    fs::remove_all(all[i].second, ec);
  }
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

void verify_sha256sums(const fs::path& dir, const std::vector<std::string>& required) {
  if (!fs::is_directory(dir)) fail("{} does not exist", dir.string());
  if (!fs::exists(dir / "SHA256SUMS")) fail("{} has no SHA256SUMS: incomplete", dir.string());
  std::istringstream in(read_file(dir / "SHA256SUMS"));
  std::string hash, file;
  std::vector<std::string> listed;
  while (in >> hash >> file) {
    if (file.find('/') != std::string::npos || file.find("..") != std::string::npos)
      fail("{}: SHA256SUMS names a path outside it: {}", dir.string(), file);
    if (!fs::exists(dir / file)) fail("{}: {} is missing", dir.string(), file);
    if (sha256_file(dir / file) != hash) fail("{}: {} does not match its checksum", dir.string(), file);
    listed.push_back(file);
  }
  for (const auto& r : required)
    if (std::find(listed.begin(), listed.end(), r) == listed.end())
      fail("{}: SHA256SUMS does not list {}", dir.string(), r);
}

void verify_checkpoint(const fs::path& dir) {
  if (!fs::is_directory(dir)) fail("checkpoint {} does not exist", dir.string());
  if (!fs::exists(dir / "SHA256SUMS")) fail("checkpoint {} has no SHA256SUMS: incomplete", dir.string());
  try {
    verify_sha256sums(dir, {"model.safetensors", "config.yaml", "trainer_state.yaml"});
  } catch (const Error& e) {
    throw Error("checkpoint " + std::string(e.what()), e.hint());
  }
}

std::optional<fs::path> resume_checkpoint(const fs::path& run_dir, const std::string& resume) {
  if (resume.empty()) return std::nullopt;
  if (resume != "auto") {
    verify_checkpoint(resume);
    return fs::path(resume);
  }
  auto all = list_checkpoints(run_dir / "checkpoints");
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    try {
      verify_checkpoint(it->second);
      return it->second;
    } catch (const Error& e) {
      warn("skipping damaged checkpoint: {}", e.what());
    }
  }
  return std::nullopt;
}

void load_weights(const fs::path& file, torch::nn::Module& model) {
  Safetensors st = load_safetensors(file);
  torch::NoGradGuard no_grad;
  size_t used = 0;
  for (auto& p : model.named_parameters()) {
    auto it = st.tensors.find(p.key());
    if (it == st.tensors.end()) fail("{}: no tensor '{}' for this model", file.string(), p.key());
    if (it->second.sizes() != p.value().sizes())
      fail("{}: tensor '{}' has shape {}, the model expects {}", file.string(), p.key(),
           fmt::join(it->second.sizes(), "x"), fmt::join(p.value().sizes(), "x"));
    p.value().copy_(it->second);
    ++used;
  }
  if (used != st.tensors.size()) {
    for (const auto& [name, t] : st.tensors)
      if (!model.named_parameters().contains(name))
        fail("{}: unexpected tensor '{}' that this model does not have", file.string(), name);
  }
}

TrainerState load_checkpoint(const fs::path& dir, ClinicalTransformer& model, torch::optim::AdamW* optimizer,
                             int rank) {
  load_weights(dir / "model.safetensors", *model);
  if (optimizer) {
    std::set<const void*> held;
    for (const auto& g : optimizer->param_groups())
      for (const auto& p : g.params()) held.insert(p.unsafeGetTensorImpl());
    std::map<std::string, torch::Tensor> moments;  // the union of every rank's optimizer file
    for (const auto& e : fs::directory_iterator(dir)) {
      const std::string f = e.path().filename().string();
      if (f == "optimizer.safetensors" || (f.rfind("optimizer.rank", 0) == 0 && e.path().extension() == ".safetensors"))
        moments.merge(load_safetensors(e.path()).tensors);
    }
    for (const auto& p : model->named_parameters()) {
      auto a = moments.find("exp_avg/" + p.key());
      if (a == moments.end() || !held.count(p.value().unsafeGetTensorImpl())) continue;  // before the first step
      auto state = std::make_unique<torch::optim::AdamWParamState>();
      if (!moments.count("step/" + p.key()) || !moments.count("exp_avg_sq/" + p.key()))
        fail("checkpoint {}: incomplete AdamW state for '{}'", dir.string(), p.key());
      state->step(moments.at("step/" + p.key()).item<int64_t>());
      state->exp_avg(a->second.to(p.value().device()).clone());
      state->exp_avg_sq(moments.at("exp_avg_sq/" + p.key()).to(p.value().device()).clone());
      optimizer->state()[p.value().unsafeGetTensorImpl()] = std::move(state);
    }
  }
  // A rank the checkpoint has no RNG for (more ranks than saved it) keeps its own seeding.
  const fs::path rng_file = dir / (rank == 0 ? "rng.safetensors" : "rng.rank" + std::to_string(rank) + ".safetensors");
  if (fs::exists(rng_file)) {
    Safetensors rng = load_safetensors(rng_file);
    if (!rng.tensors.count("cpu")) fail("{}: no tensor 'cpu' (the CPU generator state)", rng_file.string());
    cpu_generator().set_state(rng.tensors.at("cpu"));
    if (torch::cuda::is_available() && rng.tensors.count("cuda")) {
      at::Generator cuda = at::globalContext().defaultGenerator(at::kCUDA);  // a handle to the global one
      cuda.set_state(rng.tensors.at("cuda"));
    }
  }
  TrainerState st;
  try {
    YAML::Node s = YAML::LoadFile((dir / "trainer_state.yaml").string());
    st.step = s["step"].as<int64_t>();
    st.loader.epoch = s["loader_epoch"].as<int64_t>();
    st.loader.step = s["loader_step"].as<int64_t>();
    st.tokens_seen = s["tokens_seen"].as<int64_t>();
    if (s["vocab_hash"]) st.vocab_hash = s["vocab_hash"].as<std::string>();
    if (s["world_size"]) st.world_size = s["world_size"].as<int64_t>();
    if (s["windows_per_loader_step"]) st.windows_per_loader_step = s["windows_per_loader_step"].as<int64_t>();
  } catch (const YAML::Exception& e) {
    fail("{}: not a valid trainer state: {}", (dir / "trainer_state.yaml").string(), e.what());
  }
  return st;
}

}  // namespace chart
