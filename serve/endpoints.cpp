#include "serve/endpoints.h"

#include <cstring>

#include <fmt/format.h>

#include "core/utc_time.h"
#include "serve/answers.h"
#include "serve/api_error.h"
#include "serve/fhir_input.h"

namespace chart::serve {
namespace {

constexpr const char* kOrderSelect = "-order-select";

const ServedModel& usable_model(CallContext& call, const std::string& task) {
  call.tasks_used.push_back(task);
  // A client that may not use a task learns nothing about whether it exists.
  Access::authorize(call.client, task);
  const ServedModel* m = call.deployment.find(task);
  if (!m) throw ApiError(404, "unknown_task", fmt::format("no task {} is served (GET /cds-services lists them)", task));
  return *m;
}

std::vector<std::string> requested_tasks(const CallContext& call, const Json& body) {
  std::vector<std::string> tasks;
  const auto it = body.find("tasks");
  if (it != body.end() && !it->is_null()) {
    if (!it->is_array() || it->empty()) bad_field("tasks must be a non-empty list of task names");
    for (const auto& t : *it) {
      if (!t.is_string()) bad_field("tasks must be a list of task names (strings)");
      tasks.push_back(t.get<std::string>());
    }
    return tasks;
  }
  for (const auto& m : call.deployment.models)
    if (call.client.may_use(m->task())) tasks.push_back(m->task());
  if (tasks.empty()) throw ApiError(403, "forbidden_task", fmt::format("client {} may use none of the served tasks", call.client.id));
  return tasks;
}

PatientRecord record_of(const CallContext& call, const Json& body) {
  if (!body.is_object()) bad_field("the body must be a JSON object");
  if (!body.contains("fhir")) return parse_patient(body);
  if (body.contains("events")) bad_field("give events (MEDS rows) or fhir (a Bundle), not both");
  if (!body.contains("prediction_time")) bad_field("prediction_time is missing");
  PatientRecord r = record_from_fhir(body["fhir"], call.deployment.mapping, parse_time(body["prediction_time"], "prediction_time"));
  if (body.contains("subject_id")) r.subject = parse_subject_id(body["subject_id"]);
  if (r.subject.empty()) bad_field("subject_id is missing (and the FHIR input has no Patient with an id)");
  return r;
}

// "<task>" is the task's patient-view service, "<task>-order-select" its order-select one.
std::pair<std::string, std::string> task_and_hook(const std::string& service_id) {
  const size_t n = strlen(kOrderSelect);
  if (service_id.size() > n && service_id.compare(service_id.size() - n, n, kOrderSelect) == 0)
    return {service_id.substr(0, service_id.size() - n), "order-select"};
  return {service_id, "patient-view"};
}

}  // namespace

std::string model_card_url(const std::string& base_url, const std::string& task) {
  return base_url + "/v1/model-card/" + task;
}

Json predict(CallContext& call, const Json& body) {
  const std::vector<std::string> tasks = requested_tasks(call, body);
  std::vector<const ServedModel*> models;
  for (const auto& t : tasks) models.push_back(&usable_model(call, t));
  const PatientRecord record = record_of(call, body);
  Json out;
  out["request_id"] = call.request_id;
  out["subject_id"] = record.subject;
  out["prediction_time"] = format_utc(record.prediction_time_us);
  out["predictions"] = Json::array();
  out["risk_assessments"] = Json::array();
  for (const ServedModel* m : models) {
    const TaskPrediction p = m->predict(record);
    const Answer a{*m, record, p, call.request_id, model_card_url(call.base_url, m->task()),
                   call.deployment.cfg.serve.min_coverage};
    out["predictions"].push_back(prediction_json(a));
    out["risk_assessments"].push_back(risk_assessment(a));
  }
  if (body.contains("fhir")) out["unmapped_resources"] = record.unmapped;
  return out;
}

Json cds_discovery(const CallContext& call) {
  const std::string p = "{{context.patientId}}";
  const Json prefetch = {{"patient", "Patient/" + p},
                         {"conditions", "Condition?patient=" + p},
                         {"observations", "Observation?patient=" + p},
                         {"medications", "MedicationRequest?patient=" + p},
                         {"procedures", "Procedure?patient=" + p},
                         {"encounters", "Encounter?patient=" + p}};
  Json services = Json::array();
  for (const auto& m : call.deployment.models) {
    if (!call.client.may_use(m->task())) continue;
    for (const std::string hook : {"patient-view", "order-select"}) {
      Json s;
      s["hook"] = hook;
      s["id"] = hook == "patient-view" ? m->task() : m->task() + kOrderSelect;
      s["title"] = "chart: risk of " + m->task();
      s["description"] = fmt::format("The predicted probability of {} from the patient's record, by a {} chart "
                                     "model (version {}); its model card: {}",
                                     m->task(), m->zero_shot() ? "pretrained (zero-shot, with an interval)" : "fine-tuned",
                                     m->model_sha256().substr(0, 12), model_card_url(call.base_url, m->task()));
      s["prefetch"] = prefetch;
      services.push_back(s);
    }
  }
  return {{"services", services}};
}

Json cds_hook(CallContext& call, const std::string& service_id, const Json& body) {
  const auto [task, hook] = task_and_hook(service_id);
  const ServedModel& m = usable_model(call, task);
  if (!body.is_object()) bad_field("the body must be a CDS Hooks request object");
  if (body.value("hook", "") != hook) bad_field(fmt::format("hook must be \"{}\" for service {}", hook, service_id));
  if (!body.contains("hookInstance") || !body["hookInstance"].is_string()) bad_field("hookInstance must be a string");
  if (!body.contains("context") || !body["context"].is_object() || !body["context"].contains("patientId") ||
      !body["context"]["patientId"].is_string())
    bad_field("context.patientId must be a string");
  if (!body.contains("prefetch") || !body["prefetch"].is_object())
    throw ApiError(412, "prefetch_required", "this service reads the record from prefetch only (it does not call the "
                                             "FHIR server): send the prefetch templates of GET /cds-services");
  PatientRecord record = record_from_fhir(body["prefetch"], call.deployment.mapping, now_utc_us());
  record.subject = body["context"]["patientId"].get<std::string>();
  const TaskPrediction p = m.predict(record);
  const Answer a{m, record, p, call.request_id, model_card_url(call.base_url, m.task()),
                 call.deployment.cfg.serve.min_coverage};
  return {{"cards", Json::array({cds_card(a, hook)})}};
}

Json cds_feedback(CallContext& call, const std::string& service_id, const Json& body, Json& recorded) {
  const std::string task = task_and_hook(service_id).first;
  usable_model(call, task);
  if (!body.is_object() || !body.contains("feedback") || !body["feedback"].is_array() || body["feedback"].empty())
    bad_field("feedback must be a non-empty list of {card, outcome, outcomeTimestamp}");
  recorded = Json::array();
  for (size_t i = 0; i < body["feedback"].size(); ++i) {
    const Json& f = body["feedback"][i];
    const std::string where = fmt::format("feedback[{}]", i);
    if (!f.is_object() || !f.contains("card") || !f["card"].is_string()) bad_field(where + ".card must be a card uuid");
    const std::string outcome = f.value("outcome", "");
    if (outcome != "accepted" && outcome != "overridden")
      bad_field(where + ".outcome must be \"accepted\" or \"overridden\"");
    if (!f.contains("outcomeTimestamp") || !f["outcomeTimestamp"].is_string() ||
        !parse_utc(f["outcomeTimestamp"].get<std::string>()))
      bad_field(where + ".outcomeTimestamp must be an ISO 8601 time");
    Json r = {{"card", f["card"].get<std::string>().substr(0, 128)}, {"outcome", outcome},
              {"outcomeTimestamp", f["outcomeTimestamp"]}};
    if (f.contains("overrideReason") && f["overrideReason"].is_object() && f["overrideReason"].contains("reason") &&
        f["overrideReason"]["reason"].is_object())
      r["overrideReason"] = f["overrideReason"]["reason"].value("code", "");
    recorded.push_back(r);
  }
  return Json::object();
}

}  // namespace chart::serve
