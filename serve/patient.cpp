#include "serve/patient.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "core/utc_time.h"
#include "serve/api_error.h"

namespace chart::serve {
namespace {

}  // namespace

int64_t parse_time(const Json& v, const std::string& where) {
  if (!v.is_string()) bad_field(fmt::format("{} must be an ISO 8601 time string (e.g. \"2020-01-31T08:00:00Z\")", where));
  const auto t = parse_utc(v.get<std::string>());
  if (!t) bad_field(fmt::format("{} '{}' is not an ISO 8601 time (e.g. \"2020-01-31T08:00:00Z\")", where,
                                v.get<std::string>().substr(0, 64)));
  return *t;
}

std::string parse_subject_id(const Json& v) {
  if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
  if (v.is_string() && !v.get<std::string>().empty() && v.get<std::string>().size() <= 128) return v.get<std::string>();
  bad_field("subject_id must be an integer or a string of 1-128 characters");
}

namespace {

PatientEvent parse_event(const Json& row, size_t i) {
  const std::string where = fmt::format("events[{}]", i);
  if (!row.is_object()) bad_field(where + " must be an object with code, time and numeric_value");
  PatientEvent e;
  const auto code = row.find("code");
  if (code == row.end() || !code->is_string() || code->get<std::string>().empty())
    bad_field(where + ".code must be a non-empty string (a MEDS code, e.g. \"DIAGNOSIS//ICD//10//I10\")");
  e.code = code->get<std::string>();
  if (e.code.size() > 512) bad_field(where + ".code is longer than 512 characters");
  const auto time = row.find("time");
  if (time != row.end() && !time->is_null()) e.time_us = parse_time(*time, where + ".time");
  const auto value = row.find("numeric_value");
  if (value != row.end() && !value->is_null()) {
    if (!value->is_number()) bad_field(where + ".numeric_value must be a number or null");
    const double v = value->get<double>();
    if (!std::isfinite(v) || std::fabs(v) > 3.4e38) bad_field(where + ".numeric_value must be a finite number");
    e.value = static_cast<float>(v);
  }
  return e;
}

}  // namespace

PatientRecord parse_patient(const Json& body) {
  if (!body.is_object()) bad_field("the body must be a JSON object with subject_id, prediction_time and events");
  PatientRecord r;
  const auto id = body.find("subject_id");
  if (id == body.end()) bad_field("subject_id is missing");
  r.subject = parse_subject_id(*id);
  const auto pt = body.find("prediction_time");
  if (pt == body.end()) bad_field("prediction_time is missing");
  r.prediction_time_us = parse_time(*pt, "prediction_time");
  const auto events = body.find("events");
  if (events == body.end() || !events->is_array()) bad_field("events must be an array of MEDS rows");
  if (events->size() > kMaxEvents)
    throw ApiError(413, "too_many_events", fmt::format("events has {} rows; at most {} are accepted", events->size(), kMaxEvents));
  r.events.reserve(events->size());
  for (size_t i = 0; i < events->size(); ++i) r.events.push_back(parse_event((*events)[i], i));
  return r;
}

data::Subject to_subject(const PatientRecord& record, int64_t& dropped) {
  std::vector<const PatientEvent*> kept;
  dropped = 0;
  for (const auto& e : record.events) {
    if (e.time_us && *e.time_us > record.prediction_time_us) ++dropped;
    else kept.push_back(&e);
  }
  // Static rows first, then time order; rows at the same time keep the caller's order.
  std::stable_sort(kept.begin(), kept.end(), [](const PatientEvent* a, const PatientEvent* b) {
    if (a->time_us.has_value() != b->time_us.has_value()) return !a->time_us.has_value();
    return a->time_us && *a->time_us < *b->time_us;
  });
  data::Subject s;
  s.events.reserve(kept.size());
  for (const PatientEvent* e : kept) {
    data::Event ev;
    ev.code = e->code;
    ev.has_time = e->time_us.has_value();
    ev.time_us = e->time_us.value_or(0);
    ev.has_value = e->value.has_value();
    ev.value = e->value.value_or(0.0f);
    s.events.push_back(ev);
  }
  return s;
}

}  // namespace chart::serve
