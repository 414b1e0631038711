// One pretraining run as the loop sees it: everything the steps share (TrainRun), the setup that
// builds it (train_setup.cpp) and the steps of one optimizer step (train_steps.cpp). The loop
// itself, a page of these calls, is train_loop() in trainer.cpp.
#pragma once
#include <torch/torch.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/log.h"
#include "data/loader.h"
#include "data/token_dataset.h"
#include "model/device.h"
#include "model/transformer.h"
#include "train/checkpoint/checkpoint.h"
#include "train/checkpoint/model_card.h"
#include "train/checkpoint/run_lock.h"
#include "train/distributed/dist.h"
#include "train/distributed/grad_sync.h"
#include "train/distributed/zero.h"
#include "train/report/metrics_log.h"

namespace chart {

// Throughput and communication counters since the last logged step.
struct LogInterval {
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  int64_t positions = 0;     // window positions processed (batch x context), as throughput is counted
  int64_t steps = 0;
  double sync_wait_s = 0;    // from the end of backward until the gradients are summed
};

struct TrainRun {
  const Config& cfg;
  const DeviceChoice& dev;
  Dist& dist;
  std::filesystem::path run_dir;
  std::string config_yaml;  // the resolved config, as config.yaml and every checkpoint hold it
  data::TokenDataset ds;
  ClinicalTransformer model{nullptr};
  std::vector<torch::Tensor> params;
  std::unique_ptr<Zero1> zero;  // ZeRO-1: this rank's shard of the flat parameter space; null without
  std::unique_ptr<torch::optim::AdamW> optimizer;
  std::optional<std::filesystem::path> resumed_from;
  TrainerState st;
  int64_t first_step = 0;   // st.step when this process started (0, or the resumed step)
  int64_t last_saved = -1;  // the step of the newest checkpoint on disk
  ModelCard card;
  std::unique_ptr<data::Loader> loader;
  std::unique_ptr<data::Loader> eval_loader;  // the tuning windows, built once, sought back to the start
  bool can_eval = false;
  std::unique_ptr<GradSync> grad_sync;
  std::unique_ptr<RunLock> lock;        // rank 0 only: one writer per run.dir
  std::unique_ptr<MetricsLog> metrics;  // rank 0 only
  std::optional<Progress> progress;     // rank 0 only
  LogInterval interval;
  double flops_per_token = 0, peak_flops = 0;
  int64_t skipped_in_a_row = 0;  // steps skipped for a non-finite loss or gradient norm, consecutively
  std::set<int64_t> fault_steps;  // tests only: steps whose loss is made NaN (CHART_FAULT_NONFINITE_STEPS)

  TrainRun(const Config& c, const DeviceChoice& d, Dist& di, data::TokenDataset dataset)
      : cfg(c), dev(d), dist(di), run_dir(c.run.dir), config_yaml(config_to_yaml(c)), ds(std::move(dataset)) {}
  bool main() const { return dist.is_main(); }  // rank 0 alone writes the run directory's shared files
};

// ---- setup (train_setup.cpp), in the order open_train_run() calls them -------------------------
// Rank 0 takes run.dir's lock (a second trainer fails naming the holder) and removes what killed
// writers left behind; the other ranks stop with rank 0's error if it cannot.
void lock_run_dir(TrainRun& r);
// The checkpoint to resume from: rank 0 chooses and verifies it, the others take its step.
std::optional<std::filesystem::path> choose_resume_checkpoint(TrainRun& r, const std::string& resume);
void build_model_and_optimizer(TrainRun& r);
// Restores a checkpoint, or initialises (init.checkpoint, the time head's bias); every rank then
// holds rank 0's weights.
void restore_or_initialise(TrainRun& r);
void open_loaders(TrainRun& r);
void open_outputs(TrainRun& r);  // config.yaml, metrics, progress, signal handlers, gradient sync
// Logs the attention path (and records it in the model card); on a GPU with model.attention_check
// arms the kernels' self-check for the first forward.
void choose_attention(TrainRun& r);
std::unique_ptr<TrainRun> open_train_run(const Config& cfg, const std::string& resume, const DeviceChoice& dev,
                                         Dist& dist);

// ---- one optimizer step (train_steps.cpp) --------------------------------------------------------
// The step's one small all-reduce, started before the forward and finished when the loss first
// needs it: [target positions of the step over every micro-batch and rank (every target weighs
// the same), ranks asked to stop (SIGTERM/SIGUSR1), ranks whose metrics failed].
Dist::PendingSum start_agreement(TrainRun& r, const std::vector<data::Batch>& micro);
struct StepLoss {
  torch::Tensor next_token, time;  // on the device, this rank's share: its targets' sum over the global count
};
// The step's single host read, after the gradients are summed: the global gradient norm (the
// gradients are clipped on the device first), this rank's losses and the agreement.
struct StepNumbers {
  double grad_norm = 0, next_token = 0, time = 0;
  double targets = 0;           // the step's target positions, all ranks
  bool stop = false;            // some rank received SIGTERM/SIGUSR1: all stop after this step
  bool metrics_failed = false;  // rank 0 could not write metrics.jsonl or TensorBoard
};

std::vector<data::Batch> next_micro_batches(TrainRun& r);
double start_step(TrainRun& r);  // sets and returns the learning rate; clears gradients
StepLoss forward_backward(TrainRun& r, std::vector<data::Batch>& micro, Dist::PendingSum& agreement);
void sync_gradients(TrainRun& r);
StepNumbers clip_and_read(TrainRun& r, const StepLoss& loss, Dist::PendingSum& agreement);
// Whether the step may be applied: its gradient norm (the same on every rank: it is the summed
// gradients') and this rank's loss are finite. A rank whose loss alone is not finite stops the run.
bool step_is_finite(const TrainRun& r, const StepNumbers& n);
void optimizer_step(TrainRun& r, const StepNumbers& n);
// The step goes by without touching weights or moments; train.max_skipped_steps in a row throw
// chart::Error saying what to change (the last checkpoint is left as it is).
void skip_step(TrainRun& r, const StepNumbers& n);
bool should_log(const TrainRun& r);
void log_step(TrainRun& r, const StepNumbers& n, double lr);
double evaluate(TrainRun& r);  // mean next-token loss on train.eval_batches tuning batches
void evaluate_if_due(TrainRun& r);
void checkpoint(TrainRun& r);  // saves st.step unless it is on disk already
void checkpoint_if_due(TrainRun& r);
// SIGTERM/SIGUSR1 (cluster preemption): save and say how to resume.
void save_for_preemption(TrainRun& r);
// Metrics could not be written: a last checkpoint is attempted, then chart::Error.
[[noreturn]] void stop_for_lost_metrics(TrainRun& r);
void finish_run(TrainRun& r);

// train.save_batches (batch_record.cpp): while st.step < N, the weights before the first recorded
// step (rank 0) and each step's batches, every rank its own, under run.dir/batches/.
bool recording_batches(const TrainRun& r);
void record_start_weights(TrainRun& r);
void record_step_batches(TrainRun& r, const std::vector<data::Batch>& micro);

// The signal the stop handler received (0: none).
int stop_signal();
void install_stop_handlers();

}  // namespace chart
