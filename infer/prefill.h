// Shared prefill: a prompt runs through the model once; its keys and values are then copied into
// each decode slot that samples a future of it, so N samples cost one prefill, not N.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "model/device.h"
#include "model/transformer.h"

namespace chart::infer {

struct PrefilledPrompt {
  KVCache cache;         // one row holding exactly the prompt's positions
  torch::Tensor logits;  // [1, V]: the next token's, after the prompt
};

// The prompt's tokens and ages (years) through the model, with no padding: position 0 is its
// first token, as in a slot.
PrefilledPrompt prefill(ClinicalTransformer& model, const std::vector<int64_t>& tokens, const std::vector<float>& ages,
                        const DeviceChoice& dev);

// Row `slot` of `pool` becomes the prompt: its keys, values, ages and valid flags at positions
// [0, prompt length). Later positions keep stale values, which a row never attends (it sees only
// positions at or below its own).
void copy_into_slot(const PrefilledPrompt& prompt, KVCache& pool, int64_t slot);

}  // namespace chart::infer
