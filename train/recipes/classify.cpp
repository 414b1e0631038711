#include "train/recipes/classify.h"

#include "core/error.h"
#include "model/autocast.h"

namespace chart {

std::vector<double> classify_batch(ClinicalTransformer& model, const data::ExampleBatch& b, const DeviceChoice& dev) {
  torch::NoGradGuard no_grad;
  torch::Tensor logits;
  {
    AutocastGuard autocast(dev);
    logits = model->classify(b.tokens.to(dev.device), b.ages.to(dev.device), b.segments.to(dev.device),
                             b.last_index.to(dev.device));
  }
  auto p = torch::sigmoid(logits.select(1, 0).to(torch::kFloat64)).cpu().contiguous();
  const double* d = p.data_ptr<double>();
  return std::vector<double>(d, d + p.numel());
}

std::vector<double> predict_probabilities(ClinicalTransformer& model, const data::TokenDataset& ds,
                                          const std::vector<data::Example>& examples, int64_t context,
                                          int64_t batch_size, const DeviceChoice& dev) {
  const bool was_training = model->is_training();
  model->eval();
  std::vector<double> out;
  out.reserve(examples.size());
  for (size_t i = 0; i < examples.size(); i += static_cast<size_t>(batch_size)) {
    const size_t end = std::min(examples.size(), i + static_cast<size_t>(batch_size));
    const auto p = classify_batch(model, data::collate(ds, examples, i, end, context), dev);
    out.insert(out.end(), p.begin(), p.end());
  }
  if (was_training) model->train();
  return out;
}

ClinicalTransformer load_classifier(const Pretrained& p, const DeviceChoice& dev) {
  if (!p.tensors.count("cls_head.weight"))
    throw Error(fmt::format("{} is not a fine-tuned checkpoint (it has no classification head)", p.dir.string()),
                "fine-tune it with chart finetune first, or use a pretrained checkpoint zero-shot");
  ClinicalTransformer model(p.config.model, p.vocab_size);
  model->add_classifier(p.tensors.at("cls_head.weight").size(0));
  copy_pretrained_weights(p, *model);
  model->to(dev.device);
  model->eval();
  return model;
}

int64_t finetune_context(const Config& cfg) {
  const int64_t L = cfg.finetune.context > 0 ? cfg.finetune.context : cfg.model.context;
  if (L > cfg.model.context)
    fail("finetune.context {} exceeds the model's context {} (positions it never saw in pretraining)", L,
         cfg.model.context);
  return L;
}

}  // namespace chart
