#include "train/pretrain/trainer.h"

#ifdef CHART_HAVE_CUDA
#include <c10/cuda/CUDAFunctions.h>
#endif

#include "core/error.h"
#include "train/pretrain/train_run.h"

namespace chart {
namespace {

// One optimizer step after another until train.steps, a checkpoint when due, or a stop signal
// (which ends the run after the step it arrived in, on every rank).
int train_loop(TrainRun& r) {
  record_start_weights(r);
  while (r.st.step < r.cfg.train.steps) {
    r.dist.set_step(r.st.step);
    std::vector<data::Batch> micro = next_micro_batches(r);
    record_step_batches(r, micro);
    Dist::PendingSum agreement = start_agreement(r, micro);
    const double lr = start_step(r);
    const StepLoss loss = forward_backward(r, micro, agreement);
    sync_gradients(r);
    const StepNumbers n = clip_and_read(r, loss, agreement);
    if (step_is_finite(r, n))
      optimizer_step(r, n);
    else
      skip_step(r, n);
    log_step(r, n, lr);
    evaluate_if_due(r);
    checkpoint_if_due(r);
    if (n.metrics_failed) stop_for_lost_metrics(r);
    if (n.stop) {
      save_for_preemption(r);
      return 0;
    }
  }
  finish_run(r);
  return 0;
}

}  // namespace

int run_training(const Config& cfg, const std::string& resume) {
  if (cfg.run.dir.empty()) throw Error("run.dir is not set", "pass --set run.dir=DIR");
  set_cpu_threads(cfg.train.threads);
  const LaunchEnv env = launch_env();
  DeviceChoice dev = choose_device(cfg.train.device, cfg.train.precision, env.local_rank);
#ifdef CHART_HAVE_CUDA
  if (dev.device.is_cuda()) c10::cuda::set_device(dev.device.index());  // kernels use the current device's stream
#endif
  Dist dist(env, cfg.dist, dev.device);
  int rc = 0;
  try {
    rc = train_loop(*open_train_run(cfg, resume, dev, dist));
  } catch (const Error& e) {
    dist.report_failure(e.what());
    throw;
  } catch (const std::exception& e) {
    if (!dist.active()) throw;
    if (!Dist::is_communication_error(e)) {  // e.g. out of memory: this rank is at fault
      dist.report_failure(e.what());
      throw;
    }
    dist.collective_failed(e);
  }
  dist.finish();
  return rc;
}

}  // namespace chart
