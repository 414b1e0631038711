#include "train/recipes/finetune.h"

#include "core/files.h"
#include "train/pretrain/optimizer.h"
#include "train/recipes/finetune_run.h"

namespace chart {

int run_finetune(const Config& cfg) {
  auto run = open_finetune_run(cfg);
  FinetuneRun& r = *run;
  build_classifier(r);
  make_finetune_optimizer(r);
  compute_probe_features(r);
  std::filesystem::create_directories(r.cfg.run.dir);
  write_file_atomic(std::filesystem::path(r.cfg.run.dir) / "config.yaml", r.config_yaml);
  r.metrics = std::make_unique<MetricsLog>(r.cfg.run.dir, -1);
  r.model->train();
  r.progress.emplace("finetune: step", r.cfg.train.steps);
  while (r.step < r.cfg.train.steps) {
    const double lr = learning_rate(r.cfg.train, r.step);
    set_finetune_learning_rate(*r.optimizer, lr, r.cfg.finetune.head_lr_scale);
    finetune_step(r, next_batch(r));
    log_finetune_if_due(r, lr);
    if (tune_and_check_patience(r)) break;
  }
  r.progress->finish(fmt::format("{} steps", r.step));
  save_finetuned(r);
  return 0;
}

}  // namespace chart
