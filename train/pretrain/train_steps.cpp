// The steps of one optimizer step, in the order train_loop() calls them.
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <limits>

#include "model/autocast.h"
#include "train/distributed/zero.h"
#include "train/pretrain/loss.h"
#include "train/pretrain/optimizer.h"
#include "train/pretrain/throughput.h"
#include "train/pretrain/train_run.h"
#include "train/report/metrics_log.h"

namespace chart {
namespace fs = std::filesystem;
namespace {

std::atomic<int> g_stop_signal{0};
void on_stop_signal(int sig) { g_stop_signal = sig; }

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

data::Batch to_device(data::Batch b, torch::Device d) {
  if (d.is_cpu()) return b;
  b.tokens = b.tokens.to(d, true);
  b.targets = b.targets.to(d, true);
  b.ages = b.ages.to(d, true);
  b.target_dt = b.target_dt.to(d, true);
  b.segments = b.segments.to(d, true);
  b.cu_seqlens = b.cu_seqlens.to(d, true);
  return b;
}

bool every(int64_t step, int64_t n) { return n > 0 && step % n == 0; }

}  // namespace

int stop_signal() { return g_stop_signal; }
void install_stop_handlers() {
  std::signal(SIGTERM, on_stop_signal);
  std::signal(SIGUSR1, on_stop_signal);
}

std::vector<data::Batch> next_micro_batches(TrainRun& r) {
  std::vector<data::Batch> micro;
  for (int64_t i = 0; i < r.cfg.train.grad_accum; ++i) micro.push_back(r.loader->next());
  return micro;
}

StepTotals agree_on_step(TrainRun& r, const std::vector<data::Batch>& micro) {
  double n_local = 0;
  for (const auto& b : micro) n_local += static_cast<double>(b.n_targets);
  const auto totals = r.dist.sum({n_local, stop_signal() != 0 ? 1.0 : 0.0});
  return {totals[0], totals[1] > 0};
}

double start_step(TrainRun& r) {
  const double lr = learning_rate(r.cfg.train, r.st.step);
  set_learning_rate(*r.optimizer, lr);
  r.optimizer->zero_grad();
  for (auto& p : r.params) p.mutable_grad() = torch::Tensor();  // ZeRO-1: the optimizer holds only some
  return lr;
}

StepLoss forward_backward(TrainRun& r, std::vector<data::Batch>& micro, double global_targets) {
  StepLoss loss;
  const double n = std::max(1.0, global_targets);
  for (size_t i = 0; i < micro.size(); ++i) {
    data::Batch b = to_device(std::move(micro[i]), r.dev.device);
    LossParts l;
    {
      AutocastGuard autocast(r.dev);
      l = pretraining_loss(r.model->forward(b.tokens, b.ages, b.segments), b, n);
    }
    if (r.grad_sync) r.grad_sync->prepare(/*sync=*/i + 1 == micro.size());
    l.total.backward();
    loss.next_token += l.next_token.item<double>();
    if (l.time.defined()) loss.time += l.time.item<double>();
    r.interval.positions += b.tokens.numel();
  }
  return loss;
}

void sync_gradients(TrainRun& r) {
  if (!r.grad_sync) return;
  const auto t0 = std::chrono::steady_clock::now();
  r.grad_sync->finish();
  r.interval.sync_wait_s += seconds_since(t0);
}

double clip_gradients(TrainRun& r) {
  const double clip = r.cfg.train.grad_clip;
  return torch::nn::utils::clip_grad_norm_(r.params, clip > 0 ? clip : std::numeric_limits<double>::infinity());
}

void optimizer_step(TrainRun& r, const StepTotals& totals) {
  r.optimizer->step();
  if (r.dist.zero1()) gather_parameters(r.dist, r.params, r.owner);
  ++r.st.step;
  ++r.interval.steps;
  r.st.tokens_seen += static_cast<int64_t>(totals.targets);  // tokens actually learned from, all ranks
  r.st.loader = r.loader->state();
}

bool should_log(const TrainRun& r) {
  return every(r.st.step, r.cfg.train.log_every) || r.st.step == r.cfg.train.steps;
}

void log_step(TrainRun& r, StepLoss loss, double grad_norm, double lr) {
  r.card.set_metric("train_loss", loss.next_token);  // on every rank: the card's final metric is the last step's
  if (!should_log(r)) return;
  const double secs = seconds_since(r.interval.start);
  // This rank's part of the loss is its targets' sum over the global count: the sum is the mean.
  const auto totals = r.dist.sum({loss.next_token, loss.time, static_cast<double>(r.interval.positions)});
  auto peaks = torch::tensor({peak_rss_gib(), peak_gpu_gib(r.dev)}, torch::kFloat64).to(r.dev.device);
  r.dist.all_reduce_max(peaks);
  peaks = peaks.cpu();
  const double tps = totals[2] / std::max(1e-9, secs);
  const int ranks = r.dist.world_size();
  if (r.main()) {
    std::vector<std::pair<std::string, double>> m = {
        {"loss", totals[0]},         {"ppl", std::exp(totals[0])},  {"lr", lr},
        {"grad_norm", grad_norm},    {"tokens_per_s", tps},         {"tokens_seen", double(r.st.tokens_seen)},
        {"peak_rss_gib", peaks[0].item<double>()}};
    if (ranks > 1) m.emplace_back("tokens_per_s_per_rank", tps / ranks);
    // On the CPU the wait is the communication backward did not hide (on a GPU the wait only
    // queues the copy behind NCCL's stream, so it is not reported there).
    if (r.grad_sync && !r.dev.device.is_cuda())
      m.emplace_back("grad_sync_wait_ms", 1e3 * r.interval.sync_wait_s / std::max<int64_t>(1, r.interval.steps));
    if (r.cfg.model.time_head) m.emplace_back("time_loss", totals[1]);
    if (r.peak_flops > 0) m.emplace_back("mfu", r.flops_per_token * tps / ranks / r.peak_flops);
    if (r.dev.device.is_cuda()) m.emplace_back("peak_gpu_gib", peaks[1].item<double>());
    r.metrics->write(r.st.step, "train", m);
    r.progress->update(r.st.step, fmt::format("loss {:.4f} | {} tok/s | lr {:.2e}", totals[0], format_count(tps), lr));
  }
  r.interval = LogInterval{};
}

double evaluate(TrainRun& r) {
  torch::NoGradGuard no_grad;
  r.model->eval();
  data::Loader eval_loader(r.ds, "tuning", r.eval_options);
  double sum = 0, n = 0;
  for (int64_t i = 0; i < r.cfg.train.eval_batches; ++i) {
    data::Batch b = to_device(eval_loader.next(), r.dev.device);
    AutocastGuard autocast(r.dev);
    auto out = r.model->forward(b.tokens, b.ages, b.segments);
    auto l = pretraining_loss(out, b, static_cast<double>(std::max<int64_t>(1, b.n_targets)));
    sum += l.next_token.item<double>() * b.n_targets;
    n += b.n_targets;
  }
  r.model->train();
  const auto total = r.dist.sum({sum, n});
  return total[0] / std::max(1.0, total[1]);
}

void evaluate_if_due(TrainRun& r) {
  if (!r.can_eval || !(every(r.st.step, r.cfg.train.eval_every) || r.st.step == r.cfg.train.steps)) return;
  const double loss = evaluate(r);
  r.card.set_metric("tuning_loss", loss);
  if (!r.main()) return;
  r.metrics->write(r.st.step, "tuning", {{"loss", loss}, {"ppl", std::exp(loss)}});
  info("train: step {} tuning loss {:.4f}", r.st.step, loss);
}

void checkpoint(TrainRun& r) {
  if (r.st.step == r.last_saved) return;
  save_checkpoint(r.run_dir, r.config_yaml, r.model, *r.optimizer, r.st, r.cfg.train.keep_last, &r.dist, r.card);
  r.last_saved = r.st.step;
}

void checkpoint_if_due(TrainRun& r) {
  if (every(r.st.step, r.cfg.train.checkpoint_every) || r.st.step == r.cfg.train.steps) checkpoint(r);
}

void save_for_preemption(TrainRun& r) {
  checkpoint(r);
  if (!r.main()) return;
  const int sig = stop_signal();
  info("train: received {}; saved a checkpoint at step {}; resume with --resume auto",
       sig == SIGTERM ? "SIGTERM" : sig == SIGUSR1 ? "SIGUSR1" : "a stop signal on another rank", r.st.step);
}

void finish_run(TrainRun& r) {
  if (!r.main()) return;
  if (r.grad_sync)
    info("dist: in the last step, {} of {} gradient bucket(s) started their all-reduce during backward; "
         "{} bucket all-reduces in {} steps of {} micro-batches",
         r.grad_sync->started_in_backward(), r.grad_sync->bucket_count(), r.grad_sync->all_reduces(),
         r.st.step - r.first_step, r.cfg.train.grad_accum);
  r.progress->finish(fmt::format("{} tokens", r.st.tokens_seen));
  info("train: done; checkpoint {}", (r.run_dir / "checkpoints" / ("step_" + std::to_string(r.st.step))).string());
}

}  // namespace chart
