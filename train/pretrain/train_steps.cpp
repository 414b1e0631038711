// The steps of one optimizer step, in the order train_loop() calls them.
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <limits>

#include "core/error.h"
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

// "NaN" whatever its sign bit, "inf", "-inf", or the number: what a user reads in a warning.
std::string number(double x) { return std::isnan(x) ? "NaN" : fmt::format("{:.6g}", x); }

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

Dist::PendingSum start_agreement(TrainRun& r, const std::vector<data::Batch>& micro) {
  double n_local = 0;
  for (const auto& b : micro) n_local += static_cast<double>(b.n_targets);
  const bool metrics_failed = r.metrics && !r.metrics->failure().empty();
  return r.dist.start_sum({n_local, stop_signal() != 0 ? 1.0 : 0.0, metrics_failed ? 1.0 : 0.0});
}

double start_step(TrainRun& r) {
  const double lr = learning_rate(r.cfg.train, r.st.step);
  set_learning_rate(*r.optimizer, lr);
  r.optimizer->zero_grad();
  for (auto& p : r.params) p.mutable_grad() = torch::Tensor();  // ZeRO-1: the optimizer holds only some
  return lr;
}

StepLoss forward_backward(TrainRun& r, std::vector<data::Batch>& micro, Dist::PendingSum& agreement) {
  StepLoss loss;
  torch::Tensor n;  // the step's target count over every micro-batch and rank, on the device
  const bool inject_fault = r.fault_steps.count(r.st.step + 1) > 0;  // tests: this step's loss is NaN
  for (size_t i = 0; i < micro.size(); ++i) {
    data::Batch b = to_device(std::move(micro[i]), r.dev.device);
    LossParts l;
    {
      AutocastGuard autocast(r.dev);
      const ModelOutput out = r.model->forward(b.tokens, b.ages, b.segments);
      // The agreement's all-reduce ran behind the first forward; the loss needs its count now.
      if (!n.defined()) n = agreement.wait()[0].to(out.logits.device(), torch::kFloat32).clamp_min(1.0);
      l = pretraining_loss(out, b, n);
    }
    if (inject_fault) {
      l.total = l.total * std::numeric_limits<double>::quiet_NaN();
      l.next_token = l.next_token * std::numeric_limits<double>::quiet_NaN();
    }
    if (r.grad_sync) r.grad_sync->prepare(/*sync=*/i + 1 == micro.size());
    l.total.backward();
    // Summed on the device; read once per step, in clip_and_read().
    loss.next_token = loss.next_token.defined() ? loss.next_token + l.next_token.detach() : l.next_token.detach();
    if (l.time.defined()) loss.time = loss.time.defined() ? loss.time + l.time.detach() : l.time.detach();
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

StepNumbers clip_and_read(TrainRun& r, const StepLoss& loss, Dist::PendingSum& agreement) {
  const double clip = r.cfg.train.grad_clip > 0 ? r.cfg.train.grad_clip : std::numeric_limits<double>::infinity();
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64).device(r.dev.device);
  torch::Tensor total;
  if (r.zero) {
    // The summed gradient lives only in the shards: one all-reduce of their sums of squares.
    total = torch::tensor(r.zero->clip_gradients(clip), f64);
  } else {
    // torch::nn::utils::clip_grad_norm_'s arithmetic, without its read of the norm to the host.
    std::vector<torch::Tensor> norms;
    for (const auto& p : r.params)
      if (p.grad().defined()) norms.push_back(p.grad().norm(2));
    total = norms.empty() ? torch::zeros({}, f64) : norms.size() == 1 ? norms[0] : torch::stack(norms).norm(2);
    if (!norms.empty()) {
      auto coef = torch::clamp(clip / (total + 1e-6), std::nullopt, 1.0);
      for (auto& p : r.params)
        if (p.grad().defined()) p.grad().mul_(coef);
    }
  }
  auto as_f64 = [&](const torch::Tensor& t) { return t.defined() ? t.reshape({1}).to(f64) : torch::zeros({1}, f64); };
  const torch::Tensor agreed = agreement.wait().to(f64);
  const torch::Tensor all = torch::cat({as_f64(total), as_f64(loss.next_token), as_f64(loss.time), agreed}).cpu();
  const auto v = all.accessor<double, 1>();
  StepNumbers n;
  n.grad_norm = v[0], n.next_token = v[1], n.time = v[2], n.targets = v[3];
  n.stop = v[4] > 0, n.metrics_failed = v[5] > 0;
  return n;
}

bool step_is_finite(const TrainRun& r, const StepNumbers& n) {
  if (!std::isfinite(n.grad_norm)) return false;
  // The summed gradients are finite while this rank's loss is not: ranks would disagree on
  // skipping, so the run stops instead of letting their weights drift apart.
  if (!std::isfinite(n.next_token) || !std::isfinite(n.time))
    fail("train: step {}: rank {}'s loss is {} while the summed gradients are finite", r.st.step + 1, r.dist.rank(),
         number(n.next_token));
  return true;
}

void skip_step(TrainRun& r, const StepNumbers& n) {
  ++r.st.step;
  ++r.interval.steps;
  ++r.st.skipped_steps;
  ++r.skipped_in_a_row;
  r.st.loader = r.loader->state();  // the batch is consumed: a resumed run does not meet it again
  const int64_t limit = r.cfg.train.max_skipped_steps;
  if (r.main())
    warn("train: step {}: loss {} and gradient norm {}: not finite; step skipped, weights and moments untouched "
         "({} in a row; the run stops at {})",
         r.st.step, number(n.next_token), number(n.grad_norm), r.skipped_in_a_row, limit);
  if (r.skipped_in_a_row < limit) return;
  const auto& t = r.cfg.train;
  throw Error(fmt::format("train: {} steps in a row, up to step {}, had a non-finite loss or gradient norm: stopped; "
                          "{}",
                          r.skipped_in_a_row, r.st.step,
                          r.last_saved >= 0 ? fmt::format("the last checkpoint, step_{}, is as it was", r.last_saved)
                                            : std::string("no checkpoint was written")),
              fmt::format("the run diverged: lower train.lr (now {}) or train.weight_decay (now {}), lengthen "
                          "train.warmup_steps (now {}), or clip with train.grad_clip (now {}); then --resume auto",
                          t.lr, t.weight_decay, t.warmup_steps, t.grad_clip));
}

void optimizer_step(TrainRun& r, const StepNumbers& n) {
  r.skipped_in_a_row = 0;
  r.optimizer->step();
  if (r.zero) r.zero->gather_parameters();
  ++r.st.step;
  ++r.interval.steps;
  r.st.tokens_seen += static_cast<int64_t>(n.targets);  // tokens actually learned from, all ranks
  r.st.loader = r.loader->state();
}

bool should_log(const TrainRun& r) {
  return every(r.st.step, r.cfg.train.log_every) || r.st.step == r.cfg.train.steps;
}

void log_step(TrainRun& r, const StepNumbers& n, double lr) {
  r.card.set_metric("train_loss", n.next_token);  // on every rank: the card's final metric is the last step's
  if (!should_log(r)) return;
  const double secs = seconds_since(r.interval.start);
  // This rank's part of the loss is its targets' sum over the global count: the sum is the mean.
  const auto totals = r.dist.sum({n.next_token, n.time, static_cast<double>(r.interval.positions)});
  auto peaks = torch::tensor({peak_rss_gib(), peak_gpu_gib(r.dev)}, torch::kFloat64).to(r.dev.device);
  r.dist.all_reduce_max(peaks);
  peaks = peaks.cpu();
  const double tps = totals[2] / std::max(1e-9, secs);
  const int ranks = r.dist.world_size();
  if (r.main()) {
    std::vector<std::pair<std::string, double>> m = {
        {"loss", totals[0]},         {"ppl", std::exp(totals[0])},  {"lr", lr},
        {"grad_norm", n.grad_norm},    {"tokens_per_s", tps},         {"tokens_seen", double(r.st.tokens_seen)},
        {"peak_rss_gib", peaks[0].item<double>()}, {"skipped_steps", double(r.st.skipped_steps)}};
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
  r.eval_loader->seek({});  // the same windows every time
  double sum = 0, n = 0;
  for (int64_t i = 0; i < r.cfg.train.eval_batches; ++i) {
    data::Batch b = to_device(r.eval_loader->next(), r.dev.device);
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
  if (r.lock && !r.lock->held())
    fail("train: {} is no longer this run's (another process took it over while this one was stalled "
         "past {} s): not writing step_{}",
         r.lock->path().string(), RunLock::kStaleAfter.count(), r.st.step);
  const int64_t split = r.cfg.train.split_weights_mib;
  save_checkpoint(r.run_dir, r.config_yaml, r.model, *r.optimizer, r.st, r.cfg.train.keep_last, &r.dist, r.card,
                  r.zero.get(), split < 0 ? -1 : split << 20);
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

void stop_for_lost_metrics(TrainRun& r) {
  std::string saved = "no checkpoint could be written either";
  try {
    checkpoint(r);
    saved = fmt::format("a checkpoint of step {} was written", r.st.step);
  } catch (const Error& e) {
    if (r.main()) warn("train: the last checkpoint failed too: {}", e.what());
  }
  const std::string why = r.metrics ? r.metrics->failure() : "rank 0 could not write them";
  throw Error(fmt::format("train: the run's metrics could not be written ({}); stopped at step {}: {}", why, r.st.step,
                          saved),
              "free space on run.dir's storage (or fix its permissions), then --resume auto");
}

void finish_run(TrainRun& r) {
  if (r.zero)  // every rank: each holds its own share (docs/scaling.md measures it)
    info("dist: rank {} holds {} bytes of optimizer state ({} of the {} parameters' elements)", r.dist.rank(),
         optimizer_state_bytes(*r.optimizer), r.zero->layout().shard_numel, r.model->parameter_count());
  if (!r.main()) return;
  if (r.grad_sync)
    info("dist: in the last step, {} of {} gradient bucket(s) started their all-reduce during backward; "
         "{} bucket {} in {} steps of {} micro-batches",
         r.grad_sync->started_in_backward(), r.grad_sync->bucket_count(), r.grad_sync->all_reduces(),
         r.zero ? "reduce-scatters" : "all-reduces",
         r.st.step - r.first_step, r.cfg.train.grad_accum);
  r.progress->finish(fmt::format("{} tokens", r.st.tokens_seen));
  info("train: done; checkpoint {}", (r.run_dir / "checkpoints" / ("step_" + std::to_string(r.st.step))).string());
}

}  // namespace chart
