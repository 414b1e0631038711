// FHIR R4 resources -> MEDS rows, by a mapping from code systems to MEDS codes (serve.fhir_mapping,
// YAML; built-in defaults below), so a record sent from an EHR reads like the training data's ETL:
//
//   systems:                                        # a coding's system -> a MEDS code template
//     http://hl7.org/fhir/sid/icd-10-cm: "DIAGNOSIS//ICD//10//{code_nodot}"
//     http://loinc.org: "LAB//{code}//{unit}"
//   codes:                                          # exact codings first: "system|code" -> MEDS code
//     "http://loinc.org|4548-4": "LAB//HbA1c//%"
//
// {code} is the coding's code, {code_nodot} the same without dots (MEDS ICD codes have none),
// {unit} the Observation's valueQuantity unit. Read: Patient (gender -> GENDER//M|F, birthDate ->
// MEDS_BIRTH), Condition (onset or recorded date), Observation (effective time, valueQuantity),
// MedicationRequest (authoredOn), Procedure (performed time), Encounter (class at period start).
// A resource with no mapped coding or no time is counted as unmapped, never guessed.
#pragma once
#include <map>
#include <string>

#include "core/json.h"
#include "serve/patient.h"

namespace chart::serve {

struct FhirMapping {
  std::map<std::string, std::string> systems;
  std::map<std::string, std::string> codes;
  static FhirMapping builtin();
  // The built-in mapping with the file's entries added (and taking precedence); chart::Error naming it.
  static FhirMapping load(const std::string& path);
};

// `resources`: a Bundle (entry[].resource), a list of resources, or a CDS Hooks prefetch object
// (whose values are resources or Bundles). ApiError 400 when it is none of those.
PatientRecord record_from_fhir(const Json& resources, const FhirMapping& mapping, int64_t prediction_time_us);

}  // namespace chart::serve
