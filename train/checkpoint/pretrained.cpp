#include "train/checkpoint/pretrained.h"

#include <yaml-cpp/yaml.h>

#include "core/error.h"
#include "core/files.h"
#include "model/safetensors.h"
#include "train/checkpoint/checkpoint.h"
#include "train/checkpoint/model_weights.h"

namespace chart {
namespace fs = std::filesystem;

namespace {

fs::path checkpoint_dir(const std::string& path) {
  if (path.empty()) throw Error("init.checkpoint is not set", "pass --set init.checkpoint=RUN_DIR/checkpoints/step_N");
  fs::path p = path;
  if (!fs::exists(p)) fail("init.checkpoint {} does not exist", path);
  if (fs::exists(p / "checkpoints" / "latest")) {
    std::string name = read_file(p / "checkpoints" / "latest");
    while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) name.pop_back();
    p = p / "checkpoints" / name;
  }
  if (!fs::exists(p / "SHA256SUMS"))
    throw Error(fmt::format("init.checkpoint {} is not a chart checkpoint (no SHA256SUMS)", path),
                "name a run directory or one of its checkpoints/step_<N> directories");
  verify_checkpoint(p);
  return p;
}

}  // namespace

Pretrained load_chart_checkpoint(const std::string& path) {
  Pretrained p;
  p.dir = checkpoint_dir(path);
  // The checkpoint's config is loaded as written; keys this version does not know are an error
  // (a checkpoint from a newer chart), named with the file.
  p.config = load_config((p.dir / "config.yaml").string(), {});
  try {
    YAML::Node s = YAML::LoadFile((p.dir / "trainer_state.yaml").string());
    p.step = s["step"] ? s["step"].as<int64_t>() : 0;
    if (s["vocab_hash"]) p.vocab_hash = s["vocab_hash"].as<std::string>();
  } catch (const YAML::Exception& e) {
    fail("{}: not a valid trainer state: {}", (p.dir / "trainer_state.yaml").string(), e.what());
  }
  p.tensors = read_weights(p.dir);
  require_finite(p.tensors, weights_source(p.dir));
  auto emb = p.tensors.find("tok_emb.weight");
  if (emb == p.tensors.end() || emb->second.dim() != 2)
    fail("{}: no 2-D tensor 'tok_emb.weight'", weights_source(p.dir));
  p.vocab_size = emb->second.size(0);
  return p;
}

void check_vocab(const Pretrained& p, const std::string& dataset_vocab_hash, const std::string& data_dir) {
  if (p.vocab_hash.empty() || p.vocab_hash == dataset_vocab_hash) return;
  throw Error(fmt::format("the vocabulary of {} (hash {}) differs from that of checkpoint {} (hash {})",
                          data_dir, dataset_vocab_hash.substr(0, 12), p.dir.string(), p.vocab_hash.substr(0, 12)),
              "fine-tune and evaluate on a dataset prepared with the pretraining vocabulary");
}

std::vector<std::string> copy_pretrained_weights(const Pretrained& p, torch::nn::Module& module,
                                                 const std::vector<std::string>& fresh) {
  torch::NoGradGuard no_grad;
  auto params = module.named_parameters();
  const std::string file = weights_source(p.dir);
  for (auto& item : params) {
    auto it = p.tensors.find(item.key());
    if (it == p.tensors.end()) {
      bool is_fresh = false;
      for (const auto& prefix : fresh) is_fresh |= item.key().rfind(prefix, 0) == 0;
      if (!is_fresh) fail("{}: no tensor '{}' for this model", file, item.key());
      continue;
    }
    if (it->second.sizes() != item.value().sizes())
      fail("{}: tensor '{}' has shape {}, the model expects {}", file, item.key(),
           fmt::join(it->second.sizes(), "x"), fmt::join(item.value().sizes(), "x"));
    item.value().copy_(it->second);
  }
  std::vector<std::string> unused;
  for (const auto& [name, t] : p.tensors)
    if (!params.contains(name)) unused.push_back(name);
  return unused;
}

}  // namespace chart
