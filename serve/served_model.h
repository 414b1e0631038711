// One served task: a fine-tuned checkpoint (its backbone and classification head), the vocabulary
// and time bins it was trained with, and a batcher that runs its forward passes. A request's
// record is tokenized on the request's thread exactly as `chart prepare` would, cut at its
// prediction time as `chart predict` cuts examples, then batched with whatever else is waiting.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "core/config.h"
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
  double coverage() const { return events > 0 ? 1.0 - static_cast<double>(unknown) / events : 0.0; }
};

class ServedModel {
 public:
  // Throws chart::Error naming the checkpoint when it is not a fine-tuned one.
  ServedModel(std::string task, const std::string& checkpoint, const Config& cfg,
              std::function<void(size_t)> on_batch);
  const std::string& task() const { return task_; }
  const std::string& checkpoint() const { return checkpoint_; }  // the directory that was loaded
  const std::string& model_sha256() const { return sha256_; }    // of its SHA256SUMS: the version
  const std::string& model_card_json() const { return card_json_; }
  std::optional<int64_t> horizon_us() const { return horizon_us_; }  // from a "_365d" task name suffix
  int64_t context() const { return context_; }

  // Tokenizes on the calling thread, then waits for the batch. Throws ApiError (422) when
  // nothing of the record is at or before prediction_time.
  TaskPrediction predict(const PatientRecord& record) const;

 private:
  std::vector<double> run_batch(const std::vector<BatchJob*>& jobs);
  std::string task_, checkpoint_, sha256_, card_json_;
  std::optional<int64_t> horizon_us_;
  Pretrained pre_;
  data::Vocab vocab_;
  data::TimeBins bins_;
  DeviceChoice dev_;
  ClinicalTransformer model_{nullptr};
  int64_t context_ = 0;
  std::unique_ptr<Batcher> batcher_;  // last: its worker stops before the model goes
};

}  // namespace chart::serve
