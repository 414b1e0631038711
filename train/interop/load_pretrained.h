// What `init.checkpoint` may name, and how its weights reach a model being trained further,
// fine-tuned, evaluated or sampled from:
//   a checkpoint directory        run/checkpoints/step_<N> (checksums verified)
//   a run directory               its checkpoints/latest
//   a Hugging Face export         written by `chart export --format hf` (train/interop/hf_export.h)
#pragma once
#include <string>

#include "train/checkpoint/pretrained.h"

namespace chart {

// Throws chart::Error naming the path when it is none of the above or fails its checksums.
Pretrained load_pretrained(const std::string& path);

// The model a run builds on the checkpoint: its architecture, whatever the run's config says,
// with the run's own choice of how attention runs (model.attention, model.attention_check), which
// changes nothing the model computes and belongs to the machine, not the checkpoint.
ModelConfig checkpoint_model(const Pretrained& pre, const ModelConfig& asked);

}  // namespace chart
