// A fine-tuned model's probability of the positive class for examples cut at their prediction
// times (fine-tuning's tuning evaluations, `chart eval`, `chart predict`).
#pragma once
#include <vector>

#include "data/examples.h"
#include "model/device.h"
#include "model/transformer.h"
#include "train/checkpoint/pretrained.h"

namespace chart {

// The fine-tuned model of checkpoint `p` (its backbone and classification head) on dev, in eval
// mode; a checkpoint without a head is a chart::Error naming it.
ClinicalTransformer load_classifier(const Pretrained& p, const DeviceChoice& dev);

// One collated batch's probabilities, without gradients (the model is expected in eval mode).
std::vector<double> classify_batch(ClinicalTransformer& model, const data::ExampleBatch& batch, const DeviceChoice& dev);

// Batched, in eval mode and without gradients; the model's train/eval mode is restored.
std::vector<double> predict_probabilities(ClinicalTransformer& model, const data::TokenDataset& ds,
                                          const std::vector<data::Example>& examples, int64_t context,
                                          int64_t batch_size, const DeviceChoice& dev);

// The context a fine-tuned model reads: finetune.context, or the checkpoint's model.context.
int64_t finetune_context(const Config& cfg);

}  // namespace chart
