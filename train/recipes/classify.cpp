#include "train/recipes/classify.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <functional>

#include <fmt/ranges.h>

#include "core/error.h"
#include "core/files.h"
#include "model/autocast.h"

namespace chart {

namespace {

torch::Tensor batch_logits(ClinicalTransformer& model, const data::ExampleBatch& b, const DeviceChoice& dev) {
  torch::NoGradGuard no_grad;
  AutocastGuard autocast(dev);
  return model->classify(b.tokens.to(dev.device), b.ages.to(dev.device), b.segments.to(dev.device),
                         b.last_index.to(dev.device));
}

// The head's logits [B, outputs] of each batch of examples, in eval mode and without gradients;
// the model's train/eval mode is restored.
void for_each_batch(ClinicalTransformer& model, const data::TokenDataset& ds, const std::vector<data::Example>& examples,
                    int64_t context, int64_t batch_size, const DeviceChoice& dev, HeadSlice slice,
                    const std::function<void(const torch::Tensor&)>& take) {
  const bool was_training = model->is_training();
  model->eval();
  for (size_t i = 0; i < examples.size(); i += static_cast<size_t>(batch_size)) {
    const size_t end = std::min(examples.size(), i + static_cast<size_t>(batch_size));
    torch::Tensor z = batch_logits(model, data::collate(ds, examples, i, end, context), dev);
    if (slice.width >= 0) z = z.slice(1, slice.offset, slice.offset + slice.width);
    take(z.to(torch::kFloat64).cpu().contiguous());
  }
  if (was_training) model->train();
}

}  // namespace

namespace {

YAML::Node finetune_yaml(const Pretrained& p) {
  const auto yaml = p.dir / "finetune.yaml";
  if (!std::filesystem::exists(yaml)) return YAML::Node();
  try {
    return YAML::Load(read_file(yaml));
  } catch (const YAML::Exception& e) {
    fail("{}: not a valid finetune.yaml: {}", yaml.string(), e.what());
  }
}

}  // namespace

std::vector<std::string> head_tasks(const Pretrained& p) {
  std::vector<std::string> names;
  const YAML::Node f = finetune_yaml(p);
  if (f && f["tasks"])
    for (const auto& t : f["tasks"]) names.push_back(t["name"].as<std::string>());
  return names;
}

HeadClasses head_classes(const Pretrained& p, const std::string& task) {
  HeadClasses h;
  const int64_t outputs = p.tensors.count("cls_head.weight") ? p.tensors.at("cls_head.weight").size(0) : 1;
  const auto yaml = p.dir / "finetune.yaml";
  if (YAML::Node f = finetune_yaml(p)) {
    try {
      if (f["tasks"]) {  // multi-task: the entry of `task`
        const std::vector<std::string> names = head_tasks(p);
        const auto it = std::find(names.begin(), names.end(), task);
        if (it == names.end())
          throw Error(fmt::format("{} is a multi-task checkpoint of tasks [{}]{}", p.dir.string(), fmt::join(names, ", "),
                                  task.empty() ? "" : fmt::format(", not '{}'", task)),
                      fmt::format("name one with --set task.name=TASK (e.g. task.name={})", names.front()));
        f = f["tasks"][static_cast<size_t>(it - names.begin())];
        h.task = task;
        h.offset = f["offset"].as<int64_t>();
      }
      if (f["label_column"]) h.column = f["label_column"].as<std::string>();
      if (f["classes"]) h.classes = f["classes"].as<std::vector<std::string>>();
      if (f["target_mean"]) h.target_mean = f["target_mean"].as<double>();
      if (f["target_std"]) h.target_std = f["target_std"].as<double>();
      if (f["event_codes"]) h.event_codes = f["event_codes"].as<std::vector<std::string>>();
      if (f["time_pieces"]) h.time_pieces = f["time_pieces"].as<std::vector<std::string>>();
    } catch (const YAML::Exception& e) {
      fail("{}: not a valid finetune.yaml: {}", yaml.string(), e.what());
    }
  }
  if (!h.task.empty()) {
    if (h.offset < 0 || h.offset + h.outputs() > outputs)
      fail("{}: task {} takes outputs {}..{} of a head of {}: the checkpoint is inconsistent", p.dir.string(), h.task,
           h.offset, h.offset + h.outputs() - 1, outputs);
    return h;
  }
  if (outputs != h.outputs())
    fail("{}: the head has {} outputs but finetune.yaml names {} {}: the checkpoint is inconsistent", p.dir.string(),
         outputs, h.outputs(), h.time_to_event() ? "time piece(s)" : "class(es)");
  return h;
}

std::string HeadClasses::describe() const {
  if (time_to_event()) return "time to event";
  if (regression()) return "regression";
  if (multiclass()) return fmt::format("multi-class ({} classes of {})", classes.size(), column);
  return "boolean";
}

int64_t HeadClasses::outputs() const {
  if (time_to_event()) return static_cast<int64_t>(time_pieces.size()) + 1;
  return multiclass() ? static_cast<int64_t>(classes.size()) : 1;
}

std::vector<double> classify_batch(ClinicalTransformer& model, const data::ExampleBatch& b, const DeviceChoice& dev) {
  torch::Tensor logits = batch_logits(model, b, dev);
  if (logits.size(1) != 1)
    fail("a multi-class head ({} classes) gives a probability per class, not one per row", logits.size(1));
  auto p = torch::sigmoid(logits.select(1, 0).to(torch::kFloat64)).cpu().contiguous();
  const double* d = p.data_ptr<double>();
  return std::vector<double>(d, d + p.numel());
}

std::vector<double> predict_probabilities(ClinicalTransformer& model, const data::TokenDataset& ds,
                                          const std::vector<data::Example>& examples, int64_t context,
                                          int64_t batch_size, const DeviceChoice& dev, HeadSlice slice) {
  std::vector<double> out;
  for_each_batch(model, ds, examples, context, batch_size, dev, slice, [&](const torch::Tensor& logits) {
    if (logits.size(1) != 1)
      fail("a multi-class head ({} classes) gives a probability per class, not one per row", logits.size(1));
    auto p = torch::sigmoid(logits.select(1, 0)).contiguous();
    out.insert(out.end(), p.data_ptr<double>(), p.data_ptr<double>() + p.numel());
  });
  return out;
}

std::vector<std::vector<double>> predict_outputs(ClinicalTransformer& model, const data::TokenDataset& ds,
                                                 const std::vector<data::Example>& examples, int64_t context,
                                                 int64_t batch_size, const DeviceChoice& dev, HeadSlice slice) {
  std::vector<std::vector<double>> out;
  for_each_batch(model, ds, examples, context, batch_size, dev, slice, [&](const torch::Tensor& z) {
    const int64_t K = z.size(1);
    for (int64_t r = 0; r < z.size(0); ++r) out.emplace_back(z.data_ptr<double>() + r * K, z.data_ptr<double>() + (r + 1) * K);
  });
  return out;
}

std::vector<std::vector<double>> predict_class_probabilities(ClinicalTransformer& model, const data::TokenDataset& ds,
                                                             const std::vector<data::Example>& examples, int64_t context,
                                                             int64_t batch_size, const DeviceChoice& dev,
                                                             HeadSlice slice) {
  auto out = predict_outputs(model, ds, examples, context, batch_size, dev, slice);
  for (auto& z : out) {  // softmax
    const double top = *std::max_element(z.begin(), z.end());
    double sum = 0;
    for (double& v : z) sum += v = std::exp(v - top);
    for (double& v : z) v /= sum;
  }
  return out;
}

std::vector<double> predict_values(ClinicalTransformer& model, const data::TokenDataset& ds,
                                   const std::vector<data::Example>& examples, int64_t context, int64_t batch_size,
                                   const DeviceChoice& dev, const HeadClasses& head) {
  std::vector<double> out;
  for_each_batch(model, ds, examples, context, batch_size, dev, head.slice(), [&](const torch::Tensor& logits) {
    auto z = logits.select(1, 0).contiguous();
    for (int64_t r = 0; r < z.size(0); ++r) out.push_back(head.target_mean + head.target_std * z.data_ptr<double>()[r]);
  });
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
