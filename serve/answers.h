// A prediction in the shapes callers read: the plain JSON of /v1/predict, a FHIR R4
// RiskAssessment, and a CDS Hooks card. One place decides what a prediction says about itself
// (the model and its version, the record's coverage, the warnings), so the three never disagree.
#pragma once
#include <string>

#include "core/json.h"
#include "serve/patient.h"
#include "serve/served_model.h"

namespace chart::serve {

struct Answer {
  const ServedModel& model;
  const PatientRecord& record;
  const TaskPrediction& prediction;
  std::string request_id;
  std::string model_card_url;  // absolute
  double min_coverage = 0.9;
};

std::vector<std::string> warnings(const Answer& a);
Json prediction_json(const Answer& a);     // one task's entry in /v1/predict's "predictions"
Json risk_assessment(const Answer& a);     // FHIR R4 RiskAssessment
Json cds_card(const Answer& a, const std::string& hook);  // a CDS Hooks 2.0 card

}  // namespace chart::serve
