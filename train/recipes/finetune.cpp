#include "train/recipes/finetune.h"

#ifdef CHART_HAVE_CUDA
#include <c10/cuda/CUDAFunctions.h>
#endif

#include "core/error.h"
#include "core/files.h"
#include "train/distributed/launch_env.h"
#include "train/pretrain/optimizer.h"
#include "train/checkpoint/run_lock.h"
#include "train/recipes/finetune_multitask.h"
#include "train/recipes/finetune_run.h"

namespace chart {

namespace {

int finetune_loop(FinetuneRun& r) {
  build_classifier(r);
  make_finetune_optimizer(r);
  compute_probe_features(r);
  if (r.dist->active())
    info("finetune: {} ranks ({}), {} process group: each step's batch of {} is split {} per rank",
         r.dist->world_size(), r.dist->env().launcher, r.dist->backend_name(), r.cfg.train.batch_size,
         r.cfg.train.batch_size / r.dist->world_size());
  start_outputs(r);
  r.model->train();
  while (r.step < r.cfg.train.steps) {
    r.dist->set_step(r.step);
    const double lr = learning_rate(r.cfg.train, r.step);
    set_finetune_learning_rate(*r.optimizer, lr, r.cfg.finetune.head_lr_scale);
    finetune_step(r, next_batch(r));
    log_finetune_if_due(r, lr);
    // Every rank scores the whole tuning split on the same weights, so all stop at the same step.
    if (tune_and_check_patience(r)) break;
  }
  if (r.progress) r.progress->finish(fmt::format("{} steps", r.step));
  save_finetuned(r);
  return 0;
}

}  // namespace

// As run_training: a rank's own failure is told to the others, which then exit naming it.
int run_finetune(const Config& cfg) {
  set_cpu_threads(cfg.train.threads);
  const LaunchEnv env = launch_env();
  const DeviceChoice dev = choose_device(cfg.train.device, cfg.train.precision, env.local_rank);
#ifdef CHART_HAVE_CUDA
  if (dev.device.is_cuda()) c10::cuda::set_device(dev.device.index());
#endif
  Dist dist(env, cfg.dist, dev.device);
  int rc = 0;
  try {
    if (cfg.run.dir.empty()) throw Error("run.dir is not set", "pass --set run.dir=DIR");
    // One writer per run.dir: rank 0 holds the lock, the others write nothing.
    const auto lock = dist.is_main() ? std::make_unique<RunLock>(cfg.run.dir, "chart finetune") : nullptr;
    rc = cfg.task.multi.empty() ? finetune_loop(*open_finetune_run(cfg, dev, dist))
                                : multitask_loop(open_multitask_run(cfg, dev, dist));
  } catch (const Error& e) {
    dist.report_failure(e.what());
    throw;
  } catch (const std::exception& e) {
    if (!dist.active()) throw;
    if (!Dist::is_communication_error(e)) {
      dist.report_failure(e.what());
      throw;
    }
    dist.collective_failed(e);
  }
  dist.finish();
  return rc;
}

}  // namespace chart
