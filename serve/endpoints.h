// The service's endpoints as functions of JSON: what /v1/predict, the CDS Hooks services and
// their feedback answer, with the HTTP left to server.cpp. Each throws ApiError for a request
// it cannot answer (the field at fault named, nothing of the record echoed).
#pragma once
#include <string>

#include "core/json.h"
#include "serve/access.h"
#include "serve/deployment.h"

namespace chart::serve {

struct CallContext {
  const Deployment& deployment;
  const Client& client;
  std::string request_id;
  std::string base_url;  // links in answers: serve.public_url, else the address bound
  std::vector<std::string>& tasks_used;  // the tasks asked for, as the audit log records them
};

// POST /v1/predict: {"subject_id", "prediction_time", "events": [...]} or, instead of events,
// "fhir": a Bundle; optional "tasks": [...] (default: every task the client may use).
Json predict(CallContext& call, const Json& body);

// GET /cds-services: one patient-view service per task ("<task>") and one order-select ("<task>-order-select"),
// those the client may use.
Json cds_discovery(const CallContext& call);
// POST /cds-services/{id}: the hook's prefetch mapped to MEDS rows, predicted now; {"cards": [...]}.
Json cds_hook(CallContext& call, const std::string& service_id, const Json& body);
// POST /cds-services/{id}/feedback: checked and recorded (the audit log); {}.
Json cds_feedback(CallContext& call, const std::string& service_id, const Json& body, Json& recorded);

std::string model_card_url(const std::string& base_url, const std::string& task);

}  // namespace chart::serve
