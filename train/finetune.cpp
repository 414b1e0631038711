#include "train/finetune.h"

#include <chrono>
#include <cmath>
#include <thread>

#include "core/error.h"
#include "core/files.h"
#include "core/json.h"
#include "core/log.h"
#include "core/mix.h"
#include "data/examples.h"
#include "data/labels.h"
#include "model/device.h"
#include "model/transformer.h"
#include "train/autocast.h"
#include "train/checkpoint.h"
#include "train/eval_metrics.h"
#include "train/metrics.h"
#include "train/model_card.h"
#include "train/optimizer.h"
#include "train/predict.h"
#include "train/pretrained.h"

namespace chart {
namespace fs = std::filesystem;
namespace {

struct Counts {
  int64_t n = 0, positives = 0;
};
Counts count(const std::vector<data::Example>& ex) {
  Counts c;
  c.n = static_cast<int64_t>(ex.size());
  for (const auto& e : ex) c.positives += e.row.label;
  return c;
}

std::string task_name(const Config& cfg) {
  if (!cfg.task.name.empty()) return cfg.task.name;
  fs::path p = fs::path(cfg.task.labels).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  return p.has_extension() ? p.stem().string() : p.filename().string();
}

// The epoch-shuffled order of n examples, the same on every platform.
std::vector<int64_t> epoch_order(int64_t n, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[static_cast<size_t>(i)] = i;
  uint64_t s = mix(seed ^ mix(static_cast<uint64_t>(epoch) + 1));
  for (size_t i = order.size(); i > 1; --i) {
    s = mix(s);
    std::swap(order[i - 1], order[s % i]);
  }
  return order;
}

// Copies of the trainable tensors (the best weights so far), and their restoration.
using Snapshot = std::vector<torch::Tensor>;
Snapshot snapshot(const std::vector<torch::Tensor>& params) {
  Snapshot s;
  for (const auto& p : params) s.push_back(p.detach().clone());
  return s;
}
void restore(const std::vector<torch::Tensor>& params, const Snapshot& s) {
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < params.size(); ++i) params[i].copy_(s[i]);
}

}  // namespace

int run_finetune(const Config& cfg_in) {
  Config cfg = cfg_in;
  const auto& tc = cfg.train;
  const auto& fc = cfg.finetune;
  if (cfg.run.dir.empty()) throw Error("run.dir is not set", "pass --set run.dir=DIR");
  if (cfg.task.labels.empty()) throw Error("task.labels is not set", "pass --set task.labels=LABELS_DIR_OR_FILE");
  const fs::path run_dir = cfg.run.dir;
  if (fs::exists(run_dir / "checkpoints" / "latest"))
    throw Error(fmt::format("{} already holds a fine-tuned checkpoint", run_dir.string()),
                "choose another run.dir, or remove the old run");
  set_cpu_threads(tc.threads);

  Pretrained pre = load_pretrained(cfg.init.checkpoint);
  if (cfg.data.dir.empty()) cfg.data.dir = pre.config.data.dir;
  cfg.model = pre.config.model;  // the architecture is the checkpoint's, whatever the recipe says
  auto ds = data::TokenDataset::open(cfg.data.dir);
  check_vocab(pre, ds.vocab_hash(), cfg.data.dir);
  if (pre.vocab_size != static_cast<int64_t>(ds.vocab().size()))
    fail("checkpoint {} has {} tokens, the vocabulary of {} has {}", pre.dir.string(), pre.vocab_size,
         cfg.data.dir, ds.vocab().size());
  const int64_t L = finetune_context(cfg);
  const std::string config_yaml = config_to_yaml(cfg);

  auto examples = data::make_examples(ds, data::read_labels(cfg.task.labels));
  const auto& train_ex = examples.by_split["train"];
  const auto& tuning_ex = examples.by_split["tuning"];
  const Counts ctrain = count(train_ex), ctune = count(tuning_ex);
  if (ctrain.positives == 0 || ctrain.positives == ctrain.n)
    fail("{}: the train split has {} label rows, {} positive: fine-tuning needs both classes", cfg.task.labels,
         ctrain.n, ctrain.positives);
  const bool can_tune = tc.eval_every > 0 && ctune.positives > 0 && ctune.positives < ctune.n;
  if (!can_tune)
    warn("finetune: no early stopping ({} tuning rows, {} positive; train.eval_every {})", ctune.n, ctune.positives,
         tc.eval_every);

  DeviceChoice dev = choose_device(tc.device, tc.precision);
  torch::manual_seed(static_cast<uint64_t>(tc.seed));
  ClinicalTransformer model(cfg.model, pre.vocab_size);
  model->add_classifier(1);
  copy_pretrained_weights(pre, *model, {"cls_head."});
  model->to(dev.device);
  // The pretraining heads play no part in a classifier.
  for (auto& p : model->named_parameters())
    if (p.key().rfind("lm_head.", 0) == 0 || p.key().rfind("time_head.", 0) == 0) p.value().set_requires_grad(false);
  if (fc.recipe != "full")
    for (auto& p : model->parameters()) p.set_requires_grad(false);
  if (fc.recipe == "lora") model->add_lora(fc.lora_rank, fc.lora_alpha, fc.lora_targets);
  for (auto& p : model->cls_head->parameters()) p.set_requires_grad(true);

  std::vector<torch::Tensor> trainable, head, decay, no_decay;
  for (const auto& p : model->named_parameters()) {
    if (!p.value().requires_grad()) continue;
    trainable.push_back(p.value());
    const bool is_head = p.key().rfind("cls_head.", 0) == 0;
    if (is_head) head.push_back(p.value());
    else (p.value().dim() == 2 && p.key() != "tok_emb.weight" ? decay : no_decay).push_back(p.value());
  }
  auto base = torch::optim::AdamWOptions(tc.lr).betas({tc.beta1, tc.beta2}).eps(tc.eps);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(base).weight_decay(tc.weight_decay)));
  groups.emplace_back(no_decay, std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(base).weight_decay(0.0)));
  groups.emplace_back(head, std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(base).weight_decay(tc.weight_decay)));
  torch::optim::AdamW optimizer(groups, base);
  auto set_lr = [&](double lr) {
    auto& g = optimizer.param_groups();
    for (size_t i = 0; i < g.size(); ++i)
      static_cast<torch::optim::AdamWOptions&>(g[i].options()).lr(i == 2 ? lr * fc.head_lr_scale : lr);
  };

  const double pos_weight = fc.class_weighting == "balanced"
                                ? double(ctrain.n - ctrain.positives) / double(ctrain.positives) : 1.0;
  auto pos_weight_t = torch::tensor({pos_weight}, torch::dtype(torch::kFloat32).device(dev.device));
  info("finetune: {} recipe on {} ({} trainable of {} parameters), task {}: train {} rows ({} positive), tuning {} "
       "({} positive), context {}, positive weight {:.2f}",
       fc.recipe, dev.describe(), [&] { int64_t n = 0; for (auto& t : trainable) n += t.numel(); return n; }(),
       model->parameter_count(), task_name(cfg), ctrain.n, ctrain.positives, ctune.n, ctune.positives, L, pos_weight);

  // probe: the frozen backbone's features, computed once.
  torch::Tensor train_features, train_labels;
  if (fc.recipe == "probe") {
    torch::NoGradGuard no_grad;
    model->eval();
    std::vector<torch::Tensor> f, y;
    for (size_t i = 0; i < train_ex.size(); i += 256) {
      auto b = data::collate(ds, train_ex, i, std::min(train_ex.size(), i + 256), L);
      AutocastGuard autocast(dev);
      f.push_back(model->features(b.tokens.to(dev.device), b.ages.to(dev.device), b.segments.to(dev.device),
                                  b.last_index.to(dev.device)).to(torch::kFloat32));
      y.push_back(b.labels.to(dev.device));
    }
    train_features = torch::cat(f);
    train_labels = torch::cat(y);
  }

  fs::create_directories(run_dir);
  write_file_atomic(run_dir / "config.yaml", config_yaml);
  MetricsLog metrics(run_dir, -1);
  model->train();

  auto tune = [&]() {
    auto p = predict_probabilities(model, ds, tuning_ex, L, std::max<int64_t>(tc.batch_size, 64), dev);
    std::vector<int> y;
    double loss = 0;
    for (size_t i = 0; i < p.size(); ++i) {
      y.push_back(tuning_ex[i].row.label);
      double q = std::clamp(p[i], 1e-7, 1 - 1e-7);
      loss -= y.back() ? std::log(q) : std::log(1 - q);
    }
    return std::make_pair(binary_metrics(p, y).auroc, loss / std::max<size_t>(1, p.size()));
  };

  Snapshot best = snapshot(trainable);
  int64_t best_step = 0, since_best = 0;
  double best_auroc = -1, best_loss = std::numeric_limits<double>::infinity();
  const int64_t n_train = ctrain.n;
  int64_t epoch = 0, cursor = 0, step = 0;
  auto order = epoch_order(n_train, static_cast<uint64_t>(tc.seed), epoch);
  Progress progress("finetune: step", tc.steps);
  auto t0 = std::chrono::steady_clock::now();
  int64_t seen = 0;
  double loss_sum = 0, plain_sum = 0;  // weighted (the objective) and unweighted
  int64_t loss_n = 0;
  while (step < tc.steps) {
    const double lr = learning_rate(tc, step);
    set_lr(lr);
    optimizer.zero_grad();
    std::vector<int64_t> idx;
    while (static_cast<int64_t>(idx.size()) < tc.batch_size) {
      if (cursor == n_train) {
        order = epoch_order(n_train, static_cast<uint64_t>(tc.seed), ++epoch);
        cursor = 0;
      }
      idx.push_back(order[static_cast<size_t>(cursor++)]);
    }
    torch::Tensor logits, y;
    {
      AutocastGuard autocast(dev);
      if (fc.recipe == "probe") {
        auto ix = torch::tensor(idx, torch::kInt64).to(dev.device);
        logits = model->cls_head(train_features.index_select(0, ix)).select(1, 0);
        y = train_labels.index_select(0, ix);
      } else {
        std::vector<data::Example> batch;
        for (int64_t i : idx) batch.push_back(train_ex[static_cast<size_t>(i)]);
        auto b = data::collate(ds, batch, 0, batch.size(), L);
        logits = model->classify(b.tokens.to(dev.device), b.ages.to(dev.device), b.segments.to(dev.device),
                                 b.last_index.to(dev.device)).select(1, 0);
        y = b.labels.to(dev.device);
      }
    }
    auto loss = torch::binary_cross_entropy_with_logits(logits.to(torch::kFloat32), y, {}, pos_weight_t);
    loss.backward();
    // Logged unweighted too, on the scale of the tuning loss.
    plain_sum += torch::binary_cross_entropy_with_logits(logits.detach().to(torch::kFloat32), y).item<double>();
    if (tc.grad_clip > 0) torch::nn::utils::clip_grad_norm_(trainable, tc.grad_clip);
    optimizer.step();
    ++step;
    seen += tc.batch_size;
    loss_sum += loss.item<double>();
    ++loss_n;

    if (step % tc.log_every == 0 || step == tc.steps) {
      double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      metrics.write(step, "train", {{"loss", plain_sum / loss_n}, {"weighted_loss", loss_sum / loss_n}, {"lr", lr},
                                    {"examples_per_s", seen / std::max(1e-9, secs)}});
      progress.update(step, fmt::format("loss {:.4f} | lr {:.2e}", plain_sum / loss_n, lr));
      loss_sum = 0, plain_sum = 0, loss_n = 0, seen = 0;
      t0 = std::chrono::steady_clock::now();
    }
    if (can_tune && (step % tc.eval_every == 0 || step == tc.steps)) {
      auto [auroc, tloss] = tune();
      metrics.write(step, "tuning", {{"loss", tloss}, {"auroc", auroc}});
      const bool better = auroc > best_auroc || (auroc == best_auroc && tloss < best_loss);
      info("finetune: step {} tuning AUROC {:.4f} loss {:.4f}{}", step, auroc, tloss, better ? " (best)" : "");
      if (better) {
        best_auroc = auroc, best_loss = tloss, best_step = step, since_best = 0;
        best = snapshot(trainable);
      } else if (fc.patience > 0 && ++since_best >= fc.patience) {
        info("finetune: no better tuning AUROC in {} evaluations; stopping at step {}", fc.patience, step);
        break;
      }
    }
  }
  progress.finish(fmt::format("{} steps", step));
  if (can_tune) restore(trainable, best);
  else best_step = step;
  if (fc.recipe == "lora") model->merge_lora();

  TrainerState st;
  st.step = best_step;
  st.vocab_hash = ds.vocab_hash();
  const std::string summary = fmt::format(
      "task: {}\nlabels: {}\nrecipe: {}\nbest_step: {}\nsteps_run: {}\ntuning_auroc: {}\ntuning_loss: {}\n"
      "train_rows: {}\ntrain_positive: {}\ntuning_rows: {}\ntuning_positive: {}\ncontext: {}\n"
      "pretrained_checkpoint: {}\n",
      task_name(cfg), cfg.task.labels, fc.recipe, best_step, step, can_tune ? fmt::format("{}", best_auroc) : "null",
      can_tune ? fmt::format("{}", best_loss) : "null", ctrain.n, ctrain.positives, ctune.n, ctune.positives, L,
      pre.dir.string());
  model->to(torch::kCPU);
  // The model card: the fine-tuning data and task, the tuning result, and the pretrained
  // model's own card as its base (train/model_card.h).
  ModelCard card;
  card.kind = "finetuned";
  card.data = data_lineage(cfg.data.dir, "train");
  card.set_section("task", fmt::format(
      "{{\"name\": {}, \"labels\": {}, \"recipe\": {}, \"context\": {}, \"train_rows\": {}, \"train_positive\": {}, "
      "\"tuning_rows\": {}, \"tuning_positive\": {}, \"best_step\": {}, \"steps_run\": {}, \"pretrained_checkpoint\": {}}}",
      json_string(task_name(cfg)), json_string(cfg.task.labels), json_string(fc.recipe), L, ctrain.n, ctrain.positives,
      ctune.n, ctune.positives, best_step, step, json_string(pre.dir.string())));
  if (can_tune) {
    card.set_metric("tuning_auroc", best_auroc);
    card.set_metric("tuning_loss", best_loss);
    card.set_section("evaluation", fmt::format("{{\"split\": \"tuning\", \"step\": {}, \"auroc\": {}, \"loss\": {}, \"n\": {}}}",
                                               best_step, json_number(best_auroc), json_number(best_loss), ctune.n));
  }
  try {
    card.set_section("base_model", read_model_card_json(pre.dir));
  } catch (const Error&) {  // a checkpoint from before model cards
  }
  fill_model_card(card, *model, config_yaml, best_step, 0, ds.vocab_hash());
  const std::string card_json = model_card_json(card);
  auto saved = save_model_checkpoint(run_dir, config_yaml, *model, st,
                                     {{"finetune.yaml", summary}, {"model_card.json", card_json},
                                      {"MODEL_CARD.md", model_card_markdown(card_json)}});
  info("finetune: saved {} (step {}{})", saved.string(), best_step,
       can_tune ? fmt::format(", tuning AUROC {:.4f}", best_auroc) : "");
  return 0;
}

}  // namespace chart
