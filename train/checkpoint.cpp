#include "train/checkpoint.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <sstream>

#include "core/error.h"
#include "core/files.h"
#include "core/log.h"
#include "core/sha256.h"
#include "model/safetensors.h"

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

}  // namespace

fs::path save_checkpoint(const fs::path& run_dir, const std::string& config_yaml, ClinicalTransformer& model,
                         torch::optim::AdamW& optimizer, const TrainerState& state, int64_t keep_last,
                         ModelCard card) {
  const fs::path ckpt_dir = run_dir / "checkpoints";
  fs::create_directories(ckpt_dir);
  const std::string name = "step_" + std::to_string(state.step);
  StagingDir stage(ckpt_dir / name);

  NamedTensors weights, moments;
  for (const auto& p : model->named_parameters()) {
    weights.emplace_back(p.key(), p.value());
    auto it = optimizer.state().find(p.value().unsafeGetTensorImpl());
    if (it == optimizer.state().end()) continue;  // no step taken yet
    auto& s = static_cast<torch::optim::AdamWParamState&>(*it->second);
    moments.emplace_back("exp_avg/" + p.key(), s.exp_avg());
    moments.emplace_back("exp_avg_sq/" + p.key(), s.exp_avg_sq());
    moments.emplace_back("step/" + p.key(), torch::tensor(s.step(), torch::kInt64));
  }
  save_safetensors(stage.path() / "model.safetensors", weights, {{"step", std::to_string(state.step)}});
  save_safetensors(stage.path() / "optimizer.safetensors", moments);
  NamedTensors rng = {{"cpu", cpu_generator().get_state()}};
  if (torch::cuda::is_available())
    rng.emplace_back("cuda", at::globalContext().defaultGenerator(at::kCUDA).get_state());
  save_safetensors(stage.path() / "rng.safetensors", rng);
  write_file_atomic(stage.path() / "trainer_state.yaml",
                    fmt::format("format: chart-checkpoint\nversion: 1\nstep: {}\nloader_epoch: {}\n"
                                "loader_step: {}\ntokens_seen: {}\nvocab_hash: {}\n",
                                state.step, state.loader.epoch, state.loader.step, state.tokens_seen,
                                state.vocab_hash));
  write_file_atomic(stage.path() / "config.yaml", config_yaml);
  fill_model_card(card, *model, config_yaml, state.step, state.tokens_seen, state.vocab_hash);
  write_model_card(stage.path(), card);
  std::string sums;
  for (const char* f : kFiles) sums += sha256_file(stage.path() / f) + "  " + f + "\n";
  write_file_atomic(stage.path() / "SHA256SUMS", sums);
  stage.commit(/*replace=*/true);
  write_file_atomic(ckpt_dir / "latest", name + "\n");

  auto all = list_checkpoints(ckpt_dir);
  for (size_t i = 0; i + static_cast<size_t>(keep_last) < all.size(); ++i) {
    std::error_code ec;
    fs::remove_all(all[i].second, ec);
  }
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
  std::string sums;
  for (const auto& f : files) sums += sha256_file(stage.path() / f) + "  " + f + "\n";
  write_file_atomic(stage.path() / "SHA256SUMS", sums);
  stage.commit(/*replace=*/true);
  write_file_atomic(ckpt_dir / "latest", name + "\n");
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

TrainerState load_checkpoint(const fs::path& dir, ClinicalTransformer& model, torch::optim::AdamW* optimizer) {
  load_weights(dir / "model.safetensors", *model);
  if (optimizer) {
    Safetensors moments = load_safetensors(dir / "optimizer.safetensors");
    for (const auto& p : model->named_parameters()) {
      auto a = moments.tensors.find("exp_avg/" + p.key());
      if (a == moments.tensors.end()) continue;  // saved before the first step
      auto state = std::make_unique<torch::optim::AdamWParamState>();
      if (!moments.tensors.count("step/" + p.key()) || !moments.tensors.count("exp_avg_sq/" + p.key()))
        fail("{}: incomplete AdamW state for '{}'", (dir / "optimizer.safetensors").string(), p.key());
      state->step(moments.tensors.at("step/" + p.key()).item<int64_t>());
      state->exp_avg(a->second.to(p.value().device()).clone());
      state->exp_avg_sq(moments.tensors.at("exp_avg_sq/" + p.key()).to(p.value().device()).clone());
      optimizer->state()[p.value().unsafeGetTensorImpl()] = std::move(state);
    }
  }
  Safetensors rng = load_safetensors(dir / "rng.safetensors");
  if (!rng.tensors.count("cpu")) fail("{}: no tensor 'cpu' (the CPU generator state)", (dir / "rng.safetensors").string());
  cpu_generator().set_state(rng.tensors.at("cpu"));
  if (torch::cuda::is_available() && rng.tensors.count("cuda"))
  {
    at::Generator cuda = at::globalContext().defaultGenerator(at::kCUDA);  // a handle to the global one
    cuda.set_state(rng.tensors.at("cuda"));
  }
  TrainerState st;
  try {
    YAML::Node s = YAML::LoadFile((dir / "trainer_state.yaml").string());
    st.step = s["step"].as<int64_t>();
    st.loader.epoch = s["loader_epoch"].as<int64_t>();
    st.loader.step = s["loader_step"].as<int64_t>();
    st.tokens_seen = s["tokens_seen"].as<int64_t>();
    if (s["vocab_hash"]) st.vocab_hash = s["vocab_hash"].as<std::string>();
  } catch (const YAML::Exception& e) {
    fail("{}: not a valid trainer state: {}", (dir / "trainer_state.yaml").string(), e.what());
  }
  return st;
}

}  // namespace chart
