// AdamW moments in checkpoints, named by parameter and element range so that a checkpoint
// written by any number of ranks, with or without ZeRO-1, restores on any other:
//   exp_avg/<name>, exp_avg_sq/<name>, step/<name>                 a whole parameter
//   exp_avg/<name>@<begin>-<end>, ... (moments of shape [end-begin]) elements [begin, end) of the
//                                                                 flattened parameter (a ZeRO-1 piece)
#pragma once
#include <torch/torch.h>

#include <filesystem>
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
// The slots of `pieces` of a flat layout (any world size and rank), stepped as `views`.
std::vector<MomentSlot> moment_slots(ClinicalTransformer& model, const std::vector<ShardPiece>& pieces,
                                     const std::vector<torch::Tensor>& views);

// exp_avg, exp_avg_sq and step for each slot the optimizer holds state for (none before the first step).
NamedTensors moment_tensors(const std::vector<MomentSlot>& slots, torch::optim::AdamW& optimizer);

// A key of the form above, split; nullopt for another.
struct MomentKey {
  std::string kind, name;
  std::optional<std::pair<int64_t, int64_t>> range;  // none: the whole parameter
};
std::optional<MomentKey> parse_moment_key(const std::string& key);

// Restores the moments of each slot from checkpoint `dir`'s optimizer files, whatever the ranks
// and sharding that wrote them (whole parameters or ranges): the files' headers are read, then
// only the bytes overlapping this rank's slots. A slot whose parameter has no saved state is left
// alone (saved before the first step); one covered only in part, or a value that is not finite,
// is an error naming the file.
void load_moments(const std::filesystem::path& dir, const std::vector<MomentSlot>& slots,
                  torch::optim::AdamW& optimizer);

}  // namespace chart
