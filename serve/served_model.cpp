#include "serve/served_model.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <charconv>

#include "core/error.h"
#include "core/files.h"
#include "core/log.h"
#include "core/time.h"
#include "core/sha256.h"
#include "data/examples.h"
#include "data/timeline.h"
#include "data/tokenizer.h"
#include "serve/api_error.h"
#include "train/checkpoint/model_card.h"
#include "infer/risk.h"
#include "kernels/attention_dispatch.h"
#include "train/interop/load_pretrained.h"
#include "train/interop/vocab_source.h"
#include "train/recipes/classify.h"

namespace chart::serve {
namespace fs = std::filesystem;
namespace {

// "mortality_365d" -> 365 days: the MEDS-DEV task names' horizon suffix, when there is one.
std::optional<int64_t> horizon_of(const std::string& task) {
  const auto u = task.rfind('_');
  if (u == std::string::npos || u + 2 > task.size()) return std::nullopt;
  try {
    return data::parse_duration(task.substr(u + 1), task);
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

data::Vocab load_vocab(const Pretrained& pre) {
  return data::Vocab::load(checkpoint_vocab(pre, "", "serve.models"));
}

std::string version_of(const Pretrained& pre) {
  const fs::path sums = pre.dir / "SHA256SUMS";
  return fs::exists(sums) ? sha256_file(sums) : sha256_hex(pre.vocab_hash + std::to_string(pre.step));
}

std::string card_of(const Pretrained& pre) {
  try {
    return read_model_card_json(pre.dir);
  } catch (const std::exception&) {
    return "{}";
  }
}

// A request's subject names its random stream as `chart predict`'s subject_id does: a numeric id
// is that number; any other id (a FHIR Patient id) is hashed (FNV-1a, the same on every build).
int64_t subject_stream(const std::string& subject, int64_t prediction_time_us) {
  int64_t id = 0;
  const char* end = subject.data() + subject.size();
  const auto [ptr, ec] = std::from_chars(subject.data(), end, id);
  if (subject.empty() || ec != std::errc() || ptr != end) {
    uint64_t h = 1469598103934665603ull;
    for (unsigned char c : subject) h = (h ^ c) * 1099511628211ull;
    id = static_cast<int64_t>(h);
  }
  return prompt_stream(id, prediction_time_us);
}

}  // namespace

ServedModel::ServedModel(std::string task, const std::string& checkpoint, const Config& cfg,
                         std::function<void(size_t)> on_batch, std::optional<ZeroShotTask> zero_shot)
    : task_(std::move(task)),
      zero_shot_(std::move(zero_shot)),
      horizon_us_(horizon_of(task_)),
      pre_(load_pretrained(checkpoint)),
      vocab_(load_vocab(pre_)),
      bins_(data::time_bin_edges(vocab_.time_names(), checkpoint)),
      dev_(choose_device(cfg.train.device, cfg.train.precision)) {
  checkpoint_ = pre_.dir.string();
  sha256_ = version_of(pre_);
  card_json_ = card_of(pre_);
  const bool head = pre_.tensors.count("cls_head.weight") > 0;
  if (zero_shot_ && head)
    fail("serve.zero_shot names task {}, but {} is a fine-tuned checkpoint (its head answers; drop the zero_shot "
         "entry, or serve the pretraining checkpoint)", task_, checkpoint_);
  if (!zero_shot_ && !head)
    fail("serve.models: {} has no classification head (a pretrained checkpoint): to serve task {} zero-shot, say "
         "what it scores, e.g. --set 'serve.zero_shot=[{}=MEDS_DEATH@365d]'", checkpoint_, task_, task_);
  if (head && !head_tasks(pre_).empty())
    fail("serve.models: {} is a multi-task checkpoint (tasks [{}]); chart serve answers single-task heads", checkpoint_,
         fmt::join(head_tasks(pre_), ", "));
  if (const HeadClasses hc = head ? head_classes(pre_) : HeadClasses{}; hc.multiclass() || hc.regression() || hc.time_to_event())
    fail("serve.models: {} has a {} head; chart serve answers boolean tasks (one risk each) only", checkpoint_,
         hc.describe());
  if (zero_shot_) {
    open_sampler(cfg);
  } else {
    model_ = load_classifier(pre_, dev_);
    context_ = finetune_context(pre_.config);
  }
  batcher_ = std::make_unique<Batcher>(
      static_cast<size_t>(cfg.serve.batch_size), cfg.serve.batch_wait_ms,
      [this](const std::vector<BatchJob*>& jobs) { return run_batch(jobs); }, std::move(on_batch));
}

const std::vector<std::string>& ServedModel::outcome_codes() const {
  static const std::vector<std::string> none;
  return zero_shot_ ? zero_shot_->outcome_codes : none;
}

// The pretrained model and the engine's options: generate.* with the task's outcome and horizon.
void ServedModel::open_sampler(const Config& cfg) {
  GenerateConfig g = cfg.generate;
  g.outcome_codes = zero_shot_->outcome_codes;
  g.horizon = zero_shot_->horizon;
  const int64_t horizon = data::parse_duration(g.horizon, "serve.zero_shot " + task_);
  if (horizon_us_ && *horizon_us_ != horizon)
    fail("serve.zero_shot: task {} is named for a horizon of {} days but scores {} ({} days)", task_,
         *horizon_us_ / 86400000000.0, g.horizon, horizon / 86400000000.0);
  horizon_us_ = horizon;
  roles_ = token_roles(vocab_, g);  // an outcome code the vocabulary lacks stops here
  const ModelConfig mc = checkpoint_model(pre_, cfg.model);
  model_ = ClinicalTransformer(mc, pre_.vocab_size);
  copy_pretrained_weights(pre_, *model_);
  model_->to(dev_.device);
  model_->eval();
  roles_.banned = roles_.banned.to(dev_.device);
  engine_.slots = g.batch_size;
  engine_.samples = g.samples;
  engine_.context = mc.context;
  engine_.prompt_tokens = g.prompt_tokens > 0 ? g.prompt_tokens : mc.context / 2;
  if (engine_.prompt_tokens >= mc.context)
    fail("generate.prompt_tokens ({}) must be below the model's context {}", engine_.prompt_tokens, mc.context);
  engine_.max_new_tokens = g.max_new_tokens > 0 ? g.max_new_tokens : 8 * mc.context;
  engine_.horizon_us = horizon;
  engine_.temperature = g.temperature;
  engine_.top_k = g.top_k;
  engine_.seed = static_cast<uint64_t>(cfg.train.seed);
  engine_.slide = g.window == "slide";
  expected_estimator_ = g.estimator == "expected";
  context_ = engine_.prompt_tokens;
  info("serve: task {} zero-shot: P(an outcome code of [{}] within {}), {} samples, {} estimator; {}", task_,
       fmt::join(g.outcome_codes, ", "), g.horizon, g.samples, g.estimator,
       kernels::describe_decode_path(dev_.device, dev_.compute_dtype, mc.d_model / mc.n_heads, mc.n_heads,
                                     mc.n_kv_heads > 0 ? mc.n_kv_heads : mc.n_heads,
                                     kernels::attention_mode(mc.attention)));
}

TaskPrediction ServedModel::predict(const PatientRecord& record) const {
  Batcher::Arrival arrival(*batcher_);  // a forming batch waits for this request's tokens
  TaskPrediction out;
  const data::Subject subject = to_subject(record, out.after_prediction_time);
  data::Timeline timeline;
  data::build_timeline(subject, /*with_text=*/false, timeline);
  BatchJob job;
  data::TokenizeCounts counts;
  data::Tokenizer(vocab_, bins_).tokenize(timeline, job.tokens, job.times, counts);
  // The prefix `chart predict` would see: every token up to the first later one.
  size_t n = 0;
  while (n < job.times.size() && job.times[n] <= record.prediction_time_us) ++n;
  if (subject.events.empty() || n == 0)
    throw ApiError(422, "empty_record", "no event of the record is at or before prediction_time");
  job.tokens.resize(n);
  job.times.resize(n);
  job.birth_us = timeline.birth_us;
  job.prediction_time_us = record.prediction_time_us;
  job.stream = subject_stream(record.subject, record.prediction_time_us);
  out.events = counts.events;
  out.unknown = counts.unknown;
  out.tokens = static_cast<int64_t>(n);
  const BatchResult r = arrival.submit(std::move(job)).get();
  out.probability = r.probability;
  out.interval = r.interval;
  out.samples = r.samples;
  return out;
}

std::vector<BatchResult> ServedModel::run_batch(const std::vector<BatchJob*>& jobs) {
  return zero_shot_ ? sample_futures(jobs) : classify(jobs);
}

// Each job's prompt is its last prompt_tokens tokens, as `chart predict` prompts a label row; the
// engine runs the batch's prompts together, `samples` futures each.
std::vector<BatchResult> ServedModel::sample_futures(const std::vector<BatchJob*>& jobs) {
  std::vector<infer::Prompt> prompts;
  for (const BatchJob* j : jobs) {
    const size_t n = j->tokens.size(), from = n - std::min(n, static_cast<size_t>(engine_.prompt_tokens));
    infer::Prompt p;
    for (size_t i = from; i < n; ++i) {
      p.tokens.push_back(j->tokens[i]);
      p.ages.push_back(age_years(j->times[i], j->birth_us));
    }
    p.age = micros_to_years(double(j->times[n - 1] - j->birth_us));
    p.elapsed_us = double(j->times[n - 1] - j->prediction_time_us);
    p.row = j->stream;
    prompts.push_back(std::move(p));
  }
  infer::EngineStats stats;
  const auto results = infer::generate(model_, roles_, engine_, dev_, prompts, stats);
  std::vector<BatchResult> out;
  for (size_t x = 0; x < prompts.size(); ++x) {
    const infer::RiskEstimate e = infer::estimate_risk(results.data() + x * size_t(engine_.samples), engine_.samples);
    if (expected_estimator_)
      out.push_back({e.expected, std::make_pair(e.expected_low, e.expected_high), e.samples});
    else
      out.push_back({e.hit_fraction, std::make_pair(e.hit_low, e.hit_high), e.samples});
  }
  return out;
}

std::vector<BatchResult> ServedModel::classify(const std::vector<BatchJob*>& jobs) {
  data::ExampleBatch b = data::empty_batch(static_cast<int64_t>(jobs.size()), context_);
  for (size_t r = 0; r < jobs.size(); ++r)
    data::fill_row(b, static_cast<int64_t>(r), jobs[r]->tokens.data(), jobs[r]->times.data(),
                   static_cast<int64_t>(jobs[r]->tokens.size()), jobs[r]->birth_us);
  std::vector<BatchResult> out;
  for (double p : classify_batch(model_, b, dev_)) {
    BatchResult r;
    r.probability = p;
    out.push_back(r);
  }
  return out;
}

}  // namespace chart::serve
