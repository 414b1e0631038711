// AdamW moments in checkpoints, named by parameter and element range so that a checkpoint
// written by any number of ranks, with or without ZeRO-1, restores on any other:
//   exp_avg/<name>, exp_avg_sq/<name>, step/<name>                 a whole parameter
//   exp_avg/<name>@<begin>-<end>, ... (moments of shape [end-begin]) elements [begin, end) of the
//                                                                 flattened parameter (a ZeRO-1 piece)
#pragma once
#include <torch/torch.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "model/safetensors.h"
#include "model/transformer.h"
#include "train/distributed/zero.h"

namespace chart {

// One tensor this rank's optimizer steps: a whole parameter, or a ZeRO-1 piece of one.
struct MomentSlot {
  std::string name;        // the parameter's
  int64_t begin = 0, end = 0, numel = 0;  // the slot's elements of the flattened parameter; its size
  bool whole = true;       // saved under the plain name
  torch::Tensor tensor;    // the optimizer's key (the parameter, or the piece's view)
  std::string key(const std::string& kind) const;  // "exp_avg/<name>" or "exp_avg/<name>@b-e"
};

// The slots of this rank: every parameter whole, or (zero given) this rank's pieces.
std::vector<MomentSlot> moment_slots(ClinicalTransformer& model, const Zero1* zero);

// exp_avg, exp_avg_sq and step for each slot the optimizer holds state for (none before the first step).
NamedTensors moment_tensors(const std::vector<MomentSlot>& slots, torch::optim::AdamW& optimizer);

// A key of the form above, split; nullopt for another.
struct MomentKey {
  std::string kind, name;
  std::optional<std::pair<int64_t, int64_t>> range;  // none: the whole parameter
};
std::optional<MomentKey> parse_moment_key(const std::string& key);

// Puts the moments `saved` holds (whole parameters or ranges, from any number of files) into the
// optimizer's state for each slot, copying the overlapping parts of every saved range. A slot
// whose parameter has no saved state is left alone (saved before the first step); one covered
// only in part is an error naming `where`.
void restore_moments(const std::vector<MomentSlot>& slots, torch::optim::AdamW& optimizer,
                     const std::map<std::string, torch::Tensor>& saved, const std::string& where);

}  // namespace chart
