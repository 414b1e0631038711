// Building a TrainRun: which checkpoint to resume, the model and its optimizer, their state, the
// loaders and the run's outputs.
#include <yaml-cpp/yaml.h>

#include <cmath>
#include <ctime>
#include <set>

#include "core/error.h"
#include "core/faults.h"
#include "core/files.h"
#include "core/json.h"
#include "core/time.h"
#include "kernels/attention_dispatch.h"
#include "train/checkpoint/governance.h"
#include "train/distributed/zero.h"
#include "train/interop/load_pretrained.h"
#include "train/pretrain/optimizer.h"
#include "train/pretrain/throughput.h"
#include "train/pretrain/train_run.h"

namespace chart {
namespace fs = std::filesystem;
namespace {

// "model.d_model: checkpoint 64, this run 128" for each model key that differs, leaving out the
// keys that choose how attention runs (they do not change what the model computes).
std::vector<std::string> model_differences(const std::string& checkpoint_yaml, const std::string& run_yaml) {
  const YAML::Node theirs = YAML::Load(checkpoint_yaml)["model"], ours = YAML::Load(run_yaml)["model"];
  std::set<std::string> keys;
  for (const auto& node : {theirs, ours})
    if (node.IsMap())
      for (const auto& kv : node) keys.insert(kv.first.as<std::string>());
  std::vector<std::string> out;
  for (const auto& k : keys) {
    if (k == "attention" || k == "attention_check") continue;
    const std::string a = theirs[k] ? YAML::Dump(theirs[k]) : "(absent)", b = ours[k] ? YAML::Dump(ours[k]) : "(absent)";
    if (a != b) out.push_back(fmt::format("model.{}: checkpoint {}, this run {}", k, a, b));
  }
  return out;
}

// --resume fresh: what an earlier run left (checkpoints, TensorBoard, metrics) is moved, not
// deleted, to run.dir/abandoned-<UTC time>/, and the run starts at step 0.
void abandon_earlier_run(const fs::path& run_dir) {
  std::vector<fs::path> left;
  for (const char* name : {"checkpoints", "tb", "metrics.jsonl"})
    if (fs::exists(run_dir / name)) left.push_back(run_dir / name);
  if (left.empty()) return;
  const std::time_t t = std::time(nullptr);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", std::gmtime(&t));
  const fs::path aside = run_dir / (std::string("abandoned-") + stamp);
  fs::create_directories(aside);
  for (const auto& p : left) fs::rename(p, aside / p.filename());
  fsync_dir(run_dir);
  warn("train: --resume fresh: moved what the earlier run left to {}; starting at step 0", aside.string());
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

void lock_run_dir(TrainRun& r) {
  if (!r.main()) return;
  r.lock = std::make_unique<RunLock>(r.run_dir, "chart train");
  // Under the lock nothing else writes here: ranks' parts of an interrupted multi-rank save
  // (".step_N.rankR.*") and temporaries whose writer is gone are left-overs of a killed run.
  const fs::path ckpt_dir = r.run_dir / "checkpoints";
  std::vector<fs::path> parts;
  if (fs::is_directory(ckpt_dir))
    for (const auto& e : fs::directory_iterator(ckpt_dir))
      if (e.path().filename().string().rfind(".step_", 0) == 0) parts.push_back(e.path());
  auto removed = remove_stale_temporaries(ckpt_dir, parts);
  for (const auto& p : remove_stale_temporaries(r.run_dir)) removed.push_back(p);
  for (const auto& p : removed) info("train: removed {}, left by a killed writer", p.string());
}

std::optional<fs::path> choose_resume_checkpoint(TrainRun& r, const std::string& resume) {
  if (resume == "fresh" && r.main()) abandon_earlier_run(r.run_dir);
  // Rank 0 picks and verifies the checkpoint (reading every byte once, not once per rank).
  std::optional<fs::path> ckpt = r.main() ? resume_checkpoint(r.run_dir, resume) : std::nullopt;
  if (r.dist.active() && !resume.empty() && resume != "fresh") {
    // The others take its choice: the N of step_<N> (any number for --resume PATH), or -1 for none.
    const int64_t chosen = r.dist.broadcast_int(!ckpt ? -1 : resume == "auto" ? checkpoint_step(*ckpt) : 0);
    if (!r.main() && chosen >= 0)
      ckpt = resume == "auto" ? r.run_dir / "checkpoints" / fmt::format("step_{}", chosen) : fs::path(resume);
  }
  if (!ckpt && resume.empty() && fs::exists(r.run_dir / "checkpoints" / "latest"))
    throw Error(fmt::format("{} already holds checkpoints of an earlier run", r.run_dir.string()),
                "pass --resume auto to continue it, --resume fresh to start over, or choose another run.dir");
  if (ckpt) {
    const auto differences = model_differences(read_file(*ckpt / "config.yaml"), r.config_yaml);
    if (!differences.empty())
      throw Error(fmt::format("checkpoint {} was made with another model config:\n  {}", ckpt->string(),
                              fmt::join(differences, "\n  ")),
                  "resume with the checkpoint's model settings (its config.yaml), or start a new run.dir");
  }
  return ckpt;
}

void build_model_and_optimizer(TrainRun& r) {
  torch::manual_seed(static_cast<uint64_t>(r.cfg.train.seed));
  r.model = ClinicalTransformer(r.cfg.model, static_cast<int64_t>(r.ds.vocab().size()));
  r.model->to(r.dev.device);
  for (const auto& p : r.model->parameters()) r.params.push_back(p);
  // ZeRO-1: this rank steps (and keeps AdamW moments for) only the pieces of its shard.
  if (r.dist.zero1()) r.zero = std::make_unique<Zero1>(r.dist, r.params, r.cfg.dist);
  std::vector<std::vector<torch::Tensor>> stepped(r.params.size());
  for (size_t i = 0; i < r.params.size(); ++i)
    if (!r.zero) stepped[i] = {r.params[i]};
  if (r.zero)
    for (size_t k = 0; k < r.zero->pieces().size(); ++k)
      stepped[r.zero->pieces()[k].param].push_back(r.zero->piece_params()[k]);
  r.optimizer = make_optimizer(r.model, r.cfg.train, stepped);
  r.flops_per_token = r.model->flops_per_token(r.cfg.model.context);
  r.peak_flops = peak_flops(r.dev);
}

void restore_or_initialise(TrainRun& r) {
  const auto& tc = r.cfg.train;
  r.card.data = data_lineage(r.ds.dir(), "train");
  r.card.set_section("governance", governance_section(r.cfg.card.governance));
  if (!r.cfg.init.checkpoint.empty())
    r.card.set_section("init", Json({{"checkpoint", r.cfg.init.checkpoint}}).dump());
  if (r.resumed_from) {
    r.st = load_checkpoint(*r.resumed_from, r.model, r.optimizer.get(), r.dist.rank(), r.zero.get());
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
  lo.pin_memory = r.dev.device.is_cuda();
  const int64_t windows_per_loader_step = tc.batch_size * r.dist.world_size();
  adapt_loader_position(r, windows_per_loader_step);
  r.st.world_size = r.dist.world_size();
  r.st.windows_per_loader_step = windows_per_loader_step;
  r.loader = std::make_unique<data::Loader>(r.ds, "train", lo, r.st.loader);
  // Each rank evaluates its block of each of eval_batches global batches: the same windows as one
  // rank with the whole global batch, and the same every time, whatever train.seed is.
  data::LoaderOptions eval_options = lo;
  eval_options.prefetch = 0;
  eval_options.seed = 0;
  r.can_eval = tc.eval_every > 0;
  if (r.can_eval) {
    try {
      r.eval_loader = std::make_unique<data::Loader>(r.ds, "tuning", eval_options);
    } catch (const Error& e) {
      if (r.main()) warn("evaluation is off: {}", e.what());
      r.can_eval = false;
    }
  }
}

void choose_attention(TrainRun& r) {
  const auto path = r.model->attention_path(r.dev.device, r.dev.compute_dtype);  // throws for kernels that cannot run
  const std::string line = kernels::describe_attention_path(r.dev.device, r.dev.compute_dtype,
                                                            r.cfg.model.d_model / r.cfg.model.n_heads,
                                                            kernels::attention_mode(r.cfg.model.attention));
  r.card.set_section("attention", Json({{"path", kernels::path_name(path.kind)}, {"reason", path.reason},
                                        {"mode", r.cfg.model.attention}})
                                      .dump());
  const bool check = path.cuda() && r.cfg.model.attention_check;
  if (check) r.model->check_attention_on_next_forward();
  if (!r.main()) return;
  info("train: {}{}", line, check ? "; checked against the reference on the first batch" : "");
  if (r.dev.device.is_cuda() && !path.cuda())
    warn("train: attention runs the LibTorch reference on a GPU ({}): it materialises [batch, heads, context, "
         "context] scores per layer; set model.attention=kernels to make that an error",
         path.reason);
}

void open_outputs(TrainRun& r) {
  const auto& tc = r.cfg.train;
  r.fault_steps = nonfinite_fault_steps(r.dist.rank());
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
    r.grad_sync = std::make_unique<GradSync>(r.dist, r.params, r.cfg.dist, r.zero.get());
    if (r.main())
      info("dist: {} gradient bucket(s) of up to {} MiB, reduced in {}{}", r.grad_sync->bucket_count(),
           r.cfg.dist.bucket_mb, r.cfg.dist.reduce_dtype,
           r.zero ? fmt::format(", reduce-scattered (ZeRO-1: this rank's shard is {} of {} elements)",
                                r.zero->layout().shard_numel, r.model->parameter_count())
                  : "");
  }
  if (r.main()) r.progress.emplace("train: step", tc.steps);
  r.interval = LogInterval{};
}

std::unique_ptr<TrainRun> open_train_run(const Config& cfg, const std::string& resume, const DeviceChoice& dev,
                                         Dist& dist) {
  auto r = std::make_unique<TrainRun>(cfg, dev, dist, data::TokenDataset::open(cfg.data.dir));
  lock_run_dir(*r);
  r->resumed_from = choose_resume_checkpoint(*r, resume);
  build_model_and_optimizer(*r);
  restore_or_initialise(*r);
  open_loaders(*r);
  choose_attention(*r);
  open_outputs(*r);
  return r;
}

}  // namespace chart
