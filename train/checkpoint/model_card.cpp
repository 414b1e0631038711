#include "train/checkpoint/model_card.h"

#include "train/checkpoint/governance.h"

#include <yaml-cpp/yaml.h>

#include <cctype>
#include <cmath>
#include <ctime>

#include "core/error.h"
#include "core/files.h"
#include "core/json.h"
#include "core/log.h"
#include "core/sha256.h"
#include "core/utc_time.h"
#include "model/layers.h"
#include "model/transformer.h"

// Generated at build time by cmake/CodeVersion.cmake (build/generated/code_version.cpp).
extern "C" const char* chart_git_commit();
extern "C" const char* chart_git_dirty();

namespace chart {
namespace fs = std::filesystem;
namespace {

// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
bool is_json_number(const std::string& s) {
  size_t i = 0, n = s.size();
  auto digits = [&] {
    size_t start = i;
    while (i < n && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
    return i > start;
  };
  if (i < n && s[i] == '-') ++i;
  if (i < n && s[i] == '0') ++i;
  else if (!digits()) return false;
  if (i < n && s[i] == '.') {
    ++i;
    if (!digits()) return false;
  }
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < n && (s[i] == '+' || s[i] == '-')) ++i;
    if (!digits()) return false;
  }
  return i == n;
}

// A YAML node as JSON: quoted scalars stay strings; plain ones become numbers, true/false or null
// where they read as such (YAML's own typing of the config).
Json yaml_node_to_json(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Scalar: {
      const std::string& s = n.Scalar();
      if (n.Tag() == "!") return s;  // quoted in the source: a string
      if (s == "true" || s == "false") return s == "true";
      if (s == "null" || s == "~") return nullptr;
      if (is_json_number(s)) {  // keeps 12 an integer, 0.5 a double; 1e999 (no double) stays text
        Json x = Json::parse(s, nullptr, /*allow_exceptions=*/false);
        if (!x.is_discarded()) return x;
      }
      return s;
    }
    case YAML::NodeType::Sequence: {
      Json out = Json::array();
      for (const auto& item : n) out.push_back(yaml_node_to_json(item));
      return out;
    }
    case YAML::NodeType::Map: {
      Json out = Json::object();
      for (const auto& kv : n) out[kv.first.Scalar()] = yaml_node_to_json(kv.second);
      return out;
    }
    default:
      return nullptr;
  }
}

std::string now_utc() { return format_utc(now_utc_us()); }

Json count_or_null(int64_t v) { return v < 0 ? Json() : Json(v); }
Json string_or_null(const std::string& s) { return s.empty() ? Json() : Json(s); }

// "12345678" -> "12,345,678"
std::string grouped(const std::string& digits) {
  if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos) return digits;
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

// A card's value for a person: strings as they are, numbers and booleans as JSON writes them,
// "?" for what is missing, null or not a single value.
std::string scalar_at(const Json& n, const char* const* path, size_t len) {
  if (len == 0) {
    if (n.is_string()) return n.get<std::string>();
    return n.is_primitive() && !n.is_null() ? n.dump() : "?";
  }
  if (!n.is_object() || !n.contains(path[0])) return "?";
  return scalar_at(n[path[0]], path + 1, len - 1);
}

std::string scalar(const Json& root, std::initializer_list<const char*> path) {
  return scalar_at(root, path.begin(), path.size());
}

// A metric for a person: 4 decimals ("3.6297"), or the text as it is when not a number.
std::string short_number(const Json& n) {
  if (n.is_string()) return n.get<std::string>();
  if (!n.is_number()) return n.is_primitive() ? n.dump() : "?";
  const double v = n.get<double>();
  return std::fabs(v) >= 1e-3 && std::fabs(v) < 1e6 ? fmt::format("{:.4f}", v) : fmt::format("{:.4g}", v);
}

Json parse_card(const std::string& card_json, const std::string& what) {
  Json c = parse_json(card_json, what);
  if (!c.is_object()) fail("{}: not a JSON object", what);
  return c;
}

}  // namespace

Json yaml_to_json(const std::string& yaml, const std::string& what) {
  try {
    return yaml_node_to_json(YAML::Load(yaml));
  } catch (const YAML::Exception& e) {
    fail("{}: not valid YAML: {}", what, e.what());
  }
}

DataLineage data_lineage(const fs::path& dataset_dir, const std::string& split) {
  DataLineage d;
  d.dataset_dir = fs::weakly_canonical(fs::absolute(dataset_dir)).string();
  d.split = split;
  const fs::path manifest = dataset_dir / "manifest.json";
  try {
    const std::string text = read_file(manifest);
    d.manifest_sha256 = sha256_hex(text);
    const Json m = parse_json(text, manifest.string());
    d.source = m.value("source", "");
    d.vocab_hash = m.value("vocab_hash", "");
    d.vocab_size = m.value("vocab_size", int64_t{-1});
    d.privacy_k = m.value("min_subjects", int64_t{-1});
    if (m.contains("splits") && m["splits"].contains(split)) {
      d.subjects = m["splits"][split].value("subjects", int64_t{-1});
      d.tokens = m["splits"][split].value("tokens", int64_t{-1});
      const Json& sp = m["splits"][split];
      if (sp.contains("first_event") && sp["first_event"].is_string()) d.first_event = sp["first_event"];
      if (sp.contains("last_event") && sp["last_event"].is_string()) d.last_event = sp["last_event"];
    }
  } catch (const std::exception& e) {  // chart::Error, or a field of another type (Json::exception)
    warn("model card: the data lineage is incomplete: {}", e.what());
  }
  return d;
}

CodeVersion code_version() {
  return {CHART_VERSION, chart_git_commit(), chart_git_dirty()};
}

void ModelCard::set_section(const std::string& name, std::string json) {
  for (auto& [k, v] : extra_sections)
    if (k == name) { v = std::move(json); return; }
  extra_sections.emplace_back(name, std::move(json));
}

void ModelCard::set_metric(const std::string& name, double value) {
  for (auto& [k, v] : metrics)
    if (k == name) { v = value; return; }
  metrics.emplace_back(name, value);
}

void fill_model_card(ModelCard& card, const ClinicalTransformerImpl& model, const std::string& config_yaml,
                     int64_t step, int64_t tokens_seen, const std::string& vocab_hash) {
  const ModelConfig& m = model.config;
  const int64_t kv = resolved_kv_heads(m);
  std::string features;
  if (m.time_encoding != "none") features += ", " + m.time_encoding + " age encoding";
  if (m.time_bias) features += ", time-decay attention bias";
  if (m.time_head) features += ", time-to-next-event head";
  card.architecture = fmt::format(
      "decoder-only transformer: {} layers, d_model {}, {} heads ({} KV), SwiGLU {}, RMSNorm, rotary (theta {}), "
      "{} embeddings, vocabulary {}{}",
      m.n_layers, m.d_model, m.n_heads, kv, resolved_d_ff(m), m.rope_theta, m.tie_embeddings ? "tied" : "untied",
      model.vocab_size, features);
  card.parameters = model.parameter_count();
  card.config_sha256 = sha256_hex(config_yaml);
  const Json cfg = yaml_to_json(config_yaml, "config.yaml");
  card.model_json = cfg.is_object() && cfg.contains("model") ? cfg["model"] : Json();
  card.code = code_version();
  card.step = step;
  card.tokens_seen = tokens_seen;
  if (card.data.vocab_hash.empty()) card.data.vocab_hash = vocab_hash;
  if (card.data.vocab_size < 0) card.data.vocab_size = model.vocab_size;
}

std::string model_card_json(const ModelCard& c) {
  const DataLineage& d = c.data;
  Json j;
  j["format"] = "chart-model-card";
  j["version"] = 1;
  j["kind"] = c.kind;
  j["created_utc"] = now_utc();
  j["model"]["architecture"] = c.architecture;
  j["model"]["parameters"] = c.parameters;
  j["model"]["config"] = c.model_json;
  Json& t = j["training_data"];
  t["dataset_dir"] = string_or_null(d.dataset_dir);
  t["split"] = d.split;
  t["subjects"] = count_or_null(d.subjects);
  t["tokens"] = count_or_null(d.tokens);
  t["manifest_sha256"] = string_or_null(d.manifest_sha256);
  t["meds_source"] = string_or_null(d.source);
  t["vocab_hash"] = string_or_null(d.vocab_hash);
  t["vocab_size"] = count_or_null(d.vocab_size);
  t["privacy_min_subjects"] = count_or_null(d.privacy_k);
  t["first_event"] = string_or_null(d.first_event);
  t["last_event"] = string_or_null(d.last_event);
  j["config_sha256"] = string_or_null(c.config_sha256);
  j["code"]["chart_version"] = c.code.version;
  j["code"]["git_commit"] = c.code.commit;
  j["code"]["git_dirty"] = c.code.dirty == "true" ? Json(true) : c.code.dirty == "false" ? Json(false) : Json();
  j["training"]["steps"] = c.step;
  j["training"]["tokens_seen"] = c.tokens_seen;
  j["metrics"] = Json::object();
  for (const auto& [name, value] : c.metrics) j["metrics"][name] = value;
  for (const auto& [name, section] : c.extra_sections)
    j[name] = parse_json(section, "model card section '" + name + "'");
  return dump_json(j);
}

std::string with_model_card_section(const std::string& card_json, const std::string& name,
                                    const std::string& section_json) {
  Json card = parse_card(card_json, "model card");
  card[name] = parse_json(section_json, "model card section '" + name + "'");  // replaced in place, or appended
  return dump_json(card);
}

std::string model_card_markdown(const std::string& card_json) {
  const Json c = parse_card(card_json, "model card");
  auto s = [&](std::initializer_list<const char*> path) { return scalar(c, path); };
  std::string md = fmt::format("# Model card: chart {} model\n\n", s({"kind"}));
  md += "| | |\n| --- | --- |\n";
  md += fmt::format("| architecture | {} |\n", s({"model", "architecture"}));
  md += fmt::format("| parameters | {} |\n", grouped(s({"model", "parameters"})));
  md += fmt::format("| training data | `{}`, split `{}`: {} subjects, {} tokens |\n", s({"training_data", "dataset_dir"}),
                    s({"training_data", "split"}), grouped(s({"training_data", "subjects"})),
                    grouped(s({"training_data", "tokens"})));
  md += fmt::format("| time span | events from {} to {} |\n", s({"training_data", "first_event"}),
                    s({"training_data", "last_event"}));
  md += fmt::format("| MEDS source | `{}` |\n", s({"training_data", "meds_source"}));
  md += fmt::format("| dataset manifest SHA-256 | `{}` |\n", s({"training_data", "manifest_sha256"}));
  md += fmt::format("| vocabulary | {} tokens, hash `{}`, privacy threshold k = {} (codes seen in fewer train subjects have no token) |\n",
                    grouped(s({"training_data", "vocab_size"})), s({"training_data", "vocab_hash"}),
                    s({"training_data", "privacy_min_subjects"}));
  md += fmt::format("| config SHA-256 | `{}` |\n", s({"config_sha256"}));
  const std::string dirty = s({"code", "git_dirty"});
  md += fmt::format("| code | chart {}, git `{}`{} |\n", s({"code", "chart_version"}), s({"code", "git_commit"}),
                    dirty == "true" ? " with uncommitted changes" : dirty == "false" ? "" : " (dirty state unknown)");
  md += fmt::format("| training | {} steps, {} tokens seen |\n", grouped(s({"training", "steps"})),
                    grouped(s({"training", "tokens_seen"})));
  std::string metrics;
  if (c.is_object() && c.contains("metrics") && c["metrics"].is_object())
    for (const auto& [name, value] : c["metrics"].items())
      metrics += (metrics.empty() ? "" : ", ") + name + " " + short_number(value);
  md += fmt::format("| final metrics | {} |\n", metrics.empty() ? "none recorded" : metrics);
  md += fmt::format("| card written | {} |\n", s({"created_utc"}));
  if (c.contains("governance")) md += governance_markdown(c);  // before the raw sections it draws on
  static const char* kFixed[] = {"format", "version", "kind", "created_utc", "model", "training_data",
                                 "config_sha256", "code", "training", "metrics", "governance"};
  for (const auto& [name, value] : c.items()) {
    bool fixed = false;
    for (const char* f : kFixed) fixed |= name == f;
    if (!fixed) md += fmt::format("\n## {}\n```json\n{}```\n", name, dump_json(value));
  }
  return md;
}

void write_model_card_json(const fs::path& dir, const std::string& card_json) {
  const std::string pretty = dump_json(parse_card(card_json, "model card for " + dir.string()));
  write_file_atomic(dir / "model_card.json", pretty);
  write_file_atomic(dir / "MODEL_CARD.md", model_card_markdown(pretty));
}

void write_model_card(const fs::path& dir, const ModelCard& card) { write_model_card_json(dir, model_card_json(card)); }

std::string read_model_card_json(const fs::path& dir) {
  const fs::path f = dir / "model_card.json";
  if (!fs::exists(f))
    throw Error(fmt::format("{} has no model_card.json", dir.string()),
                "the checkpoint predates model cards; train it again with this version of chart to get one");
  return read_file(f);
}

}  // namespace chart
