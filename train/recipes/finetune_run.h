// One fine-tuning run as its loop sees it (FinetuneRun), and the steps run_finetune() calls
// (finetune_steps.cpp).
#pragma once
#include <torch/torch.h>

#include <chrono>
#include <limits>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/log.h"
#include "data/examples.h"
#include "data/token_dataset.h"
#include "model/device.h"
#include "model/transformer.h"
#include "train/checkpoint/pretrained.h"
#include "core/json.h"
#include "train/checkpoint/model_card.h"
#include "train/distributed/dist.h"
#include "train/recipes/classify.h"
#include "train/report/metrics_log.h"

namespace chart {

struct ClassCounts {
  int64_t n = 0, positives = 0;
  std::vector<int64_t> per_class;  // multi-class tasks: rows of each class
  int64_t classes_present() const {
    int64_t k = 0;
    for (int64_t c : per_class) k += c > 0;
    return k;
  }
};

struct FinetuneRun {
  Config cfg;  // the recipe's, with model.* (and data.dir when unset) from the pretrained checkpoint
  Pretrained pre;
  data::TokenDataset ds;
  int64_t context = 0;  // tokens up to prediction_time that the classifier reads
  std::string task;
  std::string label_column = "boolean_value";  // or integer_value / categorical_value (multi-class)
  std::vector<std::string> classes;            // a multi-class task's, in head order; empty for boolean
  double target_mean = 0, target_std = 1;      // a regression task's train targets: the head predicts z-scores
  std::vector<double> edges;                   // a time-to-event task's piece edges in days (task.time_pieces)
  std::vector<double> horizons;                // and the horizons (eval.horizons) its tuning C_td is cut at
  std::string config_yaml;
  data::ExampleSplits examples;
  ClassCounts train_counts, tuning_counts;
  bool can_tune = false;  // early stopping on tuning AUROC is possible
  DeviceChoice dev;
  // Data parallelism (torchrun or srun ranks; inactive alone): every rank takes the same batch of
  // example indices and runs its share of them (every world_size-th); the gradients are summed.
  Dist* dist = nullptr;
  ClinicalTransformer model{nullptr};
  HeadSlice head;  // this task's outputs of the model's head (a multi-task run's heads sit side by side)
  std::vector<torch::Tensor> trainable;
  std::unique_ptr<torch::optim::AdamW> optimizer;  // groups: decay, no decay, head
  torch::Tensor pos_weight;      // boolean tasks
  torch::Tensor class_weights;   // multi-class tasks: [C]
  torch::Tensor probe_features, probe_labels, probe_events;  // probe: the frozen backbone's features, once
  std::unique_ptr<MetricsLog> metrics;  // rank 0 only
  std::optional<Progress> progress;
  // The loop's position and the best tuning result so far.
  int64_t step = 0, epoch = 0, cursor = 0;
  int64_t tokens_seen = 0;     // example tokens the backbone read (probe: once, for the features)
  int64_t best_tokens = 0;     // tokens_seen at best_step (the weights saved)
  std::vector<int64_t> order;  // this epoch's shuffled example order
  std::vector<torch::Tensor> best_weights;
  int64_t best_step = 0, since_best = 0;
  double best_auroc = -1, best_loss = std::numeric_limits<double>::infinity();
  // Since the last log line.
  double loss_sum = 0, plain_sum = 0;  // class-weighted (the objective) and unweighted
  int64_t loss_n = 0, seen = 0;
  int64_t skipped = 0, skipped_in_a_row = 0;  // steps with a non-finite loss or gradient norm
  std::set<int64_t> fault_steps;                // tests only (core/faults.h)
  std::chrono::steady_clock::time_point log_start = std::chrono::steady_clock::now();

  FinetuneRun(Config c, Pretrained p, data::TokenDataset d)
      : cfg(std::move(c)), pre(std::move(p)), ds(std::move(d)) {}
  bool main() const { return dist == nullptr || dist->is_main(); }
  const std::vector<data::Example>& train_examples() { return examples.by_split["train"]; }
  const std::vector<data::Example>& tuning_examples() { return examples.by_split["tuning"]; }
  bool multiclass() const { return !classes.empty(); }
  bool regression() const { return label_column == "float_value"; }
  bool time_to_event() const { return label_column == "time_to_event"; }
  int64_t outputs() const {  // of this task's head
    return multiclass() ? static_cast<int64_t>(classes.size()) : time_to_event() ? static_cast<int64_t>(edges.size()) : 1;
  }
  // The names of what early stopping follows and of the loss beside it, in logs, finetune.yaml and the card.
  const char* tuning_score() const { return regression() ? "r2" : time_to_event() ? "c_td" : "auroc"; }
  const char* tuning_loss() const { return regression() ? "rmse" : time_to_event() ? "nll" : "loss"; }
};

// The pretrained checkpoint, the dataset and the examples, checked against each other; dev is
// this rank's device, dist its process group (rank 0 alone writes; the caller holds the run lock).
std::unique_ptr<FinetuneRun> open_finetune_run(const Config& cfg, const DeviceChoice& dev, Dist& dist);
// The pretrained backbone with a head (one logit, one per class of a multi-class task, or one log
// hazard per time piece of a time-to-event task); what
// trains depends on finetune.recipe.
void build_classifier(FinetuneRun& r);
// Its two halves: the backbone with a head of `outputs` (trainable weights chosen by the recipe),
// then what this task's loss needs of its slice r.head (class weights, the starting hazards).
void build_backbone(FinetuneRun& r, int64_t outputs);
void add_task_head(FinetuneRun& r);
void make_finetune_optimizer(FinetuneRun& r);
void compute_probe_features(FinetuneRun& r);  // probe only
// Rank 0: run.dir with config.yaml, metrics.jsonl opened, the progress line.
void start_outputs(FinetuneRun& r);
std::vector<int64_t> next_batch(FinetuneRun& r);  // example indices, epoch-shuffled
// The schedule's rate for the backbone groups, head_lr_scale times it for the head.
void set_finetune_learning_rate(torch::optim::Optimizer& opt, double lr, double head_lr_scale);
// One step; one whose loss or gradient norm is not finite is skipped (skip_finetune_step).
void finetune_step(FinetuneRun& r, const std::vector<int64_t>& batch);
// Its halves. task_backward: this rank's share of the batch forward and backward, the loss
// scaled by `scale` (1 / the tasks of a multi-task step); returns the whole batch's weighted and
// plain loss (summed over ranks). apply_step: the gradients summed over ranks, clipped, and the
// optimizer's step (or the step skipped when the loss or norm is not finite).
std::pair<double, double> task_backward(FinetuneRun& r, const std::vector<int64_t>& batch, double scale);
void apply_step(FinetuneRun& r, double weighted, double plain);
// The tuning split's score (AUROC, macro AUROC, R² or C_td) and loss on the current weights.
std::pair<double, double> score_tuning(FinetuneRun& r);
// finetune.yaml's task fields and the model card's task section, of one task.
Json task_summary(const FinetuneRun& r);
// Counts and warns; train.max_skipped_steps in a row throw chart::Error (nothing is saved).
void skip_finetune_step(FinetuneRun& r, double loss, double grad_norm);
// A line of metrics, or chart::Error when it cannot be written.
void write_finetune_metrics(FinetuneRun& r, const std::string& split,
                            const std::vector<std::pair<std::string, double>>& values);
void log_finetune_if_due(FinetuneRun& r, double lr);
// Tuning AUROC (macro over classes for a multi-class task, R² for a regression task, C_td for a
// time-to-event task) every train.eval_every steps; keeps the
// best weights; true when patience ran out.
bool tune_and_check_patience(FinetuneRun& r);
// Keeps the weights when `score` (ties: a lower loss) is the best yet, with the step and `tokens`
// seen; true when finetune.patience evaluations passed without one. `what` names the score.
bool track_best(FinetuneRun& r, double score, double loss, const std::string& what, int64_t tokens);
// The best weights (LoRA merged), finetune.yaml and the model card, as a weights-only checkpoint.
void save_finetuned(FinetuneRun& r);
// Its steps: the best weights restored, LoRA merged, on the CPU; then written with a
// finetune.yaml and card (a multi-task run's own).
void finalize_weights(FinetuneRun& r);
std::filesystem::path save_weights(FinetuneRun& r, const std::string& summary_yaml, const ModelCard& card);
// with_tuning: the tuning result as the card's metrics and evaluation (a multi-task run sets its own).
ModelCard finetune_card(const FinetuneRun& r, bool with_tuning = true);

}  // namespace chart
