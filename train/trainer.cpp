#include "train/trainer.h"

#ifdef CHART_HAVE_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif
#include <yaml-cpp/yaml.h>

#include <atomic>
#include <cmath>
#include <chrono>
#include <csignal>
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

}  // namespace

int run_training(const Config& cfg, const std::string& resume) {
  const auto& tc = cfg.train;
  if (cfg.run.dir.empty()) throw Error("run.dir is not set", "pass --set run.dir=DIR");
  const fs::path run_dir = cfg.run.dir;
  torch::set_num_threads(tc.threads > 0 ? static_cast<int>(tc.threads)
                                        : static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  auto ds = data::TokenDataset::open(cfg.data.dir);
  DeviceChoice dev = choose_device(tc.device, tc.precision);
  const std::string config_yaml = config_to_yaml(cfg);

  auto ckpt = resume_checkpoint(run_dir, resume);
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
  auto optimizer = make_optimizer(model, tc);
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
  if (ckpt) {
    st = load_checkpoint(*ckpt, model, optimizer.get());
    info("train: resumed from {} (step {}, epoch {})", ckpt->string(), st.step, st.loader.epoch);
  }
  st.vocab_hash = ds.vocab_hash();
  fs::create_directories(run_dir);
  write_file_atomic(run_dir / "config.yaml", config_yaml);
  MetricsLog metrics(run_dir, ckpt ? st.step : -1);

  data::LoaderOptions lo;
  lo.context = cfg.model.context;
  lo.batch_size = tc.batch_size;
  lo.packing = tc.packing;
  lo.seed = static_cast<uint64_t>(tc.seed);
  data::Loader loader(ds, "train", lo, st.loader);
  data::LoaderOptions eval_opts = lo;
  eval_opts.prefetch = 0;
  eval_opts.seed = 0;  // the same evaluation batches every time, whatever train.seed is
  bool can_eval = tc.eval_every > 0;
  if (can_eval) {
    try {
      data::Loader probe(ds, "tuning", eval_opts);
    } catch (const Error& e) {
      warn("evaluation is off: {}", e.what());
      can_eval = false;
    }
  }

  const double flops_per_token = model->flops_per_token(cfg.model.context);
  const double peak = peak_flops(dev);
  info("train: {} parameters, {} on {}, {} windows of {} tokens per epoch, {} steps", model->parameter_count(),
       cfg.model.time_bias ? "time-biased attention" : "attention", dev.describe(),
       loader.windows_per_epoch(), cfg.model.context, tc.steps);

  auto evaluate = [&]() {
    torch::NoGradGuard no_grad;
    model->eval();
    data::Loader eval_loader(ds, "tuning", eval_opts);
    double sum = 0, n = 0;
    for (int64_t i = 0; i < tc.eval_batches; ++i) {
      data::Batch b = to_device(eval_loader.next(), dev.device);
      AutocastGuard autocast(dev);
      auto out = model->forward(b.tokens, b.ages, b.segments);
      auto l = pretraining_loss(out, b);
      sum += l.next_token.item<double>() * b.n_targets;
      n += b.n_targets;
    }
    model->train();
    return sum / std::max(1.0, n);
  };

  std::signal(SIGTERM, on_stop_signal);
  std::signal(SIGUSR1, on_stop_signal);
  std::vector<torch::Tensor> params;
  for (const auto& p : model->parameters()) params.push_back(p);
  Progress progress("train: step", tc.steps);
  auto interval_start = std::chrono::steady_clock::now();
  int64_t interval_tokens = 0;
  int64_t last_saved = ckpt ? st.step : -1;
  while (st.step < tc.steps) {
    const double lr = learning_rate(tc, st.step);
    set_learning_rate(*optimizer, lr);
    optimizer->zero_grad();
    double loss = 0, time_loss = 0;
    for (int64_t micro = 0; micro < tc.grad_accum; ++micro) {
      data::Batch b = to_device(loader.next(), dev.device);
      LossParts l;
      {
        AutocastGuard autocast(dev);
        auto out = model->forward(b.tokens, b.ages, b.segments);
        l = pretraining_loss(out, b);
      }
      (l.total / static_cast<double>(tc.grad_accum)).backward();
      loss += l.next_token.item<double>() / tc.grad_accum;
      if (l.time.defined()) time_loss += l.time.item<double>() / tc.grad_accum;
      interval_tokens += b.tokens.numel();  // positions processed, as throughput is usually counted
      st.tokens_seen += b.n_targets;        // tokens actually learned from
    }
    const double max_norm = tc.grad_clip > 0 ? tc.grad_clip : std::numeric_limits<double>::infinity();
    const double grad_norm = torch::nn::utils::clip_grad_norm_(params, max_norm);
    optimizer->step();
    ++st.step;
    st.loader = loader.state();
    card.set_metric("train_loss", loss);  // the model card's final metrics: the last step's loss

    if (st.step % tc.log_every == 0 || st.step == tc.steps) {
      double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - interval_start).count();
      double tps = interval_tokens / std::max(1e-9, secs);
      std::vector<std::pair<std::string, double>> m = {
          {"loss", loss}, {"ppl", std::exp(loss)}, {"lr", lr}, {"grad_norm", grad_norm},
          {"tokens_per_s", tps}, {"tokens_seen", double(st.tokens_seen)}, {"peak_rss_gib", peak_rss_gib()}};
      if (cfg.model.time_head) m.emplace_back("time_loss", time_loss);
      if (peak > 0) m.emplace_back("mfu", flops_per_token * tps / peak);
      if (dev.device.is_cuda()) m.emplace_back("peak_gpu_gib", peak_gpu_gib(dev));
      metrics.write(st.step, "train", m);
      progress.update(st.step, fmt::format("loss {:.4f} | {} tok/s | lr {:.2e}", loss, format_count(tps), lr));
      interval_start = std::chrono::steady_clock::now();
      interval_tokens = 0;
    }
    if (can_eval && (st.step % tc.eval_every == 0 || st.step == tc.steps)) {
      double eval_loss = evaluate();
      card.set_metric("tuning_loss", eval_loss);
      metrics.write(st.step, "tuning", {{"loss", eval_loss}, {"ppl", std::exp(eval_loss)}});
      info("train: step {} tuning loss {:.4f}", st.step, eval_loss);
    }
    const bool stop = g_stop_signal != 0;
    if ((tc.checkpoint_every > 0 && st.step % tc.checkpoint_every == 0) || st.step == tc.steps || stop) {
      if (st.step != last_saved) save_checkpoint(run_dir, config_yaml, model, *optimizer, st, tc.keep_last, card);
      last_saved = st.step;
    }
    if (stop) {
      info("train: received {}; saved a checkpoint at step {}; resume with --resume auto",
           g_stop_signal == SIGTERM ? "SIGTERM" : "SIGUSR1", st.step);
      return 0;
    }
  }
  progress.finish(fmt::format("{} tokens", st.tokens_seen));
  info("train: done; checkpoint {}", (run_dir / "checkpoints" / ("step_" + std::to_string(st.step))).string());
  return 0;
}

}  // namespace chart
