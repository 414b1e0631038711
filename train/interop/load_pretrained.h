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

}  // namespace chart
