// The run configuration: every key chart understands, as typed structs with defaults.
// YAML files and `--set a.b=c` overrides are read into it by load_config(), which refuses an
// unknown key, a wrong type or an out-of-range value with a message naming the key and where
// it came from (file:line or --set). configs/README.md documents each key; a test keeps the two
// in step. To add a key: a field here, a line in bind() (config_keys.cpp), a line in the README.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace chart {

struct DataConfig {
  std::string dir;  // a prepared token dataset (chart prepare --out)
};

struct RunConfig {
  std::string dir;  // where a run writes config.yaml, metrics.jsonl, checkpoints/
};

// How `chart prepare` turns MEDS into tokens.
struct PrepareConfig {
  int64_t min_subjects = 10;  // privacy threshold k: codes in fewer train subjects get no token
  int64_t numeric_bins = 10;  // quantile bins per numeric code
  // Upper edges of the time-interval tokens, in the order they are tried (ETHOS-style).
  std::vector<std::string> time_bins = {"5m", "15m", "1h", "2h", "6h", "12h", "1d",
                                        "3d", "1w", "2w", "30d", "90d", "180d", "365d"};
  bool text = false;          // tokenize text_value (off: free text never enters the vocab)
  int64_t threads = 0;        // 0: all cores
  // Column mapping for MEDS-like input whose columns are named otherwise.
  std::string subject_id_column = "subject_id";
  std::string time_column = "time";
  std::string code_column = "code";
  std::string numeric_value_column = "numeric_value";
  std::string text_value_column = "text_value";
  // For input without data/<split>/ folders: split subjects by hash into these fractions.
  double tuning_fraction = 0.1;
  double held_out_fraction = 0.1;
  int64_t split_seed = 0;
  // The dataset's own split names as chart's ("dev=train", "val=tuning", "test=held_out"): applied
  // to metadata/subject_splits.parquet and to data/<split>/ folder names.
  std::vector<std::string> split_map;
  // A fixed vocabulary instead of one built from this dataset's train split (a new cohort or an
  // external site on a pretrained model): a token dataset, a checkpoint or an export. Its time
  // bins and numeric bins come with it; the train split may then be empty.
  std::string vocab;
  // A split whose share of events with codes outside the vocabulary exceeds this gets a warning.
  double unknown_warning = 0.05;
};

struct ModelConfig {
  int64_t d_model = 128;
  int64_t n_layers = 2;
  int64_t n_heads = 4;
  int64_t n_kv_heads = 0;  // 0: same as n_heads (no grouping)
  int64_t d_ff = 0;        // 0: about 8/3 d_model rounded up to a multiple of 64 (SwiGLU)
  int64_t context = 256;   // tokens per training window
  double rope_theta = 10000.0;
  double norm_eps = 1e-5;
  std::string time_encoding = "sinusoidal";  // sinusoidal | none
  bool time_bias = false;                    // time-decay attention bias
  bool tie_embeddings = true;
  bool time_head = false;  // time-to-next-event head
  double dropout = 0.0;
  // How attention runs: auto (the CUDA kernels where they support the device, dtype and head
  // size, else the reference), kernels (a config error where they cannot run), reference.
  // Neither key changes what the model computes: a checkpoint resumes under any value.
  std::string attention = "auto";
  bool attention_check = true;  // GPU: check the kernels against the reference on the first batch
};

struct TrainConfig {
  int64_t steps = 100;
  int64_t seed = 1337;
  int64_t batch_size = 8;  // windows per optimizer step per rank (before grad_accum)
  int64_t grad_accum = 1;
  double lr = 1e-3;
  double min_lr = 1e-4;
  int64_t warmup_steps = 10;
  std::string schedule = "cosine";  // cosine | wsd | constant
  double decay_fraction = 0.2;       // wsd: fraction of steps spent decaying
  double weight_decay = 0.1;
  // Parameter groups weight decay applies to: matrices (linear layers), embeddings, norms, other
  // (time-decay slopes, the time head's bias).
  std::vector<std::string> decay = {"matrices"};
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double grad_clip = 1.0;  // 0: off
  int64_t eval_every = 50;
  int64_t eval_batches = 4;
  int64_t log_every = 10;
  int64_t checkpoint_every = 100;
  int64_t keep_last = 3;
  // With several ranks, weights of this many MiB or more are written by all of them, a part
  // each (model.safetensors.index.json); -1: always by rank 0 alone.
  int64_t split_weights_mib = 1024;
  std::string device = "auto";     // auto | cpu | cuda
  std::string precision = "auto";  // auto (bf16 on GPU, fp32 on CPU) | fp32 | bf16
  bool packing = true;             // pack several patients into one window
  int64_t threads = 0;             // CPU threads for LibTorch; 0: all cores
  // Steps with a non-finite loss or gradient norm are skipped; this many in a row stop the run.
  int64_t max_skipped_steps = 10;
  // The first this many steps' batches and the weights before them, to run.dir/batches/: a
  // replay of the run outside chart (scripts/replay_run.py). 0: none.
  int64_t save_batches = 0;
};

struct InitConfig {
  std::string checkpoint;  // a checkpoint to start from (fine-tune, eval, generate)
};

struct TaskConfig {
  std::string labels;  // a MEDS label directory or parquet file
  std::string name;    // for reports and the model card; "": the labels' directory name
  // A time-to-event task: the time from each label row's prediction_time to the first of these
  // codes in the subject's record ("X*" a prefix), censored at its last event (data/time_to_event.h);
  // the label file then only gives prediction times. Empty: the labels' value column is the task.
  std::vector<std::string> event_codes;
  // The piecewise-exponential head's piece edges after 0 (the last piece is open-ended).
  std::vector<std::string> time_pieces = {"30d", "90d", "180d", "365d", "730d", "1825d"};
  // Multi-task fine-tuning: "NAME=LABELS" per task, one head each on a shared backbone
  // (train/recipes/finetune_multitask.h); task.labels and task.name are then unused.
  std::vector<std::string> multi;
};

// `chart finetune`: a classification head on a pretrained backbone. Steps, learning rate,
// batch size, schedule and evaluation cadence come from train.*.
struct FinetuneConfig {
  std::string recipe = "full";  // full | lora | probe (frozen backbone, features computed once)
  int64_t context = 0;          // tokens before prediction_time fed to the model; 0: model.context
  int64_t lora_rank = 8;
  double lora_alpha = 16.0;     // the adapter's output is scaled by alpha / rank
  std::vector<std::string> lora_targets = {"wq", "wk", "wv", "wo"};  // projections given adapters
  std::string class_weighting = "balanced";  // balanced (positives weighted n_neg/n_pos) | none
  int64_t patience = 5;         // evaluations on the tuning split without improvement; 0: never stop early
  double head_lr_scale = 1.0;   // the head's learning rate is train.lr times this
};

// `chart eval`: metrics, predictions and a report for one split.
struct EvalConfig {
  std::string split = "held_out";
  std::string predictions;      // score this predictions.parquet instead of running a model
  int64_t bootstrap = 1000;     // resamples for the 95% intervals; 0: none
  int64_t ece_bins = 10;
  double threshold = 0.5;       // predicted_boolean_value = probability >= threshold (generate, predict; eval: rule "fixed")
  // How eval picks its operating threshold on the tuning split (train/validation/operating_point.h):
  // youden | sensitivity:S | alert_rate:A | fixed (eval.threshold).
  std::string threshold_rule = "youden";
  std::string tuning_predictions;  // with eval.predictions: the tuning split's predictions, to choose it on
  int64_t batch_size = 64;
  // Score labels of another task than the one the checkpoint was fine-tuned on (refused otherwise).
  bool other_task = false;
  // Every metric again per subgroup: sex, age (bands at prediction time, by age_bands' lower
  // edges in years) and any static code family named by its prefix (e.g. "RACE//", "INSURANCE//").
  std::vector<std::string> subgroups = {"sex", "age"};
  std::vector<std::string> age_bands = {"18", "40", "65", "80"};
  // A time-to-event head is scored at these horizons (AUROC, Brier, risk); the largest bounds the
  // integrated Brier score and the concordance. chart predict writes the survival at each.
  std::vector<std::string> horizons = {"180d", "365d", "730d"};
  // A regression head's split-conformal prediction intervals, calibrated on the tuning split's
  // residuals, of this nominal coverage; 0: none.
  double interval_coverage = 0.9;
};

// `chart generate`: zero-shot risk by sampling future timelines from a pretrained model.
struct GenerateConfig {
  std::string split = "held_out";
  int64_t samples = 20;          // trajectories per (subject, prediction_time)
  std::string horizon = "365d";  // stop a trajectory once its clock passes prediction_time + horizon
  // What is predicted: reaching one of these codes counts ("X*" matches a prefix). No default: a
  // zero-shot run says what it scores (e.g. [MEDS_DEATH] for mortality).
  std::vector<std::string> outcome_codes;
  std::vector<std::string> stop_codes = {"MEDS_DEATH"};     // the timeline ends here
  int64_t max_new_tokens = 0;    // sampled per trajectory in all; 0: 8 x model.context
  int64_t prompt_tokens = 0;     // history that prompts each context window; 0: half of model.context
  double temperature = 1.0;
  int64_t top_k = 0;             // 0: sample from the full distribution
  int64_t batch_size = 256;      // trajectories decoded together (the engine's decode slots)
  int64_t max_examples = 0;      // 0: every label row of the split
  std::string engine = "continuous";  // continuous (infer/) | batched (the previous lockstep loop, for comparison)
  // What predictions.parquet holds (both go to risk.parquet, infer/risk.h): expected (the mean of
  // the model's own outcome probabilities along each trajectory) | hits (the fraction that hit).
  std::string estimator = "expected";
  bool trajectories = false;  // also write trajectories.parquet: one row per sampled trajectory
  // A trajectory that fills the context: slide its cache to its last prompt_tokens tokens, or
  // prefill them again (prefill: the window sees only those tokens, at the cost of a model run).
  std::string window = "slide";
};

// `chart predict`: predictions for prediction times without labels, from a fine-tuned head or,
// for a pretrained checkpoint, zero-shot by generate.*.
struct PredictConfig {
  std::string times = "labels";  // labels (task.labels: subject_id, prediction_time; values ignored) | last (each subject at its last event)
  std::string split = "all";     // all | train | tuning | held_out
  std::string meds;              // a raw MEDS dataset, prepared into run.dir/tokens on the checkpoint's vocabulary; "": data.dir
  int64_t batch_size = 64;
};

// `chart audit`: membership inference and extraction against a pretrained model (train/recipes/audit.h).
struct AuditConfig {
  int64_t max_subjects = 1000;  // per side (train members, held_out non-members); 0: all
  double min_k = 0.2;           // Min-K%: the fraction of a timeline's least likely tokens it averages
  int64_t bootstrap = 1000;     // resamples for the AUROCs' 95% intervals
  int64_t k = 0;                // the fewest train subjects a token or numeric bin may rest on; 0: prepare.min_subjects
  int64_t extract_tokens = 8;   // extraction: continuation tokens after each subject's rarest code; 0: skip
  int64_t batch_size = 32;
};

// What a model card says beyond what chart measures (train/checkpoint/governance.h).
struct CardConfig {
  std::string governance;  // YAML: intended use, users, out-of-scope uses, limitations, oversight, contact, ...
};

// `chart serve`: fine-tuned models behind an HTTP API (serve/server.h). Who may call it, with
// which credential and for which tasks, is in serve.clients, a file of its own (serve/access.h).
struct ServeConfig {
  std::vector<std::string> models;  // "TASK=CHECKPOINT", one per served task (fine-tuned, or pretrained for zero-shot)
  // "TASK=CODE|CODE...@HORIZON" for each task whose checkpoint is a pretrained one: the outcome
  // codes its sampled futures are scored on ("X*" a prefix) and the horizon (e.g. death_5y=MEDS_DEATH@5y).
  // Samples, temperature, stop codes and the estimator come from generate.*.
  std::vector<std::string> zero_shot;
  std::string host = "127.0.0.1";
  int64_t port = 8080;              // 0: a free port, written to run.dir/serve.json
  bool allow_plain_remote = false;  // plain HTTP on an address other than loopback (else TLS is required)
  std::string tls_cert;             // PEM certificate and key: HTTPS
  std::string tls_key;
  std::string clients;              // YAML: the clients, their API key hashes or JWT issuers and keys, their tasks
  std::string audience;             // the `aud` JWTs must carry (this service's base URL); needed for JWT clients
  std::string public_url;           // the base URL in links (model cards); "": from the request's Host header
  std::string fhir_mapping;         // YAML: FHIR code systems -> MEDS codes; "": the built-in conventions
  int64_t max_body_kb = 1024;       // larger request bodies get 413
  double read_timeout_s = 10;       // a client silent this long mid-request is cut off
  int64_t rate_limit = 600;         // requests per client per minute (a token bucket); 0: unlimited
  int64_t threads = 256;            // HTTP worker threads: each open connection holds one
  int64_t batch_size = 32;          // concurrent requests batched into one forward pass
  double batch_wait_ms = 2;         // how long a forming batch waits for more requests
  double min_coverage = 0.9;        // warn when a smaller share of a request's events have codes the model knows
  bool log_payloads = false;        // the audit log carries request bodies (PHI) only if set
};

// Data parallelism over several processes (torchrun, srun); inert in a single process.
struct DistConfig {
  std::string backend = "auto";  // auto (nccl on GPUs, gloo on CPUs) | nccl | gloo
  double timeout_s = 300;        // a rank waits this long for another before exiting non-zero
  double bucket_mb = 25;         // gradient bucket size, MiB, for the overlapped all-reduce
  std::string reduce_dtype = "fp32";  // fp32 | bf16: the dtype gradients are summed in
  bool zero1 = false;            // shard AdamW state across ranks (ZeRO stage 1)
};

struct Config {
  DataConfig data;
  RunConfig run;
  PrepareConfig prepare;
  ModelConfig model;
  TrainConfig train;
  InitConfig init;
  TaskConfig task;
  FinetuneConfig finetune;
  EvalConfig eval;
  GenerateConfig generate;
  PredictConfig predict;
  AuditConfig audit;
  CardConfig card;
  ServeConfig serve;
  DistConfig dist;
};

// Reads `path` (empty: defaults only), applies each "a.b=value" override in order (value is YAML:
// 3, 1e-4, true, [a, b], text), validates. Throws chart::Error naming the key and its source.
Config load_config(const std::string& path, const std::vector<std::string>& overrides);
// The resolved configuration as YAML; load_config() of it gives back the same Config.
std::string config_to_yaml(const Config& config);
// Every key as a dotted path ("train.steps"), in declaration order.
std::vector<std::string> config_keys();
// Cross-key checks (d_model divisible by n_heads, ...); load_config() calls it.
void validate(const Config& config);

}  // namespace chart
