// The steps of `chart finetune`, in the order run_finetune() calls them (what it writes at the
// end: finetune_save.cpp).
#include <chrono>
#include <cmath>

#include <fmt/ranges.h>

#include "core/error.h"
#include "core/faults.h"
#include "core/files.h"
#include "core/json.h"
#include "core/mix.h"
#include "data/labels.h"
#include "data/time_to_event.h"
#include "model/autocast.h"
#include "train/checkpoint/governance.h"
#include "train/interop/load_pretrained.h"
#include "train/pretrain/optimizer.h"
#include "train/recipes/eval.h"
#include "train/recipes/finetune_run.h"
#include "train/recipes/classify.h"
#include "train/recipes/time_to_event.h"
#include "train/validation/binary_metrics.h"
#include "train/validation/multiclass_metrics.h"
#include "train/validation/regression_metrics.h"

namespace chart {
namespace fs = std::filesystem;
namespace {

ClassCounts count(const std::vector<data::Example>& ex, size_t classes) {
  ClassCounts c;
  c.n = static_cast<int64_t>(ex.size());
  c.per_class.assign(classes, 0);
  for (const auto& e : ex) {
    c.positives += e.row.label;
    if (e.row.class_index >= 0) ++c.per_class[size_t(e.row.class_index)];
  }
  return c;
}

std::string task_name(const Config& cfg) {
  return cfg.task.name.empty() ? data::task_name_of(cfg.task.labels) : cfg.task.name;
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

std::vector<torch::Tensor> snapshot(const std::vector<torch::Tensor>& params) {
  std::vector<torch::Tensor> s;
  for (const auto& p : params) s.push_back(p.detach().clone());
  return s;
}


bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

// Tuning macro AUROC and mean log loss of a multi-class head.
std::pair<double, double> tune_classes(FinetuneRun& r) {
  const auto& ex = r.tuning_examples();
  auto p = predict_class_probabilities(r.model, r.ds, ex, r.context, std::max<int64_t>(r.cfg.train.batch_size, 64), r.dev,
                                       r.head);
  std::vector<int> y;
  for (const auto& e : ex) y.push_back(e.row.class_index);
  const MulticlassMetrics m = multiclass_metrics(p, y, static_cast<int64_t>(r.classes.size()));
  return {m.macro_auroc, m.log_loss};
}

HeadClasses head_of(const FinetuneRun& r) {
  HeadClasses h;
  h.column = r.label_column, h.classes = r.classes, h.target_mean = r.target_mean, h.target_std = r.target_std;
  h.offset = r.head.offset;
  return h;
}

// Tuning R² and RMSE of a regression head.
std::pair<double, double> tune_values(FinetuneRun& r) {
  const auto& ex = r.tuning_examples();
  auto p = predict_values(r.model, r.ds, ex, r.context, std::max<int64_t>(r.cfg.train.batch_size, 64), r.dev, head_of(r));
  std::vector<double> y;
  for (const auto& e : ex) y.push_back(e.row.value);
  const RegressionMetrics m = regression_metrics(p, y);
  return {m.r2, m.rmse};
}

// Tuning C_td (cut at the largest eval horizon, as chart eval cuts it) and mean negative
// log-likelihood of a time-to-event head.
std::pair<double, double> tune_survival(FinetuneRun& r) {
  const auto& ex = r.tuning_examples();
  const PiecewiseHazards p =
      predict_hazards(r.model, r.ds, ex, r.context, std::max<int64_t>(r.cfg.train.batch_size, 64), r.dev, r.edges, r.head);
  const auto obs = observations(ex);
  std::vector<float> z, t, d;
  for (size_t i = 0; i < ex.size(); ++i) {
    for (double h : p.hazard[i]) z.push_back(float(std::log(h)));
    t.push_back(float(obs[i].time)), d.push_back(obs[i].event);
  }
  const int64_t n = int64_t(ex.size()), K = int64_t(r.edges.size());
  const double nll = piecewise_exponential_nll(torch::tensor(z).view({n, K}), torch::tensor(t), torch::tensor(d), r.edges)
                         .item<double>();
  return {survival_metrics(p, obs, r.horizons).c_td, nll};
}

// Tuning AUROC and mean (unweighted) log loss of the current weights.
std::pair<double, double> tune(FinetuneRun& r) {
  if (r.multiclass()) return tune_classes(r);
  if (r.regression()) return tune_values(r);
  if (r.time_to_event()) return tune_survival(r);
  const auto& ex = r.tuning_examples();
  auto p = predict_probabilities(r.model, r.ds, ex, r.context, std::max<int64_t>(r.cfg.train.batch_size, 64), r.dev, r.head);
  std::vector<int> y;
  double loss = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    y.push_back(ex[i].row.label);
    const double q = std::clamp(p[i], 1e-7, 1 - 1e-7);
    loss -= y.back() ? std::log(q) : std::log(1 - q);
  }
  return {binary_metrics(p, y).auroc, loss / std::max<size_t>(1, p.size())};
}

}  // namespace

namespace {

// A multi-class task needs two classes in train; early stopping two in tuning. A class without
// train rows is kept (the head has an output for it) and said.
void check_class_counts(FinetuneRun& r) {
  const ClassCounts& ct = r.train_counts;
  if (r.classes.size() < 2)
    fail("{}: {} holds one class only ('{}'): a classifier needs two or more", r.cfg.task.labels, r.label_column,
         r.classes.front());
  if (ct.classes_present() < 2)
    fail("{}: the train split's {} label rows hold {} class(es) of {}: fine-tuning needs two or more", r.cfg.task.labels,
         ct.n, ct.classes_present(), r.classes.size());
  for (size_t c = 0; c < r.classes.size(); ++c)
    if (ct.per_class[c] == 0)
      warn("finetune: class '{}' has no train rows (it appears only in other splits): the head cannot learn it",
           r.classes[c]);
  const ClassCounts& cu = r.tuning_counts;
  r.can_tune = r.cfg.train.eval_every > 0 && cu.classes_present() >= 2;
  if (!r.can_tune)
    warn("finetune: no early stopping ({} tuning rows in {} class(es); train.eval_every {})", cu.n,
         cu.classes_present(), r.cfg.train.eval_every);
  for (size_t c = 0; c < r.classes.size(); ++c)
    if (ct.per_class[c] > 0 && ct.per_class[c] < kFewCases)
      warn("finetune: class '{}' has only {} train rows: its probabilities rest on very few patients", r.classes[c],
           ct.per_class[c]);
}

// A regression head learns z-scores of the train targets (so one learning rate suits any unit);
// it needs two train rows that differ, and early stopping two tuning rows.
void standardise_targets(FinetuneRun& r) {
  const auto& ex = r.train_examples();
  double sum = 0, sq = 0;
  for (const auto& e : ex) sum += e.row.value;
  const double n = static_cast<double>(ex.size());
  r.target_mean = n > 0 ? sum / n : 0;
  for (const auto& e : ex) sq += (e.row.value - r.target_mean) * (e.row.value - r.target_mean);
  r.target_std = n > 1 ? std::sqrt(sq / (n - 1)) : 0;
  if (!(r.target_std > 0))
    fail("{}: the train split's {} float_value labels do not vary: a regression head needs targets that differ",
         r.cfg.task.labels, ex.size());
  r.can_tune = r.cfg.train.eval_every > 0 && r.tuning_counts.n >= 2;
  if (!r.can_tune)
    warn("finetune: no early stopping ({} tuning rows; train.eval_every {})", r.tuning_counts.n, r.cfg.train.eval_every);
}

// The head starts at the train rows' own piece hazards (its bias), so the first steps learn
// who is at higher risk rather than the overall rate.
void start_at_train_hazards(FinetuneRun& r) {
  torch::NoGradGuard no_grad;
  const auto h = piece_hazards(r.train_examples(), r.edges);
  for (size_t k = 0; k < h.size(); ++k) r.model->cls_head->bias[r.head.offset + int64_t(k)] = std::log(h[k]);
}

// A time-to-event task: prediction times from the labels, times to the event codes from the
// record; fine-tuning needs train events, early stopping tuning ones.
void open_time_to_event(FinetuneRun& r) {
  const auto& tc = r.cfg.task;
  r.label_column = "time_to_event";
  r.edges = data::piece_edges_days(tc.time_pieces, "task.time_pieces");
  r.horizons = data::piece_edges_days(r.cfg.eval.horizons, "eval.horizons");
  r.horizons.erase(r.horizons.begin());
  const auto events = data::code_token_mask(r.ds.vocab(), tc.event_codes, "task.event_codes");
  r.examples = data::make_examples(r.ds, data::read_prediction_times(tc.labels), tc.labels);
  for (auto& [split, ex] : r.examples.by_split) data::add_times_to_event(r.ds, ex, events);
  r.train_counts = count(r.train_examples(), 0);
  r.tuning_counts = count(r.tuning_examples(), 0);
  if (r.train_counts.positives == 0)
    fail("{}: none of the train split's {} prediction times is followed by one of [{}] in its record: a time-to-event "
         "head needs events to learn from", tc.labels, r.train_counts.n, fmt::join(tc.event_codes, ", "));
  r.can_tune = r.cfg.train.eval_every > 0 && r.tuning_counts.positives > 0 && r.tuning_counts.n >= 2;
  if (!r.can_tune)
    warn("finetune: no early stopping ({} tuning rows, {} with an event; train.eval_every {})", r.tuning_counts.n,
         r.tuning_counts.positives, r.cfg.train.eval_every);
}

// finetune.class_weighting=balanced weighs class c by n / (C n_c), as sklearn's "balanced" does.
void set_class_weights(FinetuneRun& r) {
  const ClassCounts& c = r.train_counts;
  const double C = static_cast<double>(r.classes.size());
  std::vector<float> w;
  for (int64_t k : c.per_class)
    w.push_back(r.cfg.finetune.class_weighting == "balanced" && k > 0 ? float(double(c.n) / (C * double(k))) : 1.0f);
  r.class_weights = torch::tensor(w, torch::dtype(torch::kFloat32)).to(r.dev.device);
  int64_t n_trainable = 0;
  for (const auto& t : r.trainable) n_trainable += t.numel();
  std::vector<std::string> counts;
  for (size_t k = 0; k < r.classes.size(); ++k)
    counts.push_back(fmt::format("{} {} (weight {:.2f})", r.classes[k], c.per_class[k], w[k]));
  info("finetune: {} recipe on {} ({} trainable of {} parameters), task {}: {} classes of {}; train {} rows ({}), "
       "tuning {}, context {}",
       r.cfg.finetune.recipe, r.dev.describe(), n_trainable, r.model->parameter_count(), r.task, r.classes.size(),
       r.label_column, c.n, fmt::join(counts, ", "), r.tuning_counts.n, r.context);
}

}  // namespace

std::unique_ptr<FinetuneRun> open_finetune_run(const Config& cfg_in, const DeviceChoice& dev, Dist& dist) {
  Config cfg = cfg_in;
  if (cfg.task.labels.empty()) throw Error("task.labels is not set", "pass --set task.labels=LABELS_DIR_OR_FILE");
  const fs::path run_dir = cfg.run.dir;
  if (cfg.train.batch_size % dist.world_size() != 0)
    fail("train.batch_size {} is not a multiple of the {} ranks: each rank takes an equal share of a batch",
         cfg.train.batch_size, dist.world_size());
  if (fs::exists(run_dir / "checkpoints" / "latest"))
    throw Error(fmt::format("{} already holds a fine-tuned checkpoint", run_dir.string()),
                "choose another run.dir, or remove the old run");
  governance_section(cfg.card.governance);  // a bad governance file fails now, not after the training
  Pretrained pre = load_pretrained(cfg.init.checkpoint);
  if (cfg.data.dir.empty()) cfg.data.dir = pre.config.data.dir;
  cfg.model = checkpoint_model(pre, cfg.model);
  auto ds = data::TokenDataset::open(cfg.data.dir);
  auto r = std::make_unique<FinetuneRun>(cfg, std::move(pre), std::move(ds));
  r->dist = &dist;
  r->fault_steps = nonfinite_fault_steps();
  check_vocab(r->pre, r->ds.vocab_hash(), r->cfg.data.dir);
  if (r->pre.vocab_size != static_cast<int64_t>(r->ds.vocab().size()))
    fail("checkpoint {} has {} tokens, the vocabulary of {} has {}", r->pre.dir.string(), r->pre.vocab_size,
         r->cfg.data.dir, r->ds.vocab().size());
  r->context = finetune_context(r->cfg);
  r->task = task_name(r->cfg);
  r->config_yaml = config_to_yaml(r->cfg);
  r->dev = dev;
  if (!r->cfg.task.event_codes.empty()) {
    open_time_to_event(*r);
    return r;
  }
  data::LabelSet labels = data::read_label_set(r->cfg.task.labels);
  r->label_column = labels.column;
  r->classes = labels.classes;
  r->examples = data::make_examples(r->ds, labels.rows, r->cfg.task.labels);
  r->train_counts = count(r->train_examples(), r->classes.size());
  r->tuning_counts = count(r->tuning_examples(), r->classes.size());
  if (r->multiclass()) {
    check_class_counts(*r);
    return r;
  }
  if (r->regression()) {
    standardise_targets(*r);
    return r;
  }
  const ClassCounts& ct = r->train_counts;
  if (ct.positives == 0 || ct.positives == ct.n)
    fail("{}: the train split has {} label rows, {} positive: fine-tuning needs both classes", r->cfg.task.labels,
         ct.n, ct.positives);
  const ClassCounts& cu = r->tuning_counts;
  r->can_tune = r->cfg.train.eval_every > 0 && cu.positives > 0 && cu.positives < cu.n;
  if (!r->can_tune)
    warn("finetune: no early stopping ({} tuning rows, {} positive; train.eval_every {})", cu.n, cu.positives,
         r->cfg.train.eval_every);
  for (const auto& [split, c] : {std::pair{"train", ct}, {"tuning", cu}})
    if (const std::string w = few_cases_warning(c.n, c.positives); !w.empty() && c.positives > 0)
      warn("finetune: {} split: {}{}", split, w,
           std::string(split) == "tuning" && r->can_tune ? "; early stopping picks its step on them" : "");
  return r;
}

void build_classifier(FinetuneRun& r) {
  build_backbone(r, r.outputs());
  add_task_head(r);
}

void build_backbone(FinetuneRun& r, int64_t outputs) {
  const auto& fc = r.cfg.finetune;
  torch::manual_seed(static_cast<uint64_t>(r.cfg.train.seed));
  r.model = ClinicalTransformer(r.cfg.model, r.pre.vocab_size);
  r.model->add_classifier(outputs);
  copy_pretrained_weights(r.pre, *r.model, {"cls_head."});
  r.model->to(r.dev.device);
  // The pretraining heads play no part in a classifier.
  for (auto& p : r.model->named_parameters())
    if (starts_with(p.key(), "lm_head.") || starts_with(p.key(), "time_head.")) p.value().set_requires_grad(false);
  if (fc.recipe != "full")
    for (auto& p : r.model->parameters()) p.set_requires_grad(false);
  if (fc.recipe == "lora") r.model->add_lora(fc.lora_rank, fc.lora_alpha, fc.lora_targets);
  for (auto& p : r.model->cls_head->parameters()) p.set_requires_grad(true);
  for (const auto& p : r.model->parameters())
    if (p.requires_grad()) r.trainable.push_back(p);
  r.head = {0, r.outputs()};
}

void add_task_head(FinetuneRun& r) {
  const auto& fc = r.cfg.finetune;
  if (r.time_to_event()) start_at_train_hazards(r);
  r.best_weights = snapshot(r.trainable);  // the best so far: where training starts
  if (r.multiclass()) {
    set_class_weights(r);
    return;
  }
  if (r.time_to_event()) {
    info("finetune: {} recipe on {}, task {}: time to [{}] in {} pieces, train {} rows ({} with the event), tuning {} "
         "({}), context {}",
         fc.recipe, r.dev.describe(), r.task, fmt::join(r.cfg.task.event_codes, ", "), r.edges.size(), r.train_counts.n,
         r.train_counts.positives, r.tuning_counts.n, r.tuning_counts.positives, r.context);
    return;
  }
  if (r.regression()) {
    info("finetune: {} recipe on {}, task {}: regression on float_value, train {} rows (mean {:.4g}, sd {:.4g}), "
         "tuning {}, context {}",
         fc.recipe, r.dev.describe(), r.task, r.train_counts.n, r.target_mean, r.target_std, r.tuning_counts.n, r.context);
    return;
  }
  const ClassCounts& c = r.train_counts;
  const double pos_weight =
      fc.class_weighting == "balanced" ? double(c.n - c.positives) / double(c.positives) : 1.0;
  r.pos_weight = torch::tensor({pos_weight}, torch::dtype(torch::kFloat32).device(r.dev.device));
  int64_t n_trainable = 0;
  for (const auto& t : r.trainable) n_trainable += t.numel();
  info("finetune: {} recipe on {} ({} trainable of {} parameters), task {}: train {} rows ({} positive), tuning {} "
       "({} positive), context {}, positive weight {:.2f}",
       fc.recipe, r.dev.describe(), n_trainable, r.model->parameter_count(), r.task, c.n, c.positives,
       r.tuning_counts.n, r.tuning_counts.positives, r.context, pos_weight);
}

void make_finetune_optimizer(FinetuneRun& r) {
  const auto& tc = r.cfg.train;
  std::vector<torch::Tensor> head, decay, no_decay;
  for (const auto& p : r.model->named_parameters()) {
    if (!p.value().requires_grad()) continue;
    if (starts_with(p.key(), "cls_head.")) head.push_back(p.value());
    else (p.value().dim() == 2 && p.key() != "tok_emb.weight" ? decay : no_decay).push_back(p.value());
  }
  auto base = torch::optim::AdamWOptions(tc.lr).betas({tc.beta1, tc.beta2}).eps(tc.eps);
  auto with_decay = [&](double wd) {
    return std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(base).weight_decay(wd));
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, with_decay(tc.weight_decay));
  groups.emplace_back(no_decay, with_decay(0.0));
  groups.emplace_back(head, with_decay(tc.weight_decay));
  r.optimizer = std::make_unique<torch::optim::AdamW>(groups, base);
}

void compute_probe_features(FinetuneRun& r) {
  if (r.cfg.finetune.recipe != "probe") return;
  torch::NoGradGuard no_grad;
  r.model->eval();
  const auto& ex = r.train_examples();
  std::vector<torch::Tensor> f, y, ev;
  for (const auto& e : ex) r.tokens_seen += std::min<int64_t>(e.n_tokens, r.context);
  for (size_t i = 0; i < ex.size(); i += 256) {
    auto b = data::collate(r.ds, ex, i, std::min(ex.size(), i + 256), r.context);
    AutocastGuard autocast(r.dev);
    const auto d = r.dev.device;
    f.push_back(r.model->features(b.tokens.to(d), b.ages.to(d), b.segments.to(d), b.last_index.to(d))
                    .to(torch::kFloat32));
    y.push_back(b.labels.to(d));
    ev.push_back(b.events.to(d));
  }
  r.probe_features = torch::cat(f);
  r.probe_labels = torch::cat(y);
  r.probe_events = torch::cat(ev);
  r.model->train();
}

std::vector<int64_t> next_batch(FinetuneRun& r) {
  const int64_t n = r.train_counts.n;
  const auto seed = static_cast<uint64_t>(r.cfg.train.seed);
  if (r.order.empty()) r.order = epoch_order(n, seed, r.epoch);
  std::vector<int64_t> idx;
  while (static_cast<int64_t>(idx.size()) < r.cfg.train.batch_size) {
    if (r.cursor == n) {
      r.order = epoch_order(n, seed, ++r.epoch);
      r.cursor = 0;
    }
    idx.push_back(r.order[static_cast<size_t>(r.cursor++)]);
  }
  return idx;
}

// Sums the trainable parameters' gradients across ranks, in one flat buffer.
void sync_gradients(FinetuneRun& r) {
  if (!r.dist->active()) return;
  std::vector<torch::Tensor> flat;
  for (auto& p : r.trainable) flat.push_back(p.grad().defined() ? p.grad().reshape(-1) : torch::zeros({p.numel()}, p.options()));
  torch::Tensor all = torch::cat(flat);
  r.dist->all_reduce_sum(all);
  int64_t at = 0;
  for (auto& p : r.trainable) {
    if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
    p.grad().copy_(all.slice(0, at, at + p.numel()).view_as(p));
    at += p.numel();
  }
}

void finetune_step(FinetuneRun& r, const std::vector<int64_t>& idx) {
  r.optimizer->zero_grad();
  const auto [weighted, plain] = task_backward(r, idx, 1.0);
  apply_step(r, weighted, plain);
}

std::pair<double, double> task_backward(FinetuneRun& r, const std::vector<int64_t>& idx, double scale) {
  const auto d = r.dev.device;
  // This rank's share of the batch: every world_size-th index, weighted by its share of the rows,
  // so the ranks' summed gradients are those of the whole batch's mean loss.
  std::vector<int64_t> mine;
  for (size_t i = static_cast<size_t>(r.dist->rank()); i < idx.size(); i += static_cast<size_t>(r.dist->world_size()))
    mine.push_back(idx[i]);
  const double share = scale * double(mine.size()) / double(idx.size());
  torch::Tensor logits, y, events;
  {
    AutocastGuard autocast(r.dev);
    if (r.cfg.finetune.recipe == "probe") {
      auto ix = torch::tensor(mine, torch::kInt64).to(d);
      logits = r.model->cls_head(r.probe_features.index_select(0, ix));
      y = r.probe_labels.index_select(0, ix);
      events = r.probe_events.index_select(0, ix);
    } else {
      std::vector<data::Example> batch;
      for (int64_t i : idx) r.tokens_seen += std::min<int64_t>(r.train_examples()[static_cast<size_t>(i)].n_tokens, r.context);
      for (int64_t i : mine) batch.push_back(r.train_examples()[static_cast<size_t>(i)]);
      auto b = data::collate(r.ds, batch, 0, batch.size(), r.context);
      logits = r.model->classify(b.tokens.to(d), b.ages.to(d), b.segments.to(d), b.last_index.to(d));
      y = b.labels.to(d);
      events = b.events.to(d);
    }
  }
  logits = logits.to(torch::kFloat32).slice(1, r.head.offset, r.head.offset + r.head.width);
  if (!r.multiclass() && !r.time_to_event()) logits = logits.select(1, 0);
  // The objective (class-weighted) and, logged beside it, the plain loss on the tuning loss's scale.
  auto objective = [&](const torch::Tensor& z, bool weighted) {
    if (r.regression()) return torch::mse_loss(z, (y - r.target_mean) / r.target_std);
    if (r.time_to_event()) return piecewise_exponential_nll(z, y, events, r.edges);
    if (r.multiclass()) return torch::nn::functional::cross_entropy(
        z, y.to(torch::kLong), torch::nn::functional::CrossEntropyFuncOptions().weight(weighted ? r.class_weights : torch::Tensor()));
    return torch::binary_cross_entropy_with_logits(z, y, {}, weighted ? r.pos_weight : torch::Tensor());
  };
  auto loss = objective(logits, true) * share;
  if (r.fault_steps.count(r.step + 1)) loss = loss * std::numeric_limits<double>::quiet_NaN();
  loss.backward();
  // The whole batch's losses (one collective): the same on every rank.
  const auto totals = r.dist->sum({loss.item<double>(), objective(logits.detach(), false).item<double>() * share});
  return {totals[0], totals[1]};
}

void apply_step(FinetuneRun& r, double weighted, double plain) {
  sync_gradients(r);
  const double clip = r.cfg.train.grad_clip > 0 ? r.cfg.train.grad_clip : std::numeric_limits<double>::infinity();
  const double grad_norm = torch::nn::utils::clip_grad_norm_(r.trainable, clip);
  ++r.step;
  if (!std::isfinite(weighted) || !std::isfinite(grad_norm)) {
    skip_finetune_step(r, weighted, grad_norm);
    return;
  }
  r.skipped_in_a_row = 0;
  r.optimizer->step();
  r.seen += r.cfg.train.batch_size;
  r.loss_sum += weighted;
  r.plain_sum += plain;  // unweighted, on the scale of the tuning loss
  ++r.loss_n;
}

void skip_finetune_step(FinetuneRun& r, double loss, double grad_norm) {
  ++r.skipped;
  ++r.skipped_in_a_row;
  auto number = [](double x) { return std::isnan(x) ? std::string("NaN") : fmt::format("{:.6g}", x); };
  warn("finetune: step {}: loss {} and gradient norm {}: not finite; step skipped ({} in a row; the run stops at {})",
       r.step, number(loss), number(grad_norm), r.skipped_in_a_row, r.cfg.train.max_skipped_steps);
  if (r.skipped_in_a_row < r.cfg.train.max_skipped_steps) return;
  throw Error(fmt::format("finetune: {} steps in a row, up to step {}, had a non-finite loss or gradient norm: stopped; "
                          "nothing was saved",
                          r.skipped_in_a_row, r.step),
              fmt::format("lower train.lr (now {}) or finetune.head_lr_scale (now {}), or clip with train.grad_clip",
                          r.cfg.train.lr, r.cfg.finetune.head_lr_scale));
}

void write_finetune_metrics(FinetuneRun& r, const std::string& split,
                            const std::vector<std::pair<std::string, double>>& values) {
  if (!r.metrics) return;  // not rank 0
  if (!r.metrics->write(r.step, split, values))
    throw Error(fmt::format("finetune: {}; stopped at step {} (nothing saved)", r.metrics->failure(), r.step),
                "free space on run.dir's storage (or fix its permissions) and run again");
}

std::pair<double, double> score_tuning(FinetuneRun& r) { return tune(r); }

void set_finetune_learning_rate(torch::optim::Optimizer& opt, double lr, double head_lr_scale) {
  auto& g = opt.param_groups();
  for (size_t i = 0; i < g.size(); ++i)
    static_cast<torch::optim::AdamWOptions&>(g[i].options()).lr(i == 2 ? lr * head_lr_scale : lr);
}

void log_finetune_if_due(FinetuneRun& r, double lr) {
  const auto& tc = r.cfg.train;
  if (!(r.step % tc.log_every == 0 || r.step == tc.steps)) return;
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - r.log_start).count();
  const double n = static_cast<double>(std::max<int64_t>(1, r.loss_n));
  write_finetune_metrics(r, "train", {{"loss", r.plain_sum / n}, {"weighted_loss", r.loss_sum / n}, {"lr", lr},
                                     {"examples_per_s", r.seen / std::max(1e-9, secs)}});
  if (r.progress) r.progress->update(r.step, fmt::format("loss {:.4f} | lr {:.2e}", r.plain_sum / n, lr));
  r.loss_sum = r.plain_sum = 0;
  r.loss_n = r.seen = 0;
  r.log_start = std::chrono::steady_clock::now();
}

bool tune_and_check_patience(FinetuneRun& r) {
  const auto& tc = r.cfg.train;
  if (!r.can_tune || !(r.step % tc.eval_every == 0 || r.step == tc.steps)) return false;
  auto [auroc, loss] = tune(r);
  write_finetune_metrics(r, "tuning", {{"loss", loss}, {r.time_to_event() ? "c_td" : "auroc", auroc}});
  const bool better = auroc > r.best_auroc || (auroc == r.best_auroc && loss < r.best_loss);
  info("finetune: step {} tuning {} {:.4f} {} {:.4f}{}", r.step, r.regression() ? "R²" : r.multiclass() ? "macro AUROC" : r.time_to_event() ? "C_td" : "AUROC",
       auroc, r.regression() ? "RMSE" : r.time_to_event() ? "NLL" : "loss", loss,
       better ? " (best)" : "");
  return track_best(r, auroc, loss, r.tuning_score(), r.tokens_seen);
}

bool track_best(FinetuneRun& r, double score, double loss, const std::string& what, int64_t tokens) {
  if (score > r.best_auroc || (score == r.best_auroc && loss < r.best_loss)) {
    r.best_auroc = score, r.best_loss = loss, r.best_step = r.step, r.best_tokens = tokens, r.since_best = 0;
    r.best_weights = snapshot(r.trainable);
    return false;
  }
  if (r.cfg.finetune.patience > 0 && ++r.since_best >= r.cfg.finetune.patience) {
    info("finetune: no better tuning {} in {} evaluations; stopping at step {}", what, r.cfg.finetune.patience, r.step);
    return true;
  }
  return false;
}

}  // namespace chart
