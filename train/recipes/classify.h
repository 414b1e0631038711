// A fine-tuned model's probability of the positive class (or of each class, for a multi-class
// head) for examples cut at their prediction times (fine-tuning's tuning evaluations, `chart eval`,
// `chart predict`).
#pragma once
#include <string>
#include <vector>

#include "data/examples.h"
#include "model/device.h"
#include "model/transformer.h"
#include "train/checkpoint/pretrained.h"

namespace chart {

// The fine-tuned model of checkpoint `p` (its backbone and classification head) on dev, in eval
// mode; a checkpoint without a head is a chart::Error naming it.
ClinicalTransformer load_classifier(const Pretrained& p, const DeviceChoice& dev);

// The columns of the head's output that one task owns: a multi-task head is every task's
// outputs side by side (finetune.yaml's tasks); width -1: all of them.
struct HeadSlice {
  int64_t offset = 0, width = -1;
};

// What a fine-tuned head predicts: a boolean task (no classes) or the classes of a multi-class
// one, in the head's order, with the label column they came from (finetune.yaml of the checkpoint).
struct HeadClasses {
  std::string column = "boolean_value";
  std::vector<std::string> classes;
  double target_mean = 0, target_std = 1;  // a regression head predicts (target - mean) / std
  // A time-to-event head (column "time_to_event"): its event codes and piece edges (task.*).
  std::vector<std::string> event_codes, time_pieces;
  std::string task;     // a multi-task checkpoint's task this is (empty: a single-task checkpoint)
  int64_t offset = 0;   // its first output in the head
  HeadSlice slice() const { return {offset, outputs()}; }
  bool multiclass() const { return !classes.empty(); }
  bool regression() const { return column == "float_value"; }
  bool time_to_event() const { return !event_codes.empty(); }
  int64_t outputs() const;
  std::string describe() const;  // "regression", "multi-class (3 classes of integer_value)", "time to event", "boolean"
};
// chart::Error when the head's size and finetune.yaml disagree. A multi-task checkpoint's head of
// `task` (a chart::Error naming its tasks when `task` is not one of them); `task` is not
// consulted for a single-task checkpoint.
HeadClasses head_classes(const Pretrained& p, const std::string& task = "");
// The task names of a multi-task checkpoint; empty for a single-task one.
std::vector<std::string> head_tasks(const Pretrained& p);

// One collated batch's probabilities, without gradients (the model is expected in eval mode).
// A multi-class head is a chart::Error here: its rows take predict_class_probabilities.
std::vector<double> classify_batch(ClinicalTransformer& model, const data::ExampleBatch& batch, const DeviceChoice& dev);

// The predictions below read the outputs of `slice` (default: the whole head).

// Batched, in eval mode and without gradients; the model's train/eval mode is restored.
std::vector<double> predict_probabilities(ClinicalTransformer& model, const data::TokenDataset& ds,
                                          const std::vector<data::Example>& examples, int64_t context,
                                          int64_t batch_size, const DeviceChoice& dev, HeadSlice slice = {});

// Each example's probability of every class of a multi-class head (softmax), [N][C]; batched,
// in eval mode, without gradients.
std::vector<std::vector<double>> predict_class_probabilities(ClinicalTransformer& model, const data::TokenDataset& ds,
                                                             const std::vector<data::Example>& examples, int64_t context,
                                                             int64_t batch_size, const DeviceChoice& dev,
                                                             HeadSlice slice = {});

// Each example's raw head outputs [N][outputs] (batched, eval mode, no gradients).
std::vector<std::vector<double>> predict_outputs(ClinicalTransformer& model, const data::TokenDataset& ds,
                                                 const std::vector<data::Example>& examples, int64_t context,
                                                 int64_t batch_size, const DeviceChoice& dev, HeadSlice slice = {});

// Each example's predicted value from a regression head (its output, un-standardised), [N]; reads
// head.slice().
std::vector<double> predict_values(ClinicalTransformer& model, const data::TokenDataset& ds,
                                   const std::vector<data::Example>& examples, int64_t context, int64_t batch_size,
                                   const DeviceChoice& dev, const HeadClasses& head);

// The context a fine-tuned model reads: finetune.context, or the checkpoint's model.context.
int64_t finetune_context(const Config& cfg);

}  // namespace chart
