// What a fine-tuning run writes: config.yaml and metrics.jsonl as it starts; the best weights,
// finetune.yaml and the model card at the end.
#include "core/error.h"
#include "core/files.h"
#include "core/json.h"
#include "data/coverage.h"
#include "train/checkpoint/checkpoint.h"
#include "train/checkpoint/governance.h"
#include "train/checkpoint/model_card.h"
#include "train/recipes/finetune_run.h"

namespace chart {
namespace fs = std::filesystem;
namespace {

void restore(const std::vector<torch::Tensor>& params, const std::vector<torch::Tensor>& s) {
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < params.size(); ++i) params[i].copy_(s[i]);
}

std::string finetune_summary_yaml(const FinetuneRun& r) {
  return fmt::format(
      "task: {}\nlabels: {}\nrecipe: {}\nbest_step: {}\nsteps_run: {}\ntuning_{}: {}\ntuning_{}: {}\n"
      "train_rows: {}\ntrain_positive: {}\ntuning_rows: {}\ntuning_positive: {}\ncontext: {}\n"
      "pretrained_checkpoint: {}\n",
      r.task, r.cfg.task.labels, r.cfg.finetune.recipe, r.best_step, r.step, r.tuning_score(),
      r.can_tune ? fmt::format("{}", r.best_auroc) : "null", r.tuning_loss(),
      r.can_tune ? fmt::format("{}", r.best_loss) : "null",
      r.train_counts.n, r.train_counts.positives, r.tuning_counts.n, r.tuning_counts.positives, r.context,
      r.pre.dir.string()) +
         // JSON strings and arrays are YAML flow scalars and sequences: class names are quoted safely.
         fmt::format("label_column: {}\n", r.label_column) +
         (r.multiclass() ? fmt::format("classes: {}\ntrain_per_class: {}\ntuning_per_class: {}\n", Json(r.classes).dump(),
                                       Json(r.train_counts.per_class).dump(), Json(r.tuning_counts.per_class).dump())
                         : "") +
         (r.regression() ? fmt::format("target_mean: {}\ntarget_std: {}\n", r.target_mean, r.target_std) : "") +
         (r.time_to_event() ? fmt::format("event_codes: {}\ntime_pieces: {}\n", Json(r.cfg.task.event_codes).dump(),
                                          Json(r.cfg.task.time_pieces).dump())
                            : "");
}

}  // namespace

// The fine-tuning data and task, the tuning result, and the pretrained model's own card as its base.
ModelCard finetune_card(const FinetuneRun& r, bool with_tuning) {
  ModelCard card;
  card.kind = "finetuned";
  card.data = data_lineage(r.cfg.data.dir, "train");
  const Json task = task_summary(r);
  card.set_section("task", task.dump());
  card.set_section("governance", governance_section(r.cfg.card.governance));
  if (r.can_tune && with_tuning) {
    // What early stopping followed: AUROC and log loss, R² and RMSE, or C_td and the NLL.
    const char* score = r.tuning_score();
    const char* loss = r.tuning_loss();
    card.set_metric(std::string("tuning_") + score, r.best_auroc);
    card.set_metric(std::string("tuning_") + loss, r.best_loss);
    Json ev;
    ev["split"] = "tuning";
    ev["step"] = r.best_step;
    ev[score] = r.best_auroc;
    ev[loss] = r.best_loss;
    ev["n"] = r.tuning_counts.n;
    card.set_section("evaluation", ev.dump());
  }
  try {
    card.set_section("base_model", read_model_card_json(r.pre.dir));
  } catch (const Error&) {  // a checkpoint from before model cards
  }
  fill_model_card(card, *r.model, r.config_yaml, r.best_step, r.best_tokens, r.ds.vocab_hash());
  card.set_section("data_coverage", dump_json(data::coverage_summary(r.cfg.data.dir, "train", 10)));
  return card;
}

Json task_summary(const FinetuneRun& r) {
  Json task;
  task["name"] = r.task;
  task["labels"] = r.cfg.task.labels;
  task["recipe"] = r.cfg.finetune.recipe;
  task["context"] = r.context;
  task["train_rows"] = r.train_counts.n;
  task["train_positive"] = r.train_counts.positives;
  task["tuning_rows"] = r.tuning_counts.n;
  task["tuning_positive"] = r.tuning_counts.positives;
  task["label_column"] = r.label_column;
  if (r.regression()) task["target_mean"] = r.target_mean, task["target_std"] = r.target_std;
  if (r.time_to_event()) task["event_codes"] = r.cfg.task.event_codes, task["time_pieces"] = r.cfg.task.time_pieces;
  if (r.multiclass()) {
    task["classes"] = r.classes;
    task["train_per_class"] = r.train_counts.per_class;
    task["tuning_per_class"] = r.tuning_counts.per_class;
  }
  task["best_step"] = r.best_step;
  task["steps_run"] = r.step;
  task["pretrained_checkpoint"] = r.pre.dir.string();
  return task;
}

void start_outputs(FinetuneRun& r) {
  if (!r.main()) return;
  fs::create_directories(r.cfg.run.dir);
  write_file_atomic(fs::path(r.cfg.run.dir) / "config.yaml", r.config_yaml);
  r.metrics = std::make_unique<MetricsLog>(r.cfg.run.dir, -1);
  r.progress.emplace("finetune: step", r.cfg.train.steps);
}

void save_finetuned(FinetuneRun& r) {
  if (!r.main()) return;  // the ranks hold the same weights; rank 0 writes them
  finalize_weights(r);
  const auto saved = save_weights(r, finetune_summary_yaml(r), finetune_card(r));
  info("finetune: saved {} (step {}{})", saved.string(), r.best_step,
       r.can_tune ? fmt::format(", tuning {} {:.4f}", r.tuning_score(), r.best_auroc) : "");
}

void finalize_weights(FinetuneRun& r) {
  if (r.can_tune) restore(r.trainable, r.best_weights);
  if (!r.can_tune) r.best_step = r.step, r.best_tokens = r.tokens_seen;
  if (r.cfg.finetune.recipe == "lora") r.model->merge_lora();
  r.model->to(torch::kCPU);
}

fs::path save_weights(FinetuneRun& r, const std::string& summary_yaml, const ModelCard& card) {
  TrainerState st;
  st.step = r.best_step;
  st.vocab_hash = r.ds.vocab_hash();
  const std::string card_json = model_card_json(card);
  auto saved = save_model_checkpoint(r.cfg.run.dir, r.config_yaml, *r.model, st,
                                     {{"finetune.yaml", summary_yaml}, {"model_card.json", card_json},
                                      {"MODEL_CARD.md", model_card_markdown(card_json)}});
  return saved;
}

}  // namespace chart
