#include "serve/served_model.h"

#include <fmt/format.h>

#include "core/files.h"
#include "core/sha256.h"
#include "data/examples.h"
#include "data/timeline.h"
#include "data/tokenizer.h"
#include "serve/api_error.h"
#include "train/checkpoint/model_card.h"
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

}  // namespace

ServedModel::ServedModel(std::string task, const std::string& checkpoint, const Config& cfg,
                         std::function<void(size_t)> on_batch)
    : task_(std::move(task)),
      horizon_us_(horizon_of(task_)),
      pre_(load_pretrained(checkpoint)),
      vocab_(load_vocab(pre_)),
      bins_(data::time_bin_edges(vocab_.time_names(), checkpoint)),
      dev_(choose_device(cfg.train.device, cfg.train.precision)) {
  checkpoint_ = pre_.dir.string();
  sha256_ = version_of(pre_);
  card_json_ = card_of(pre_);
  model_ = load_classifier(pre_, dev_);
  context_ = finetune_context(pre_.config);
  batcher_ = std::make_unique<Batcher>(
      static_cast<size_t>(cfg.serve.batch_size), cfg.serve.batch_wait_ms,
      [this](const std::vector<BatchJob*>& jobs) { return run_batch(jobs); }, std::move(on_batch));
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
  out.events = counts.events;
  out.unknown = counts.unknown;
  out.tokens = static_cast<int64_t>(n);
  out.probability = arrival.submit(std::move(job)).get();
  return out;
}

std::vector<double> ServedModel::run_batch(const std::vector<BatchJob*>& jobs) {
  data::ExampleBatch b = data::empty_batch(static_cast<int64_t>(jobs.size()), context_);
  for (size_t r = 0; r < jobs.size(); ++r)
    data::fill_row(b, static_cast<int64_t>(r), jobs[r]->tokens.data(), jobs[r]->times.data(),
                   static_cast<int64_t>(jobs[r]->tokens.size()), jobs[r]->birth_us);
  return classify_batch(model_, b, dev_);
}

}  // namespace chart::serve
