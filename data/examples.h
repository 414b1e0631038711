// Labelled examples for fine-tuning and evaluation: each label row joined to its subject in a
// token dataset, cut at its prediction time.
//
// An example sees the subject's tokens strictly up to and including prediction_time: the prefix
// ends before the first token whose time is later (a time-interval token carries the time of
// the event it leads to, so the gap to a future event is not seen either). Nothing after
// prediction_time can reach the model. A subject's split is the token dataset's, so fine-tuning
// never trains on subjects the pretraining held out.
#pragma once
#include <torch/types.h>

#include <map>
#include <string>
#include <vector>

#include "data/labels.h"
#include "data/token_dataset.h"

namespace chart::data {

struct Example {
  LabelRow row;
  const char* split = nullptr;  // "train", "tuning" or "held_out" (static strings)
  SubjectRef ref;
  uint32_t n_tokens = 0;  // tokens at or before prediction_time
};

struct ExampleSplits {
  std::map<std::string, std::vector<Example>> by_split;  // train, tuning, held_out
  int64_t unknown_subjects = 0;  // label rows whose subject is not in the dataset
  int64_t empty_prefix = 0;      // label rows before the subject's first token (dropped)
  int64_t after_record = 0;      // label rows after the subject's last event (kept: the whole record is seen)
};

// Label rows whose subject the dataset lacks are dropped with a warning; when they are more than
// kMaxUnknownSubjectFraction of the rows, the labels are of another dataset and are refused
// (chart::Error naming `labels_path` and the dataset). Likewise rows whose prediction_time falls
// outside their subject's record (before its first event: dropped; after its last: kept), whose
// subject ids only happen to match.
constexpr double kMaxUnknownSubjectFraction = 0.5;
ExampleSplits make_examples(const TokenDataset& ds, const std::vector<LabelRow>& labels, const std::string& labels_path);

struct ExampleBatch {
  torch::Tensor tokens;      // [B, L] int64, the last L tokens of each prefix, then [PAD]
  torch::Tensor ages;        // [B, L] float32, years
  torch::Tensor segments;    // [B, L] int32, 0 on tokens, -1 on padding
  torch::Tensor last_index;  // [B] int64, position of each prefix's last token
  torch::Tensor labels;      // [B] float32: 0 or 1, a multi-class row's class index, or a float target
                             // (a time-to-event row's days to its event or censoring)
  torch::Tensor events;      // [B] float32: 1 when row.label is true (a time-to-event row's event seen)
};

// B rows of L positions, all padding (labels 0).
ExampleBatch empty_batch(int64_t B, int64_t L);
// Row r: the last min(n_tokens, L) of these tokens (a prefix cut at its prediction time).
void fill_row(ExampleBatch& b, int64_t r, const uint32_t* tokens, const int64_t* times, int64_t n_tokens,
              int64_t birth_us);
// Examples[begin, end) as one batch of `context` positions per row.
ExampleBatch collate(const TokenDataset& ds, const std::vector<Example>& examples, size_t begin, size_t end,
                     int64_t context);

}  // namespace chart::data
