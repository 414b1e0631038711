// A trained model as the recipes take it (Pretrained), read from a chart checkpoint:
//   a checkpoint directory        run/checkpoints/step_<N> (checksums verified)
//   a run directory               its checkpoints/latest
// (init.checkpoint may also name a Hugging Face export: train/interop/load_pretrained.h.)
// The checkpoint's own config.yaml gives the model architecture, so a recipe never repeats it;
// its trainer_state.yaml gives the vocabulary hash, which must equal the dataset's.
#pragma once
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "core/config.h"

namespace chart {

struct Pretrained {
  std::filesystem::path dir;   // the checkpoint directory
  Config config;               // the config it was trained with (model.* is what matters)
  std::string vocab_hash;      // empty when the checkpoint predates recording it
  int64_t vocab_size = 0;      // rows of the token embedding
  int64_t step = 0;
  std::map<std::string, torch::Tensor> tensors;  // weights by chart parameter name (CPU)
};

// Throws chart::Error naming the path when it is none of the above or fails its checksums.
Pretrained load_chart_checkpoint(const std::string& path);

// Refuses a dataset whose vocabulary differs from the checkpoint's (token ids would mean other
// codes). `dataset_vocab_hash` is data::TokenDataset::vocab_hash().
void check_vocab(const Pretrained& p, const std::string& dataset_vocab_hash, const std::string& data_dir);

// Copies p.tensors into `module` by name. Parameters named with a prefix in `fresh` (a new head,
// LoRA adapters) keep their initial values; any other missing tensor, or a shape mismatch, is an
// error naming the tensor. Tensors the module does not have (the pretraining heads) are skipped
// and returned.
std::vector<std::string> copy_pretrained_weights(const Pretrained& p, torch::nn::Module& module,
                                                 const std::vector<std::string>& fresh = {});

}  // namespace chart
