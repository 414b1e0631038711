#include "train/trainer.h"

#ifdef CHART_HAVE_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#endif
#include <yaml-cpp/yaml.h>

#include <atomic>
#include <cmath>
#include <chrono>
#include <csignal>
#include <optional>
#include <set>
#include <thread>

#include "core/error.h"
#include "core/files.h"
#include "core/json.h"
#include "core/log.h"
#include "data/loader.h"
#include "data/token_dataset.h"
#include "model/device.h"
#include "model/transformer.h"
#include "train/autocast.h"
#include "train/checkpoint.h"
#include "train/distributed.h"
#include "train/grad_sync.h"
#include "train/loss.h"
#include "train/metrics.h"
#include "train/model_card.h"
#include "train/optimizer.h"
#include "train/pretrained.h"

namespace chart {
namespace fs = std::filesystem;
namespace {

std::atomic<int> g_stop_signal{0};
void on_stop_signal(int sig) { g_stop_signal = sig; }

// Dense bf16 peak of the GPU, for MFU; 0 when unknown.
double peak_flops(const DeviceChoice& d) {
  if (!d.device.is_cuda()) return 0;
  const char* name = std::getenv("CHART_GPU_PEAK_TFLOPS");
  if (name) return std::atof(name) * 1e12;
  return 989e12;  // H100/H200 SXM bf16 dense; set CHART_GPU_PEAK_TFLOPS for other GPUs
}

std::string section_yaml(const std::string& yaml, const char* section) {
  return YAML::Dump(YAML::Load(yaml)[section]);
}

// Peak GPU memory allocated by this process's tensors, GiB; 0 on the CPU.
double peak_gpu_gib(const DeviceChoice& d) {
#ifdef CHART_HAVE_CUDA
  if (d.device.is_cuda()) {
    auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(d.device.index());
    return stats.allocated_bytes[static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE)].peak /
           double(1 << 30);
  }
#endif
  return 0;
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

int train_loop(const Config& cfg, const std::string& resume, const DeviceChoice& dev, Dist& dist) {
  const auto& tc = cfg.train;
  const fs::path run_dir = cfg.run.dir;
  const bool main = dist.is_main();  // rank 0 alone writes the run directory's shared files
  auto ds = data::TokenDataset::open(cfg.data.dir);
  const std::string config_yaml = config_to_yaml(cfg);

  // Rank 0 picks and verifies the checkpoint (reading every byte once, not once per rank) and
  // tells the others its step.
  std::optional<fs::path> ckpt = main ? resume_checkpoint(run_dir, resume) : std::nullopt;
  if (dist.active() && !resume.empty()) {
    double mine = 0;  // 0: none; else 1 + its step (auto picks among step_<N>), or 1 for --resume PATH
    if (main && ckpt)
      mine = resume == "auto" ? 1.0 + std::stod(ckpt->filename().string().substr(5)) : 1.0;
    const double chosen = dist.sum({mine})[0];
    if (!main && chosen > 0)
      ckpt = resume == "auto" ? run_dir / "checkpoints" / fmt::format("step_{}", static_cast<int64_t>(chosen) - 1)
                              : fs::path(resume);
  }
  if (!ckpt && resume.empty() && fs::exists(run_dir / "checkpoints" / "latest"))
    throw Error(fmt::format("{} already holds checkpoints of an earlier run", run_dir.string()),
                "pass --resume auto to continue it, or choose another run.dir");
  if (ckpt) {
    std::string theirs = section_yaml(read_file(*ckpt / "config.yaml"), "model");
    if (theirs != section_yaml(config_yaml, "model"))
      fail("checkpoint {} was made with another model config:\n{}\nthis run:\n{}", ckpt->string(),
           theirs, section_yaml(config_yaml, "model"));
  }

  torch::manual_seed(static_cast<uint64_t>(tc.seed));
  ClinicalTransformer model(cfg.model, static_cast<int64_t>(ds.vocab().size()));
  model->to(dev.device);
  std::vector<torch::Tensor> params;
  for (const auto& p : model->parameters()) params.push_back(p);
  // ZeRO-1: this rank steps (and keeps AdamW moments for) only the parameters it owns.
  std::vector<int> owner;
  std::set<const void*> owned;
  if (dist.zero1()) {
    owner = shard_parameters(params, dist.world_size());
    for (size_t i = 0; i < params.size(); ++i)
      if (owner[i] == dist.rank()) owned.insert(params[i].unsafeGetTensorImpl());
  }
  auto optimizer = make_optimizer(model, tc, [&](const torch::Tensor& p) {
    return !dist.zero1() || owned.count(p.unsafeGetTensorImpl()) > 0;
  });
  TrainerState st;
  if (!ckpt && model->time_head) {
    // Start the waiting-time head at the data's mean gap (rate = 1 / mean days), so its loss
    // starts near its floor instead of swamping the next-token loss in the first steps.
    data::LoaderOptions peek;
    peek.context = cfg.model.context;
    peek.batch_size = tc.batch_size;
    peek.prefetch = 0;
    data::Batch b = data::Loader(ds, "train", peek).next();
    auto valid = b.targets.ge(0);
    double mean_dt = b.target_dt.clamp_min(1.0 / 1440.0).masked_select(valid).mean().item<double>();
    torch::NoGradGuard no_grad;
    model->time_head->bias.fill_(-std::log(mean_dt));
  }
  ModelCard card;
  card.data = data_lineage(ds.dir(), "train");
  if (!ckpt && !cfg.init.checkpoint.empty()) {
    // Continued pretraining from a checkpoint or an exported Hugging Face directory.
    Pretrained init = load_pretrained(cfg.init.checkpoint);
    check_vocab(init, ds.vocab_hash(), cfg.data.dir);
    for (const auto& name : copy_pretrained_weights(init, *model))
      warn("train: {} has '{}', which this model does not: not used", init.dir.string(), name);
    info("train: weights initialised from {} (step {})", init.dir.string(), init.step);
  }
  if (!cfg.init.checkpoint.empty())
    card.set_section("init", fmt::format("{{\"checkpoint\": {}}}", json_string(cfg.init.checkpoint)));
  int64_t ckpt_step = 0;
  if (ckpt) {
    st = load_checkpoint(*ckpt, model, optimizer.get(), dist.rank());
    ckpt_step = st.step;
    if (main) info("train: resumed from {} (step {}, epoch {})", ckpt->string(), st.step, st.loader.epoch);
  }
  // Every rank starts from rank 0's weights (they agree already when seeded alike; this makes sure).
  if (dist.active()) {
    torch::NoGradGuard no_grad;
    for (auto& p : params) {
      auto t = p.detach();
      dist.broadcast(t, 0);
    }
  }
  // Ranks other than 0 draw their own random numbers (dropout), unless a checkpoint restored them.
  if (dist.rank() > 0 && !(ckpt && fs::exists(*ckpt / fmt::format("rng.rank{}.safetensors", dist.rank()))))
    torch::manual_seed(static_cast<uint64_t>(tc.seed) + 1000003ull * static_cast<uint64_t>(dist.rank()));
  std::unique_ptr<MetricsLog> metrics;
  if (main) {
    fs::create_directories(run_dir);
    write_file_atomic(run_dir / "config.yaml", config_yaml);
    metrics = std::make_unique<MetricsLog>(run_dir, ckpt ? st.step : -1);
  }
  st.vocab_hash = ds.vocab_hash();

  data::LoaderOptions lo;
  lo.context = cfg.model.context;
  lo.batch_size = tc.batch_size;
  lo.packing = tc.packing;
  lo.seed = static_cast<uint64_t>(tc.seed);
  lo.rank = dist.rank();
  lo.world_size = dist.world_size();
  const int64_t windows_per_loader_step = tc.batch_size * dist.world_size();
  if (ckpt && st.windows_per_loader_step > 0 && st.windows_per_loader_step != windows_per_loader_step) {
    // Another global batch than the checkpoint's: continue after the windows it consumed (its
    // epoch's order does not change), skipping fewer than one step's worth.
    const int64_t done = st.loader.step * st.windows_per_loader_step;
    const int64_t step = (done + windows_per_loader_step - 1) / windows_per_loader_step;
    if (main)
      warn("train: the checkpoint took {} windows per loader step ({} rank(s)), this run takes {} ({} rank(s)): "
           "continuing epoch {} at window {} (loader step {})",
           st.windows_per_loader_step, st.world_size, windows_per_loader_step, dist.world_size(), st.loader.epoch,
           step * windows_per_loader_step, step);
    st.loader.step = step;
  }
  st.world_size = dist.world_size();
  st.windows_per_loader_step = windows_per_loader_step;
  data::Loader loader(ds, "train", lo, st.loader);
  data::LoaderOptions eval_opts = lo;
  eval_opts.prefetch = 0;
  // Each rank evaluates its block of each of eval_batches global batches: the same windows as one
  // rank with the whole global batch.
  eval_opts.seed = 0;  // the same evaluation batches every time, whatever train.seed is
  bool can_eval = tc.eval_every > 0;
  if (can_eval) {
    try {
      data::Loader probe(ds, "tuning", eval_opts);
    } catch (const Error& e) {
      if (main) warn("evaluation is off: {}", e.what());
      can_eval = false;
    }
  }

  const double flops_per_token = model->flops_per_token(cfg.model.context);
  const double peak = peak_flops(dev);
  if (main)
    info("train: {} parameters, {} on {}, {} windows of {} tokens per epoch, {} steps{}", model->parameter_count(),
         cfg.model.time_bias ? "time-biased attention" : "attention", dev.describe(), loader.windows_per_epoch(),
         cfg.model.context, tc.steps,
         dist.active() ? fmt::format(", {} ranks x {} windows x {} micro-batches{}", dist.world_size(), tc.batch_size,
                                     tc.grad_accum, dist.zero1() ? ", ZeRO-1" : "")
                       : "");

  auto evaluate = [&]() {
    torch::NoGradGuard no_grad;
    model->eval();
    data::Loader eval_loader(ds, "tuning", eval_opts);
    double sum = 0, n = 0;
    for (int64_t i = 0; i < tc.eval_batches; ++i) {
      data::Batch b = to_device(eval_loader.next(), dev.device);
      AutocastGuard autocast(dev);
      auto out = model->forward(b.tokens, b.ages, b.segments);
      auto l = pretraining_loss(out, b, static_cast<double>(std::max<int64_t>(1, b.n_targets)));
      sum += l.next_token.item<double>() * b.n_targets;
      n += b.n_targets;
    }
    model->train();
    auto total = dist.sum({sum, n});
    return total[0] / std::max(1.0, total[1]);
  };

  std::signal(SIGTERM, on_stop_signal);
  std::signal(SIGUSR1, on_stop_signal);
  std::unique_ptr<GradSync> grad_sync;
  if (dist.active()) {
    grad_sync = std::make_unique<GradSync>(dist, params, cfg.dist);
    if (main)
      info("dist: {} gradient bucket(s) of up to {} MiB, reduced in {}", grad_sync->bucket_count(), cfg.dist.bucket_mb,
           cfg.dist.reduce_dtype);
  }
  std::optional<Progress> progress;
  if (main) progress.emplace("train: step", tc.steps);
  auto interval_start = std::chrono::steady_clock::now();
  int64_t interval_tokens = 0, interval_steps = 0;
  double interval_sync_wait_s = 0;  // time from the end of backward until the gradients are summed
  int64_t last_saved = ckpt ? st.step : -1;
  auto save = [&] {
    if (st.step != last_saved) save_checkpoint(run_dir, config_yaml, model, *optimizer, st, tc.keep_last, &dist, card);
    last_saved = st.step;
  };
  while (st.step < tc.steps) {
    dist.set_step(st.step);
    std::vector<data::Batch> micro;
    double n_local = 0;
    for (int64_t i = 0; i < tc.grad_accum; ++i) {
      micro.push_back(loader.next());
      n_local += static_cast<double>(micro.back().n_targets);
    }
    // One small all-reduce: the step's target count over all ranks (every target weighs the
    // same), and whether any rank was asked to stop (all stop at the same step).
    const auto step_totals = dist.sum({n_local, g_stop_signal != 0 ? 1.0 : 0.0});
    if (step_totals[1] > 0) {
      save();
      if (main)
        info("train: received {}; saved a checkpoint at step {}; resume with --resume auto",
             g_stop_signal == SIGTERM ? "SIGTERM" : g_stop_signal == SIGUSR1 ? "SIGUSR1" : "a stop signal on another rank",
             st.step);
      return 0;
    }
    const double n_global = std::max(1.0, step_totals[0]);
    const double lr = learning_rate(tc, st.step);
    set_learning_rate(*optimizer, lr);
    optimizer->zero_grad();
    for (auto& p : params) p.mutable_grad() = torch::Tensor();  // ZeRO-1: the optimizer holds only some
    double loss = 0, time_loss = 0;
    for (int64_t i = 0; i < tc.grad_accum; ++i) {
      data::Batch b = to_device(std::move(micro[static_cast<size_t>(i)]), dev.device);
      LossParts l;
      {
        AutocastGuard autocast(dev);
        auto out = model->forward(b.tokens, b.ages, b.segments);
        l = pretraining_loss(out, b, n_global);
      }
      if (grad_sync) grad_sync->prepare(/*sync=*/i + 1 == tc.grad_accum);
      l.total.backward();
      loss += l.next_token.item<double>();
      if (l.time.defined()) time_loss += l.time.item<double>();
      interval_tokens += b.tokens.numel();  // positions processed, as throughput is usually counted
    }
    if (grad_sync) {
      auto t0 = std::chrono::steady_clock::now();
      grad_sync->finish();
      interval_sync_wait_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
    ++interval_steps;
    st.tokens_seen += static_cast<int64_t>(step_totals[0]);  // tokens actually learned from, all ranks
    const double max_norm = tc.grad_clip > 0 ? tc.grad_clip : std::numeric_limits<double>::infinity();
    const double grad_norm = torch::nn::utils::clip_grad_norm_(params, max_norm);
    optimizer->step();
    if (dist.zero1()) gather_parameters(dist, params, owner);
    ++st.step;
    st.loader = loader.state();
    card.set_metric("train_loss", loss);  // the model card's final metrics: the last step's loss

    if (st.step % tc.log_every == 0 || st.step == tc.steps) {
      double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - interval_start).count();
      // This rank's part of the loss is its targets' sum over the global count: the sum is the mean.
      const auto totals = dist.sum({loss, time_loss, static_cast<double>(interval_tokens)});
      auto rss = torch::tensor({peak_rss_gib(), peak_gpu_gib(dev)}, torch::kFloat64).to(dev.device);
      dist.all_reduce_max(rss);
      rss = rss.cpu();
      loss = totals[0];
      time_loss = totals[1];
      double tps = totals[2] / std::max(1e-9, secs);
      if (main) {
        std::vector<std::pair<std::string, double>> m = {
            {"loss", loss}, {"ppl", std::exp(loss)}, {"lr", lr}, {"grad_norm", grad_norm},
            {"tokens_per_s", tps}, {"tokens_seen", double(st.tokens_seen)}, {"peak_rss_gib", rss[0].item<double>()}};
        if (dist.world_size() > 1) m.emplace_back("tokens_per_s_per_rank", tps / dist.world_size());
        // On the CPU the wait is the communication backward did not hide (on a GPU the wait only
        // queues the copy behind NCCL's stream, so it is not reported there).
        if (grad_sync && !dev.device.is_cuda())
          m.emplace_back("grad_sync_wait_ms", 1e3 * interval_sync_wait_s / std::max<int64_t>(1, interval_steps));
        if (cfg.model.time_head) m.emplace_back("time_loss", time_loss);
        if (peak > 0) m.emplace_back("mfu", flops_per_token * tps / dist.world_size() / peak);
        if (dev.device.is_cuda()) m.emplace_back("peak_gpu_gib", rss[1].item<double>());
        metrics->write(st.step, "train", m);
        progress->update(st.step, fmt::format("loss {:.4f} | {} tok/s | lr {:.2e}", loss, format_count(tps), lr));
      }
      interval_start = std::chrono::steady_clock::now();
      interval_tokens = 0;
      interval_steps = 0;
      interval_sync_wait_s = 0;
    }
    if (can_eval && (st.step % tc.eval_every == 0 || st.step == tc.steps)) {
      double eval_loss = evaluate();
      card.set_metric("tuning_loss", eval_loss);
      if (main) {
        metrics->write(st.step, "tuning", {{"loss", eval_loss}, {"ppl", std::exp(eval_loss)}});
        info("train: step {} tuning loss {:.4f}", st.step, eval_loss);
      }
    }
    if ((tc.checkpoint_every > 0 && st.step % tc.checkpoint_every == 0) || st.step == tc.steps) save();
  }
  if (main && grad_sync)
    info("dist: in the last step, {} of {} gradient bucket(s) started their all-reduce during backward; "
         "{} bucket all-reduces in {} steps of {} micro-batches",
         grad_sync->started_in_backward(), grad_sync->bucket_count(), grad_sync->all_reduces(),
         st.step - (ckpt ? ckpt_step : 0), tc.grad_accum);
  if (main) {
    progress->finish(fmt::format("{} tokens", st.tokens_seen));
    info("train: done; checkpoint {}", (run_dir / "checkpoints" / ("step_" + std::to_string(st.step))).string());
  }
  return 0;
}

}  // namespace

int run_training(const Config& cfg, const std::string& resume) {
  const auto& tc = cfg.train;
  if (cfg.run.dir.empty()) throw Error("run.dir is not set", "pass --set run.dir=DIR");
  set_cpu_threads(tc.threads);
  const LaunchEnv env = launch_env();
  DeviceChoice dev = choose_device(tc.device, tc.precision, env.local_rank);
#ifdef CHART_HAVE_CUDA
  if (dev.device.is_cuda()) c10::cuda::set_device(dev.device.index());  // kernels use the current device's stream
#endif
  Dist dist(env, cfg.dist, dev.device);
  int rc = 0;
  try {
    rc = train_loop(cfg, resume, dev, dist);
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
