// Multi-task fine-tuning (task.multi: "NAME=LABELS" per task): one backbone and one head per task,
// the heads side by side in the model's head (each task its slice: one output for a boolean or
// regression task, one per class for a multi-class one). Each step runs a batch of every task (its
// own epoch order over its own train rows), each task's loss weighted 1/T, and one optimizer step
// on the summed gradients (on every rank under data parallelism). Every train.eval_every steps each
// task's tuning score is logged ("<task>/<score>" in metrics.jsonl's tuning lines, beside "score",
// their mean, and "loss"); early stopping follows the mean. finetune.yaml lists the tasks with
// their slices (offset, outputs); chart eval and chart predict take one of them with task.name.
#pragma once
#include <memory>
#include <vector>

#include "core/config.h"
#include "model/device.h"
#include "train/distributed/dist.h"
#include "train/recipes/finetune_run.h"

namespace chart {

struct MultitaskRun {
  Config cfg;  // as given, with task.multi
  std::vector<std::unique_ptr<FinetuneRun>> tasks;
  std::vector<std::pair<double, double>> best;  // each task's tuning score and loss at the best step (NaN: not tuned)
  FinetuneRun& lead() { return *tasks.front(); }  // owns the optimizer, the log and the best weights
};

// Each task opened as a single-task run (open_finetune_run) on the same checkpoint and dataset.
// chart::Error for an entry that is not NAME=LABELS, a name given twice, fewer than two tasks, or
// task.event_codes (time-to-event tasks are fine-tuned one per run).
MultitaskRun open_multitask_run(const Config& cfg, const DeviceChoice& dev, Dist& dist);
int multitask_loop(MultitaskRun mt);

}  // namespace chart
