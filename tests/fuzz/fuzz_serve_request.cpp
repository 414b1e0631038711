// libFuzzer target for what `chart serve` reads from the network before any model sees it: the
// JSON body, /v1/predict's MEDS rows (serve::parse_patient) and FHIR resources
// (serve::record_from_fhir with the built-in mapping), then the rows the tokenizer would get
// (serve::to_subject). Each must succeed or throw serve::ApiError; the rows handed on must be
// the record's own, static rows first and the rest in time order, none after prediction_time.
#include <cstdint>
#include <string>

#include "core/json.h"
#include "serve/api_error.h"
#include "serve/fhir_input.h"
#include "serve/patient.h"

namespace {

void check_subject(const chart::serve::PatientRecord& r) {
  int64_t dropped = 0;
  const chart::data::Subject s = chart::serve::to_subject(r, dropped);
  if (s.events.size() + static_cast<size_t>(dropped) != r.events.size()) __builtin_trap();
  bool timed = false;
  int64_t last = INT64_MIN;
  for (const auto& e : s.events) {
    if (timed && !e.has_time) __builtin_trap();  // a static row after a timed one
    if (e.has_time) {
      if (e.time_us < last || e.time_us > r.prediction_time_us) __builtin_trap();
      timed = true;
      last = e.time_us;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const chart::serve::FhirMapping mapping = chart::serve::FhirMapping::builtin();
  nlohmann::json body;
  try {
    body = nlohmann::json::parse(std::string(reinterpret_cast<const char*>(data), size));
  } catch (const nlohmann::json::exception&) {
    return 0;
  }
  try {
    check_subject(chart::serve::parse_patient(body));
  } catch (const chart::serve::ApiError&) {
  }
  try {
    check_subject(chart::serve::record_from_fhir(body, mapping, 1600000000000000));
  } catch (const chart::serve::ApiError&) {
  }
  return 0;
}
