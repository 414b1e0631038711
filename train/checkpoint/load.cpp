// Reading checkpoints back: weights by name, AdamW moments (this rank's, from whichever files
// hold them: optimizer_state.h), RNG states and the trainer state.
#include <yaml-cpp/yaml.h>

#include <map>

#include "core/error.h"
#include "model/safetensors.h"
#include "train/checkpoint/checkpoint.h"
#include "train/checkpoint/model_weights.h"
#include "train/checkpoint/optimizer_state.h"

namespace chart {
namespace fs = std::filesystem;

void load_weights(const fs::path& dir, torch::nn::Module& model) {
  const std::map<std::string, torch::Tensor> tensors = read_weights(dir);
  const std::string source = weights_source(dir);
  require_finite(tensors, source);
  torch::NoGradGuard no_grad;
  size_t used = 0;
  for (auto& p : model.named_parameters()) {
    auto it = tensors.find(p.key());
    if (it == tensors.end()) fail("{}: no tensor '{}' for this model", source, p.key());
    if (it->second.sizes() != p.value().sizes())
      fail("{}: tensor '{}' has shape {}, the model expects {}", source, p.key(),
           fmt::join(it->second.sizes(), "x"), fmt::join(p.value().sizes(), "x"));
    p.value().copy_(it->second);
    ++used;
  }
  if (used != tensors.size()) {
    for (const auto& [name, t] : tensors)
      if (!model.named_parameters().contains(name))
        fail("{}: unexpected tensor '{}' that this model does not have", source, name);
  }
}

TrainerState load_checkpoint(const fs::path& dir, ClinicalTransformer& model, torch::optim::AdamW* optimizer,
                             int rank, const Zero1* zero) {
  load_weights(dir, *model);
  if (optimizer) {
    load_moments(dir, moment_slots(model, zero), *optimizer);  // this rank's pieces alone
  }
  // A rank the checkpoint has no RNG for (more ranks than saved it) keeps its own seeding.
  const fs::path rng_file = dir / (rank == 0 ? "rng.safetensors" : "rng.rank" + std::to_string(rank) + ".safetensors");
  if (fs::exists(rng_file)) {
    Safetensors rng = load_safetensors(rng_file);
    if (!rng.tensors.count("cpu")) fail("{}: no tensor 'cpu' (the CPU generator state)", rng_file.string());
    at::Generator cpu = at::detail::getDefaultCPUGenerator();  // a handle to the global one
    cpu.set_state(rng.tensors.at("cpu"));
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
    if (s["skipped_steps"]) st.skipped_steps = s["skipped_steps"].as<int64_t>();
  } catch (const YAML::Exception& e) {
    fail("{}: not a valid trainer state: {}", (dir / "trainer_state.yaml").string(), e.what());
  }
  return st;
}

}  // namespace chart
