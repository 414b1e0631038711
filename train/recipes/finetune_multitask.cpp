#include "train/recipes/finetune_multitask.h"

#include <cmath>
#include <set>

#include <fmt/ranges.h>

#include "core/error.h"
#include "core/files.h"
#include "train/pretrain/optimizer.h"

namespace chart {

namespace {

int64_t tokens_seen(MultitaskRun& mt) {
  int64_t n = 0;
  for (auto& t : mt.tasks) n += t->tokens_seen;
  return n;
}

// The lead's backbone with every task's head side by side; each task shares the model and the
// trainable weights and knows its slice.
void build_heads(MultitaskRun& mt) {
  int64_t total = 0;
  for (auto& t : mt.tasks) total += t->outputs();
  FinetuneRun& lead = mt.lead();
  build_backbone(lead, total);
  int64_t offset = 0;
  for (auto& t : mt.tasks) {
    t->model = lead.model;
    t->trainable = lead.trainable;
    t->head = {offset, t->outputs()};
    offset += t->outputs();
    add_task_head(*t);
    if (t.get() != &lead) t->best_weights.clear();  // the lead keeps the run's best weights
    t->pre.tensors.clear();  // copied into the model; the card reads the checkpoint's directory
  }
}

// Each task's tuning score and loss, logged; the best mean score keeps the weights. True when
// patience ran out.
bool tune_tasks(MultitaskRun& mt) {
  FinetuneRun& lead = mt.lead();
  const auto& tc = lead.cfg.train;
  if (!lead.can_tune || !(lead.step % tc.eval_every == 0 || lead.step == tc.steps)) return false;
  std::vector<std::pair<std::string, double>> values;
  std::vector<std::pair<double, double>> scores;
  double score = 0, loss = 0;
  int64_t tunable = 0;
  for (auto& t : mt.tasks) tunable += t->can_tune;
  for (auto& t : mt.tasks) {
    if (!t->can_tune) continue;
    scores.push_back(score_tuning(*t));
    const auto [s, l] = scores.back();
    values.emplace_back(t->task + "/" + t->tuning_score(), s);
    values.emplace_back(t->task + "/" + t->tuning_loss(), l);
    info("finetune: step {} task {}: tuning {} {:.4f}, {} {:.4f}", lead.step, t->task, t->tuning_score(), s,
         t->tuning_loss(), l);
    score += s / double(tunable);
    loss += l / double(tunable);
  }
  values.emplace_back("score", score);
  values.emplace_back("loss", loss);
  write_finetune_metrics(lead, "tuning", values);
  const bool stop = track_best(lead, score, loss, "mean score", tokens_seen(mt));
  if (lead.best_step == lead.step) {  // this evaluation is the best so far
    size_t k = 0;
    for (size_t i = 0; i < mt.tasks.size(); ++i)
      if (mt.tasks[i]->can_tune) mt.best[i] = scores[k++];
    info("finetune: step {} mean tuning score {:.4f} (best)", lead.step, score);
  }
  return stop;
}

std::string multitask_summary_yaml(MultitaskRun& mt) {
  FinetuneRun& lead = mt.lead();
  Json tasks = Json::array();
  for (size_t i = 0; i < mt.tasks.size(); ++i) {
    const FinetuneRun& t = *mt.tasks[i];
    Json j = task_summary(t);
    j["best_step"] = lead.best_step, j["steps_run"] = lead.step;
    j["offset"] = t.head.offset, j["outputs"] = t.head.width;
    j[std::string("tuning_") + t.tuning_score()] = mt.best[i].first;  // NaN (not tuned) is written as null
    j[std::string("tuning_") + t.tuning_loss()] = mt.best[i].second;
    tasks.push_back(std::move(j));
  }
  // JSON is YAML's flow style: task entries, class names and paths are quoted safely.
  return fmt::format("recipe: {}\nbest_step: {}\nsteps_run: {}\ntuning_mean_score: {}\ncontext: {}\n"
                     "pretrained_checkpoint: {}\ntasks: {}\n",
                     lead.cfg.finetune.recipe, lead.best_step, lead.step,
                     lead.can_tune ? fmt::format("{}", lead.best_auroc) : "null", lead.context,
                     Json(lead.pre.dir.string()).dump(), tasks.dump());
}

ModelCard multitask_card(MultitaskRun& mt) {
  FinetuneRun& lead = mt.lead();
  ModelCard card = finetune_card(lead, false);
  Json tasks = Json::array(), ev = Json::array();
  for (size_t i = 0; i < mt.tasks.size(); ++i) {
    const FinetuneRun& t = *mt.tasks[i];
    Json j = task_summary(t);
    j["best_step"] = lead.best_step, j["steps_run"] = lead.step;
    tasks.push_back(std::move(j));
    if (!t.can_tune || !lead.can_tune) continue;
    const auto [score, loss] = mt.best[i];
    card.set_metric(fmt::format("tuning_{}_{}", t.task, t.tuning_score()), score);
    ev.push_back({{"task", t.task}, {"split", "tuning"}, {"step", lead.best_step}, {t.tuning_score(), score},
                  {t.tuning_loss(), loss}, {"n", t.tuning_counts.n}});
  }
  card.set_section("task", Json{{"tasks", tasks}}.dump());
  if (lead.can_tune) {
    card.set_metric("tuning_mean_score", lead.best_auroc);
    card.set_section("evaluation", ev.dump());
  }
  return card;
}

}  // namespace

MultitaskRun open_multitask_run(const Config& cfg, const DeviceChoice& dev, Dist& dist) {
  if (!cfg.task.event_codes.empty())
    fail("task.multi with task.event_codes: time-to-event tasks are fine-tuned one per run (task.labels)");
  MultitaskRun mt{cfg, {}, {}};
  std::set<std::string> names;
  for (const auto& entry : cfg.task.multi) {
    const auto eq = entry.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == entry.size())
      throw Error(fmt::format("task.multi: '{}' is not NAME=LABELS", entry),
                  "e.g. --set 'task.multi=[mortality=labels/mortality,los=labels/long_stay]'");
    Config c = cfg;
    c.task.multi.clear();
    c.task.name = entry.substr(0, eq);
    c.task.labels = entry.substr(eq + 1);
    if (!names.insert(c.task.name).second) fail("task.multi: task {} is named twice", c.task.name);
    mt.tasks.push_back(open_finetune_run(c, dev, dist));
  }
  mt.best.assign(mt.tasks.size(), {NAN, NAN});
  if (mt.tasks.size() < 2)
    fail("task.multi names {} task(s): multi-task fine-tuning takes two or more (one task: task.labels)", mt.tasks.size());
  FinetuneRun& lead = mt.lead();
  Config saved = lead.cfg;  // the checkpoint's config.yaml: the model and data of the lead, the tasks as given
  saved.task = cfg.task;
  lead.config_yaml = config_to_yaml(saved);
  lead.can_tune = false;
  for (auto& t : mt.tasks) lead.can_tune |= t->can_tune;
  return mt;
}

int multitask_loop(MultitaskRun mt) {
  FinetuneRun& lead = mt.lead();
  build_heads(mt);
  make_finetune_optimizer(lead);
  for (auto& t : mt.tasks) compute_probe_features(*t);
  std::vector<std::string> names;
  for (auto& t : mt.tasks) names.push_back(fmt::format("{} ({} outputs at {})", t->task, t->head.width, t->head.offset));
  info("finetune: {} tasks on one backbone: {}; each step a batch of {} per task", mt.tasks.size(), fmt::join(names, ", "),
       lead.cfg.train.batch_size);
  start_outputs(lead);
  lead.model->train();
  const double share = 1.0 / double(mt.tasks.size());
  while (lead.step < lead.cfg.train.steps) {
    lead.dist->set_step(lead.step);
    const double lr = learning_rate(lead.cfg.train, lead.step);
    set_finetune_learning_rate(*lead.optimizer, lr, lead.cfg.finetune.head_lr_scale);
    lead.optimizer->zero_grad();
    double weighted = 0, plain = 0;
    for (auto& t : mt.tasks) {
      const auto [w, p] = task_backward(*t, next_batch(*t), share);
      weighted += w, plain += p;
    }
    apply_step(lead, weighted, plain);
    for (auto& t : mt.tasks) t->step = lead.step;
    log_finetune_if_due(lead, lr);
    if (tune_tasks(mt)) break;
  }
  if (lead.progress) lead.progress->finish(fmt::format("{} steps", lead.step));
  if (!lead.main()) return 0;
  if (!lead.can_tune) lead.best_tokens = tokens_seen(mt);
  finalize_weights(lead);
  const auto saved = save_weights(lead, multitask_summary_yaml(mt), multitask_card(mt));
  info("finetune: saved {} (step {}{})", saved.string(), lead.best_step,
       lead.can_tune ? fmt::format(", mean tuning score {:.4f}", lead.best_auroc) : "");
  return 0;
}

}  // namespace chart
