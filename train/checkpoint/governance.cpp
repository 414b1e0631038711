#include "train/checkpoint/governance.h"

#include <yaml-cpp/yaml.h>

#include <filesystem>

#include "core/error.h"
#include "core/files.h"
#include "core/sha256.h"

namespace chart {
namespace fs = std::filesystem;

const std::vector<GovernanceField>& governance_fields() {
  static const std::vector<GovernanceField> fields = {
      {"model_name", "the name the institution gives the model"},
      {"developer", "who developed the model (institution, team)"},
      {"intended_use", "the clinical question, the setting and the decision the model's output supports"},
      {"intended_users", "who reads the output (roles) and in which workflow"},
      {"target_population", "the patients the model is meant for (care setting, age, condition)"},
      {"out_of_scope", "uses the model must not be put to: populations, settings, decisions"},
      {"clinical_risk_level", "the harm a wrong output can do in the intended use, as the institution rates it"},
      {"regulatory_status", "e.g. research use only, or the device clearance it holds"},
      {"data_sources", "where the training records come from: institution, systems, extraction, de-identification"},
      {"inclusion_criteria", "which patients and records were included or excluded, and why"},
      {"evaluation_data", "where the evaluation records come from and how they relate to the training data"},
      {"limitations", "known limitations and failure modes: populations underrepresented, data gaps, drift"},
      {"known_biases", "known biases and ethical considerations, and what was done about them"},
      {"patient_disclosure", "whether patients are told or asked for consent when the model is used"},
      {"human_oversight", "how a person reviews, overrides or stops the model's output"},
      {"maintenance", "who monitors the model in use, how often it is re-evaluated, and when it is retired"},
      {"funding_source", "who funded the model's development"},
      {"stakeholders_consulted", "clinicians, patients and others consulted in its design"},
      {"contact", "who answers for the model: a team or role and an address"},
  };
  return fields;
}

namespace {

bool known_field(const std::string& key) {
  for (const auto& f : governance_fields())
    if (key == f.key) return true;
  return false;
}

std::string field_list() {
  std::string out;
  for (const auto& f : governance_fields()) out += (out.empty() ? "" : ", ") + std::string(f.key);
  return out;
}

// A field's value: text, or a list of texts; null when empty (then it is still to be filled).
Json field_value(const YAML::Node& n, const std::string& where) {
  if (n.IsNull()) return Json();
  if (n.IsScalar()) return n.Scalar().empty() ? Json() : Json(n.Scalar());
  if (n.IsSequence()) {
    Json list = Json::array();
    for (const auto& item : n) {
      if (!item.IsScalar()) fail("{}: every item must be text", where);
      if (!item.Scalar().empty()) list.push_back(item.Scalar());
    }
    return list.empty() ? Json() : list;
  }
  fail("{}: must be text or a list of texts, not a mapping", where);
}

YAML::Node load_yaml_file(const fs::path& file) {
  if (!fs::exists(file))
    throw Error(fmt::format("card.governance: {} does not exist", file.string()),
                "write the governance file (docs/governance.md lists its keys) or leave card.governance empty");
  try {
    return YAML::Load(read_file(file));
  } catch (const YAML::Exception& e) {
    fail("{}: not valid YAML: {}", file.string(), e.what());
  }
}

}  // namespace

std::string governance_section(const std::string& path) {
  Json g = Json::object();
  g["from"] = nullptr;
  g["sha256"] = nullptr;
  if (!path.empty()) {
    const fs::path file = fs::weakly_canonical(fs::absolute(path));
    const YAML::Node doc = load_yaml_file(file);
    if (!doc.IsMap() && !doc.IsNull()) fail("{}: must be a mapping of governance fields ({})", file.string(), field_list());
    for (const auto& kv : doc) {
      const std::string key = kv.first.Scalar();
      if (!known_field(key))
        throw Error(fmt::format("{}: unknown governance field '{}'", file.string(), key), "the fields are " + field_list());
      g[key] = field_value(kv.second, fmt::format("{}: {}", file.string(), key));
    }
    g["from"] = file.string();
    g["sha256"] = sha256_hex(read_file(file));
  }
  Json missing = Json::array();
  for (const auto& f : governance_fields()) {
    if (!g.contains(f.key)) g[f.key] = nullptr;
    if (g[f.key].is_null()) missing.push_back(f.key);
  }
  g["to_be_filled"] = missing;
  return dump_json(g);
}

std::string with_governance(const std::string& card_json, const std::string& path) {
  Json card = parse_json(card_json, "model card");
  if (!card.is_object()) fail("model card: not a JSON object");
  if (!path.empty() || !card.contains("governance")) card["governance"] = parse_json(governance_section(path), "governance");
  return dump_json(card);
}

}  // namespace chart
