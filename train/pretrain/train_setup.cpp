// Building a TrainRun: which checkpoint to resume, the model and its optimizer, their state, the
// loaders and the run's outputs.
#include <yaml-cpp/yaml.h>

#include <cmath>
#include <set>

#include "core/error.h"
#include "core/files.h"
#include "core/json.h"
#include "core/time.h"
#include "train/distributed/zero.h"
#include "train/interop/load_pretrained.h"
#include "train/pretrain/optimizer.h"
#include "train/pretrain/throughput.h"
#include "train/pretrain/train_run.h"

namespace chart {
namespace fs = std::filesystem;
namespace {

std::string section_yaml(const std::string& yaml, const char* section) {
  return YAML::Dump(YAML::Load(yaml)[section]);
}

// Start the waiting-time head at the data's mean gap (rate = 1 / mean days), so its loss starts
// near its floor instead of swamping the next-token loss in the first steps.
void init_time_head(TrainRun& r) {
  data::LoaderOptions peek;
  peek.context = r.cfg.model.context;
  peek.batch_size = r.cfg.train.batch_size;
  peek.prefetch = 0;
  data::Batch b = data::Loader(r.ds, "train", peek).next();
  auto valid = b.targets.ge(0);
  const double mean_dt = b.target_dt.clamp_min(kMinGapDays).masked_select(valid).mean().item<double>();
  torch::NoGradGuard no_grad;
  r.model->time_head->bias.fill_(-std::log(mean_dt));
}

// Continued pretraining from a checkpoint or an exported Hugging Face directory.
void init_from_pretrained(TrainRun& r) {
  Pretrained init = load_pretrained(r.cfg.init.checkpoint);
  check_vocab(init, r.ds.vocab_hash(), r.cfg.data.dir);
  for (const auto& name : copy_pretrained_weights(init, *r.model))
    warn("train: {} has '{}', which this model does not: not used", init.dir.string(), name);
  info("train: weights initialised from {} (step {})", init.dir.string(), init.step);
}

// Another global batch than the checkpoint's: continue after the windows it consumed (its epoch's
// order does not change), skipping fewer than one step's worth.
void adapt_loader_position(TrainRun& r, int64_t windows_per_loader_step) {
  TrainerState& st = r.st;
  if (!r.resumed_from || st.windows_per_loader_step <= 0 || st.windows_per_loader_step == windows_per_loader_step)
    return;
  const int64_t done = st.loader.step * st.windows_per_loader_step;
  const int64_t step = (done + windows_per_loader_step - 1) / windows_per_loader_step;
  if (r.main())
    warn("train: the checkpoint took {} windows per loader step ({} rank(s)), this run takes {} ({} rank(s)): "
         "continuing epoch {} at window {} (loader step {})",
         st.windows_per_loader_step, st.world_size, windows_per_loader_step, r.dist.world_size(), st.loader.epoch,
         step * windows_per_loader_step, step);
  st.loader.step = step;
}

}  // namespace

std::optional<fs::path> choose_resume_checkpoint(TrainRun& r, const std::string& resume) {
  // Rank 0 picks and verifies the checkpoint (reading every byte once, not once per rank).
  std::optional<fs::path> ckpt = r.main() ? resume_checkpoint(r.run_dir, resume) : std::nullopt;
  if (r.dist.active() && !resume.empty()) {
    // The others take its choice: the N of step_<N> (any number for --resume PATH), or -1 for none.
    const int64_t chosen = r.dist.broadcast_int(!ckpt ? -1 : resume == "auto" ? checkpoint_step(*ckpt) : 0);
    if (!r.main() && chosen >= 0)
      ckpt = resume == "auto" ? r.run_dir / "checkpoints" / fmt::format("step_{}", chosen) : fs::path(resume);
  }
  if (!ckpt && resume.empty() && fs::exists(r.run_dir / "checkpoints" / "latest"))
    throw Error(fmt::format("{} already holds checkpoints of an earlier run", r.run_dir.string()),
                "pass --resume auto to continue it, or choose another run.dir");
  if (ckpt) {
    const std::string theirs = section_yaml(read_file(*ckpt / "config.yaml"), "model");
    if (theirs != section_yaml(r.config_yaml, "model"))
      fail("checkpoint {} was made with another model config:\n{}\nthis run:\n{}", ckpt->string(), theirs,
           section_yaml(r.config_yaml, "model"));
  }
  return ckpt;
}

void build_model_and_optimizer(TrainRun& r) {
  torch::manual_seed(static_cast<uint64_t>(r.cfg.train.seed));
  r.model = ClinicalTransformer(r.cfg.model, static_cast<int64_t>(r.ds.vocab().size()));
  r.model->to(r.dev.device);
  for (const auto& p : r.model->parameters()) r.params.push_back(p);
  // ZeRO-1: this rank steps (and keeps AdamW moments for) only the parameters it owns.
  std::set<const void*> owned;
  if (r.dist.zero1()) {
    r.owner = shard_parameters(r.params, r.dist.world_size());
    for (size_t i = 0; i < r.params.size(); ++i)
      if (r.owner[i] == r.dist.rank()) owned.insert(r.params[i].unsafeGetTensorImpl());
  }
  r.optimizer = make_optimizer(r.model, r.cfg.train, [&](const torch::Tensor& p) {
    return !r.dist.zero1() || owned.count(p.unsafeGetTensorImpl()) > 0;
  });
  r.flops_per_token = r.model->flops_per_token(r.cfg.model.context);
  r.peak_flops = peak_flops(r.dev);
}

void restore_or_initialise(TrainRun& r) {
  const auto& tc = r.cfg.train;
  r.card.data = data_lineage(r.ds.dir(), "train");
  if (!r.cfg.init.checkpoint.empty())
    r.card.set_section("init", Json({{"checkpoint", r.cfg.init.checkpoint}}).dump());
  if (r.resumed_from) {
    r.st = load_checkpoint(*r.resumed_from, r.model, r.optimizer.get(), r.dist.rank());
    r.first_step = r.last_saved = r.st.step;
    if (r.main())
      info("train: resumed from {} (step {}, epoch {})", r.resumed_from->string(), r.st.step, r.st.loader.epoch);
  } else {
    if (r.model->time_head) init_time_head(r);
    if (!r.cfg.init.checkpoint.empty()) init_from_pretrained(r);
  }
  r.st.vocab_hash = r.ds.vocab_hash();
  // Every rank starts from rank 0's weights (they agree already when seeded alike; this makes sure).
  if (r.dist.active()) {
    torch::NoGradGuard no_grad;
    for (auto& p : r.params) {
      auto t = p.detach();
      r.dist.broadcast(t, 0);
    }
  }
  // Ranks other than 0 draw their own random numbers (dropout), unless a checkpoint restored them.
  const bool rng_restored =
      r.resumed_from && fs::exists(*r.resumed_from / fmt::format("rng.rank{}.safetensors", r.dist.rank()));
  if (r.dist.rank() > 0 && !rng_restored)
    torch::manual_seed(static_cast<uint64_t>(tc.seed) + 1000003ull * static_cast<uint64_t>(r.dist.rank()));
}

void open_loaders(TrainRun& r) {
  const auto& tc = r.cfg.train;
  data::LoaderOptions lo;
  lo.context = r.cfg.model.context;
  lo.batch_size = tc.batch_size;
  lo.packing = tc.packing;
  lo.seed = static_cast<uint64_t>(tc.seed);
  lo.rank = r.dist.rank();
  lo.world_size = r.dist.world_size();
  const int64_t windows_per_loader_step = tc.batch_size * r.dist.world_size();
  adapt_loader_position(r, windows_per_loader_step);
  r.st.world_size = r.dist.world_size();
  r.st.windows_per_loader_step = windows_per_loader_step;
  r.loader = std::make_unique<data::Loader>(r.ds, "train", lo, r.st.loader);
  // Each rank evaluates its block of each of eval_batches global batches: the same windows as one
  // rank with the whole global batch, and the same every time, whatever train.seed is.
  r.eval_options = lo;
  r.eval_options.prefetch = 0;
  r.eval_options.seed = 0;
  r.can_eval = tc.eval_every > 0;
  if (r.can_eval) {
    try {
      data::Loader probe(r.ds, "tuning", r.eval_options);
    } catch (const Error& e) {
      if (r.main()) warn("evaluation is off: {}", e.what());
      r.can_eval = false;
    }
  }
}

void open_outputs(TrainRun& r) {
  const auto& tc = r.cfg.train;
  if (r.main()) {
    fs::create_directories(r.run_dir);
    write_file_atomic(r.run_dir / "config.yaml", r.config_yaml);
    r.metrics = std::make_unique<MetricsLog>(r.run_dir, r.resumed_from ? r.st.step : -1);
    info("train: {} parameters, {} on {}, {} windows of {} tokens per epoch, {} steps{}", r.model->parameter_count(),
         r.cfg.model.time_bias ? "time-biased attention" : "attention", r.dev.describe(),
         r.loader->windows_per_epoch(), r.cfg.model.context, tc.steps,
         r.dist.active() ? fmt::format(", {} ranks x {} windows x {} micro-batches{}", r.dist.world_size(),
                                       tc.batch_size, tc.grad_accum, r.dist.zero1() ? ", ZeRO-1" : "")
                         : "");
  }
  install_stop_handlers();
  if (r.dist.active()) {
    r.grad_sync = std::make_unique<GradSync>(r.dist, r.params, r.cfg.dist);
    if (r.main())
      info("dist: {} gradient bucket(s) of up to {} MiB, reduced in {}", r.grad_sync->bucket_count(),
           r.cfg.dist.bucket_mb, r.cfg.dist.reduce_dtype);
  }
  if (r.main()) r.progress.emplace("train: step", tc.steps);
  r.interval = LogInterval{};
}

std::unique_ptr<TrainRun> open_train_run(const Config& cfg, const std::string& resume, const DeviceChoice& dev,
                                         Dist& dist) {
  auto r = std::make_unique<TrainRun>(cfg, dev, dist, data::TokenDataset::open(cfg.data.dir));
  r->resumed_from = choose_resume_checkpoint(*r, resume);
  build_model_and_optimizer(*r);
  restore_or_initialise(*r);
  open_loaders(*r);
  open_outputs(*r);
  return r;
}

}  // namespace chart
