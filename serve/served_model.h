// One served task: a checkpoint, the vocabulary and time bins it was trained with, and a batcher
// that runs its forward passes. A fine-tuned checkpoint answers with its classification head; a
// pretrained one answers zero-shot, from futures sampled by the inference engine (infer/engine.h)
// and scored on the task's outcome codes within its horizon, as `chart predict` does, with an
// interval. A request's record is tokenized on the request's thread exactly as `chart prepare`
// would, cut at its prediction time as `chart predict` cuts examples, then batched with whatever
// else is waiting.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "core/config.h"
#include "infer/engine.h"
#include "infer/sampling.h"
#include "data/time_bins.h"
#include "data/vocab.h"
#include "model/device.h"
#include "model/transformer.h"
#include "serve/batcher.h"
#include "serve/patient.h"
#include "train/checkpoint/pretrained.h"

namespace chart::serve {

struct TaskPrediction {
  double probability = 0;
  int64_t events = 0;         // rows the model read (static rows included)
  int64_t unknown = 0;        // of them, rows whose code the model has no token for
  int64_t after_prediction_time = 0;  // rows later than prediction_time (not read)
  int64_t tokens = 0;         // the prefix's tokens, before truncation to the context
  std::optional<std::pair<double, double>> interval;  // 95%, zero-shot tasks only
  int64_t samples = 0;        // sampled futures behind a zero-shot probability
  double coverage() const { return events > 0 ? 1.0 - static_cast<double>(unknown) / events : 0.0; }
};

// What a zero-shot task scores: an outcome code among `outcome_codes` within `horizon`.
struct ZeroShotTask {
  std::vector<std::string> outcome_codes;
  std::string horizon;
};

class ServedModel {
 public:
  // A fine-tuned checkpoint when zero_shot is empty, a pretrained one otherwise; chart::Error
  // naming the checkpoint when it is the other kind.
  ServedModel(std::string task, const std::string& checkpoint, const Config& cfg,
              std::function<void(size_t)> on_batch, std::optional<ZeroShotTask> zero_shot = std::nullopt);
  const std::string& task() const { return task_; }
  const std::string& checkpoint() const { return checkpoint_; }  // the directory that was loaded
  const std::string& model_sha256() const { return sha256_; }    // of its SHA256SUMS: the version
  const std::string& model_card_json() const { return card_json_; }
  // Zero-shot: the configured horizon; fine-tuned: a "_365d" task name suffix, when there is one.
  std::optional<int64_t> horizon_us() const { return horizon_us_; }
  int64_t context() const { return context_; }  // tokens of the record the model reads
  bool zero_shot() const { return zero_shot_.has_value(); }
  const std::vector<std::string>& outcome_codes() const;  // zero-shot only
  int64_t samples() const { return engine_.samples; }     // zero-shot only

  // Tokenizes on the calling thread, then waits for the batch. Throws ApiError (422) when
  // nothing of the record is at or before prediction_time.
  TaskPrediction predict(const PatientRecord& record) const;

 private:
  std::vector<BatchResult> run_batch(const std::vector<BatchJob*>& jobs);
  std::vector<BatchResult> classify(const std::vector<BatchJob*>& jobs);
  std::vector<BatchResult> sample_futures(const std::vector<BatchJob*>& jobs);
  void open_sampler(const Config& cfg);
  std::string task_, checkpoint_, sha256_, card_json_;
  std::optional<ZeroShotTask> zero_shot_;
  std::optional<int64_t> horizon_us_;
  Pretrained pre_;
  data::Vocab vocab_;
  data::TimeBins bins_;
  DeviceChoice dev_;
  ClinicalTransformer model_{nullptr};
  int64_t context_ = 0;
  TokenRoles roles_;             // zero-shot: what each sampled token means
  infer::EngineOptions engine_;  // zero-shot: samples, horizon, budget
  bool expected_estimator_ = true;
  std::unique_ptr<Batcher> batcher_;  // last: its worker stops before the model goes
};

}  // namespace chart::serve
