#include "serve/fhir_input.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include <fmt/format.h>

#include "core/error.h"
#include "core/files.h"
#include "core/utc_time.h"
#include "serve/api_error.h"

namespace chart::serve {
namespace {

std::string fill(std::string tmpl, const std::string& key, const std::string& value) {
  for (size_t p; (p = tmpl.find(key)) != std::string::npos;) tmpl.replace(p, key.size(), value);
  return tmpl;
}

std::string str(const Json& j, const char* key) {
  const auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

// The first of these time fields present, as microseconds.
std::optional<int64_t> time_of(const Json& r, std::initializer_list<const char*> fields) {
  for (const char* f : fields) {
    std::string path = f;
    const Json* v = &r;
    for (size_t dot; v && (dot = path.find('.')) != std::string::npos; path = path.substr(dot + 1)) {
      const auto it = v->find(path.substr(0, dot));
      v = it != v->end() && it->is_object() ? &*it : nullptr;
    }
    if (!v) continue;
    const std::string text = str(*v, path.c_str());
    if (text.empty()) continue;
    if (auto t = parse_utc(text)) return t;
  }
  return std::nullopt;
}

struct Mapper {
  const FhirMapping& m;
  PatientRecord& out;

  // The MEDS code of the first mapped coding of a CodeableConcept (or of one Coding).
  std::optional<std::string> code_of(const Json& concept_or_coding, const std::string& unit) const {
    std::vector<const Json*> codings;
    if (concept_or_coding.contains("coding") && concept_or_coding["coding"].is_array())
      for (const auto& c : concept_or_coding["coding"]) codings.push_back(&c);
    else if (concept_or_coding.is_object())
      codings.push_back(&concept_or_coding);
    for (const Json* c : codings) {
      if (!c->is_object()) continue;
      const std::string system = str(*c, "system"), code = str(*c, "code");
      if (code.empty()) continue;
      if (auto e = m.codes.find(system + "|" + code); e != m.codes.end()) return e->second;
      if (auto s = m.systems.find(system); s != m.systems.end()) {
        if (s->second.find("{unit}") != std::string::npos && unit.empty()) continue;
        std::string nodot = code;
        nodot.erase(std::remove(nodot.begin(), nodot.end(), '.'), nodot.end());
        return fill(fill(fill(s->second, "{code_nodot}", nodot), "{code}", code), "{unit}", unit);
      }
    }
    return std::nullopt;
  }

  void add(std::optional<std::string> code, std::optional<int64_t> time, std::optional<float> value = std::nullopt) {
    if (!code || !time) {
      ++out.unmapped;
      return;
    }
    out.events.push_back({*code, time, value});
  }

  void patient(const Json& r) {
    if (out.subject.empty()) out.subject = str(r, "id");
    const std::string g = str(r, "gender");
    if (g == "male" || g == "female") out.events.push_back({g == "male" ? "GENDER//M" : "GENDER//F", std::nullopt, std::nullopt});
    if (auto b = time_of(r, {"birthDate"})) out.events.push_back({"MEDS_BIRTH", b, std::nullopt});
  }

  void resource(const Json& r) {
    const std::string type = str(r, "resourceType");
    const Json none = Json::object();
    auto field = [&](const char* k) -> const Json& { return r.contains(k) ? r[k] : none; };
    if (type == "Patient") return patient(r);
    if (type == "Condition") return add(code_of(field("code"), ""), time_of(r, {"onsetDateTime", "recordedDate"}));
    if (type == "Procedure")
      return add(code_of(field("code"), ""), time_of(r, {"performedDateTime", "performedPeriod.start"}));
    if (type == "MedicationRequest")
      return add(code_of(field("medicationCodeableConcept"), ""), time_of(r, {"authoredOn"}));
    if (type == "Encounter") return add(code_of(field("class"), ""), time_of(r, {"period.start"}));
    if (type == "Observation") {
      const Json& q = field("valueQuantity");
      std::optional<float> value;
      std::string unit;
      if (q.is_object() && q.contains("value") && q["value"].is_number() &&
          std::fabs(q["value"].get<double>()) < 3.4e38) {
        value = static_cast<float>(q["value"].get<double>());
        unit = !str(q, "unit").empty() ? str(q, "unit") : str(q, "code");
      }
      return add(code_of(field("code"), unit), time_of(r, {"effectiveDateTime", "effectivePeriod.start", "issued"}), value);
    }
    ++out.unmapped;  // a resource type the mapping does not read
  }

  void any(const Json& j, int depth) {
    if (depth > 3) bad_field("FHIR input nests Bundles deeper than 3 levels");
    if (j.is_array()) {
      for (const auto& r : j) any(r, depth + 1);
    } else if (j.is_object() && str(j, "resourceType") == "Bundle") {
      if (j.contains("entry") && j["entry"].is_array())
        for (const auto& e : j["entry"])
          if (e.is_object() && e.contains("resource")) any(e["resource"], depth + 1);
    } else if (j.is_object() && j.contains("resourceType")) {
      resource(j);
    } else if (j.is_object() && depth == 0) {  // a CDS Hooks prefetch: {"patient": {...}, "conditions": Bundle}
      for (const auto& [key, v] : j.items())
        if (!v.is_null()) any(v, depth + 1);
    } else if (!j.is_null()) {
      bad_field("FHIR input must be a Bundle, a list of resources or a prefetch object of them");
    }
  }
};

}  // namespace

FhirMapping FhirMapping::builtin() {
  FhirMapping m;
  m.systems = {
      {"http://hl7.org/fhir/sid/icd-10-cm", "DIAGNOSIS//ICD//10//{code_nodot}"},
      {"http://hl7.org/fhir/sid/icd-10", "DIAGNOSIS//ICD//10//{code_nodot}"},
      {"http://hl7.org/fhir/sid/icd-9-cm", "DIAGNOSIS//ICD//9//{code_nodot}"},
      {"http://www.cms.gov/Medicare/Coding/ICD10", "PROCEDURE//ICD//10//{code_nodot}"},
      {"http://loinc.org", "LAB//{code}//{unit}"},
      {"http://www.nlm.nih.gov/research/umls/rxnorm", "MEDICATION//RXNORM//{code}"},
      {"http://terminology.hl7.org/CodeSystem/v3-ActCode", "VISIT//{code}"},
  };
  m.codes = {
      {"http://terminology.hl7.org/CodeSystem/v3-ActCode|AMB", "VISIT//OUTPATIENT"},
      {"http://terminology.hl7.org/CodeSystem/v3-ActCode|IMP", "HOSPITAL_ADMISSION"},
  };
  return m;
}

FhirMapping FhirMapping::load(const std::string& path) {
  FhirMapping m = builtin();
  if (path.empty()) return m;
  try {
    const YAML::Node root = YAML::Load(read_file(path));
    for (const char* section : {"systems", "codes"}) {
      if (!root[section]) continue;
      if (!root[section].IsMap()) fail("{}: {} must be a mapping", path, section);
      auto& into = std::string(section) == "systems" ? m.systems : m.codes;
      for (const auto& kv : root[section]) into[kv.first.as<std::string>()] = kv.second.as<std::string>();
    }
  } catch (const YAML::Exception& e) {
    fail("{}: not a FHIR mapping (systems:, codes:): {}", path, e.what());
  }
  return m;
}

PatientRecord record_from_fhir(const Json& resources, const FhirMapping& mapping, int64_t prediction_time_us) {
  PatientRecord out;
  out.prediction_time_us = prediction_time_us;
  Mapper{mapping, out}.any(resources, 0);
  if (out.events.size() > kMaxEvents)
    throw ApiError(413, "too_many_events", fmt::format("the FHIR input maps to {} rows; at most {} are accepted",
                                                       out.events.size(), kMaxEvents));
  return out;
}

}  // namespace chart::serve
