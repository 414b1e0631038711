// A patient's record as a request brings it: MEDS rows (code, time, numeric_value) and the time
// the prediction is made at. `POST /v1/predict` sends the rows as JSON; FHIR bundles (fhir_input.h)
// are mapped to the same rows. Validation errors name the field and the row.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/json.h"
#include "data/meds_event.h"

namespace chart::serve {

struct PatientEvent {
  std::string code;
  std::optional<int64_t> time_us;  // none: a static row (sex, ...)
  std::optional<float> value;      // numeric_value
};

struct PatientRecord {
  std::string subject;              // the caller's patient id, echoed back (FHIR ids are strings)
  int64_t prediction_time_us = 0;
  std::vector<PatientEvent> events;
  int64_t unmapped = 0;             // FHIR resources that gave no MEDS row (fhir_input.h)
};

// Requests carry at most this many rows: a bigger record is a 413, not an hour of tokenizing.
constexpr size_t kMaxEvents = 200000;

// A time field (ISO 8601) and a subject id (an integer or a string); ApiError naming `where`.
int64_t parse_time(const Json& v, const std::string& where);
std::string parse_subject_id(const Json& v);

// {"subject_id": 7 | "7", "prediction_time": "2020-01-31T00:00:00Z",
//  "events": [{"time": "...", "code": "...", "numeric_value": 1.5}, ...]}; throws ApiError.
PatientRecord parse_patient(const Json& body);

// The rows at or before prediction_time (static rows included), in time order, as the
// tokenizer's Subject; the strings are views into `record`. `dropped` counts rows after it.
data::Subject to_subject(const PatientRecord& record, int64_t& dropped);

}  // namespace chart::serve
