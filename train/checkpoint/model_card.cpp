#include "train/checkpoint/model_card.h"

#include <yaml-cpp/yaml.h>

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <ctime>

#include "core/error.h"
#include "core/files.h"
#include "core/json.h"
#include "core/log.h"
#include "core/sha256.h"
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

void emit_json(const YAML::Node& n, int indent, std::string& out) {
  const std::string pad(indent + 2, ' ');
  switch (n.Type()) {
    case YAML::NodeType::Scalar: {
      const std::string& s = n.Scalar();
      if (n.Tag() == "!") out += json_string(s);  // quoted in the source: a string
      else if (s == "true" || s == "false") out += s;
      else if (s == "null" || s == "~") out += "null";
      else if (is_json_number(s)) out += s;
      else out += json_string(s);
      return;
    }
    case YAML::NodeType::Sequence: {
      bool flat = true;
      for (const auto& item : n) flat = flat && !item.IsMap() && !item.IsSequence();
      out += "[";
      bool first = true;
      for (const auto& item : n) {
        out += first ? (flat ? "" : "\n" + pad) : (flat ? ", " : ",\n" + pad);
        emit_json(item, indent + 2, out);
        first = false;
      }
      if (!flat && !first) out += "\n" + std::string(indent, ' ');
      out += "]";
      return;
    }
    case YAML::NodeType::Map: {
      if (n.size() == 0) { out += "{}"; return; }
      out += "{";
      bool first = true;
      for (const auto& kv : n) {
        out += (first ? "\n" : ",\n") + pad + json_string(kv.first.Scalar()) + ": ";
        emit_json(kv.second, indent + 2, out);
        first = false;
      }
      out += "\n" + std::string(indent, ' ') + "}";
      return;
    }
    default:
      out += "null";
  }
}

YAML::Node load_json(const std::string& text, const std::string& what) {
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    fail("{}: not valid JSON: {}", what, e.what());
  }
}

std::string now_utc() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string count_or_null(int64_t v) { return v < 0 ? "null" : std::to_string(v); }
std::string string_or_null(const std::string& s) { return s.empty() ? "null" : json_string(s); }

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

std::string scalar_at(const YAML::Node& n, const char* const* path, size_t len) {
  if (len == 0) return n.IsScalar() && n.Scalar() != "null" ? n.Scalar() : "?";
  if (!n.IsMap() || !n[path[0]]) return "?";
  return scalar_at(n[path[0]], path + 1, len - 1);
}

std::string scalar(const YAML::Node& root, std::initializer_list<const char*> path) {
  return scalar_at(root, path.begin(), path.size());
}

// A metric for a person: 4 decimals ("3.6297"), or the text as it is when not a number.
std::string short_number(const YAML::Node& n) {
  if (!n.IsScalar()) return "?";
  if (!is_json_number(n.Scalar())) return n.Scalar();
  const double v = std::strtod(n.Scalar().c_str(), nullptr);
  return std::fabs(v) >= 1e-3 && std::fabs(v) < 1e6 ? fmt::format("{:.4f}", v) : fmt::format("{:.4g}", v);
}

}  // namespace

std::string yaml_text_to_json(const std::string& text, const std::string& what) {
  std::string out;
  emit_json(load_json(text, what), 0, out);
  return out;
}

DataLineage data_lineage(const fs::path& dataset_dir, const std::string& split) {
  DataLineage d;
  d.dataset_dir = fs::weakly_canonical(fs::absolute(dataset_dir)).string();
  d.split = split;
  const fs::path manifest = dataset_dir / "manifest.json";
  try {
    const std::string text = read_file(manifest);
    d.manifest_sha256 = sha256_hex(text);
    YAML::Node m = load_json(text, manifest.string());
    if (m["source"]) d.source = m["source"].as<std::string>();
    if (m["vocab_hash"]) d.vocab_hash = m["vocab_hash"].as<std::string>();
    if (m["vocab_size"]) d.vocab_size = m["vocab_size"].as<int64_t>();
    if (m["min_subjects"]) d.privacy_k = m["min_subjects"].as<int64_t>();
    if (m["splits"] && m["splits"][split]) {
      d.subjects = m["splits"][split]["subjects"].as<int64_t>(-1);
      d.tokens = m["splits"][split]["tokens"].as<int64_t>(-1);
    }
  } catch (const std::exception& e) {  // chart::Error or a YAML exception
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
  YAML::Node cfg = load_json(config_yaml, "config.yaml");
  card.model_json.clear();
  if (cfg["model"]) emit_json(cfg["model"], 2, card.model_json);
  card.code = code_version();
  card.step = step;
  card.tokens_seen = tokens_seen;
  if (card.data.vocab_hash.empty()) card.data.vocab_hash = vocab_hash;
  if (card.data.vocab_size < 0) card.data.vocab_size = model.vocab_size;
}

std::string model_card_json(const ModelCard& c) {
  const DataLineage& d = c.data;
  std::string j = "{\n";
  j += fmt::format("  \"format\": \"chart-model-card\",\n  \"version\": 1,\n  \"kind\": {},\n  \"created_utc\": {},\n",
                   json_string(c.kind), json_string(now_utc()));
  j += fmt::format("  \"model\": {{\n    \"architecture\": {},\n    \"parameters\": {},\n    \"config\": {}\n  }},\n",
                   json_string(c.architecture), c.parameters, c.model_json.empty() ? "null" : c.model_json);
  j += fmt::format(
      "  \"training_data\": {{\n    \"dataset_dir\": {},\n    \"split\": {},\n    \"subjects\": {},\n"
      "    \"tokens\": {},\n    \"manifest_sha256\": {},\n    \"meds_source\": {},\n    \"vocab_hash\": {},\n"
      "    \"vocab_size\": {},\n    \"privacy_min_subjects\": {}\n  }},\n",
      string_or_null(d.dataset_dir), json_string(d.split), count_or_null(d.subjects), count_or_null(d.tokens),
      string_or_null(d.manifest_sha256), string_or_null(d.source), string_or_null(d.vocab_hash),
      count_or_null(d.vocab_size), count_or_null(d.privacy_k));
  j += fmt::format("  \"config_sha256\": {},\n", string_or_null(c.config_sha256));
  j += fmt::format("  \"code\": {{\"chart_version\": {}, \"git_commit\": {}, \"git_dirty\": {}}},\n",
                   json_string(c.code.version), json_string(c.code.commit),
                   c.code.dirty == "true" || c.code.dirty == "false" ? c.code.dirty : "null");
  j += fmt::format("  \"training\": {{\"steps\": {}, \"tokens_seen\": {}}},\n", c.step, c.tokens_seen);
  j += "  \"metrics\": {";
  for (size_t i = 0; i < c.metrics.size(); ++i)
    j += fmt::format("{}{}: {}", i ? ", " : "", json_string(c.metrics[i].first), json_number(c.metrics[i].second));
  j += "}";
  for (const auto& [name, section] : c.extra_sections) {
    load_json(section, "model card section '" + name + "'");  // refuse what is not JSON
    j += ",\n  " + json_string(name) + ": " + section;
  }
  j += "\n}\n";
  return yaml_text_to_json(j, "model card") + "\n";
}

std::string with_model_card_section(const std::string& card_json, const std::string& name,
                                    const std::string& section_json) {
  YAML::Node card = load_json(card_json, "model card");
  if (!card.IsMap()) fail("model card: not a JSON object");
  YAML::Node section = load_json(section_json, "model card section '" + name + "'");
  std::string out = "{";
  bool first = true, replaced = false;
  for (const auto& kv : card) {
    std::string value;
    const bool here = kv.first.Scalar() == name;
    emit_json(here ? section : kv.second, 2, value);
    replaced |= here;
    out += (first ? "\n  " : ",\n  ") + json_string(kv.first.Scalar()) + ": " + value;
    first = false;
  }
  if (!replaced) {
    std::string value;
    emit_json(section, 2, value);
    out += (first ? "\n  " : ",\n  ") + json_string(name) + ": " + value;
  }
  return out + "\n}\n";
}

std::string model_card_markdown(const std::string& card_json) {
  YAML::Node c = load_json(card_json, "model card");
  auto s = [&](std::initializer_list<const char*> path) { return scalar(c, path); };
  std::string md = fmt::format("# Model card: chart {} model\n\n", s({"kind"}));
  md += "| | |\n| --- | --- |\n";
  md += fmt::format("| architecture | {} |\n", s({"model", "architecture"}));
  md += fmt::format("| parameters | {} |\n", grouped(s({"model", "parameters"})));
  md += fmt::format("| training data | `{}`, split `{}`: {} subjects, {} tokens |\n", s({"training_data", "dataset_dir"}),
                    s({"training_data", "split"}), grouped(s({"training_data", "subjects"})),
                    grouped(s({"training_data", "tokens"})));
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
  if (c["metrics"] && c["metrics"].IsMap())
    for (const auto& kv : c["metrics"])
      metrics += (metrics.empty() ? "" : ", ") + kv.first.Scalar() + " " + short_number(kv.second);
  md += fmt::format("| final metrics | {} |\n", metrics.empty() ? "none recorded" : metrics);
  md += fmt::format("| card written | {} |\n", s({"created_utc"}));
  static const char* kFixed[] = {"format", "version", "kind", "created_utc", "model", "training_data",
                                 "config_sha256", "code", "training", "metrics"};
  for (const auto& kv : c) {
    const std::string name = kv.first.Scalar();
    bool fixed = false;
    for (const char* f : kFixed) fixed |= name == f;
    if (fixed) continue;
    std::string body;
    emit_json(kv.second, 0, body);
    md += fmt::format("\n## {}\n```json\n{}\n```\n", name, body);
  }
  return md;
}

void write_model_card_json(const fs::path& dir, const std::string& card_json) {
  YAML::Node c = load_json(card_json, "model card");
  if (!c.IsMap()) fail("model card for {}: not a JSON object", dir.string());
  std::string pretty;
  emit_json(c, 0, pretty);
  write_file_atomic(dir / "model_card.json", pretty + "\n");
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
