// The audit's unit of work: a stretch of one subject's timeline, read by the model as a training
// window would be (from its own first token, one segment), and the subjects it audits.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "data/token_dataset.h"

namespace chart {

// Tokens [start, start + n) of the subject at index `subject` of a list of subject refs.
struct Window {
  size_t subject;
  int64_t start, n;
};

// A batch of windows as model inputs, padded to `context`: tokens, ages (years) and segments.
struct WindowInputs {
  torch::Tensor tokens, ages, segments;
};
WindowInputs window_inputs(const data::TokenDataset& ds, const std::string& split,
                           const std::vector<data::SubjectRef>& refs, const std::vector<Window>& windows,
                           int64_t context);

// The first `n` subjects of a split with at least two tokens (one next-token target), in shard
// order: the same subjects every run; n = 0: all of them.
std::vector<data::SubjectRef> audited_subjects(const data::TokenDataset& ds, const std::string& split, int64_t n);

// Subjects audited from each split: members {"train", ...}; non-members held_out, then tuning.
using SplitSubjects = std::vector<std::pair<std::string, std::vector<data::SubjectRef>>>;

}  // namespace chart
