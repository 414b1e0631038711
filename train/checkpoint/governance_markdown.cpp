// MODEL_CARD.md's governance part: the institution's answers beside what chart measured, under
// the headings docs/governance.md maps to the EU AI Act and the CHAI applied model card.
#include <fmt/format.h>

#include <cmath>

#include "train/checkpoint/governance.h"

namespace chart {
namespace {

const Json* at(const Json& j, std::initializer_list<const char*> path) {
  const Json* n = &j;
  for (const char* k : path) {
    if (!n->is_object() || !n->contains(k)) return nullptr;
    n = &(*n)[k];
  }
  return n;
}

std::string text(const Json* n) {
  if (!n || n->is_null()) return "?";
  if (n->is_string()) return n->get<std::string>();
  if (n->is_number_float()) {
    const double v = n->get<double>();
    return std::isfinite(v) ? fmt::format("{:.3f}", v) : "?";
  }
  return n->dump();
}

// "0.812 [0.771, 0.850]" from a value and its `_ci` pair.
std::string with_ci(const Json& j, const std::string& key) {
  std::string s = text(at(j, {key.c_str()}));
  const Json* ci = at(j, {(key + "_ci").c_str()});
  if (ci && ci->is_array() && ci->size() == 2) s += fmt::format(" [{}, {}]", text(&(*ci)[0]), text(&(*ci)[1]));
  return s;
}

// The institution's answer to one field, or where it is to be filled.
std::string answer(const Json& g, const GovernanceField& f) {
  const Json* v = at(g, {f.key});
  if (v && v->is_string()) return v->get<std::string>() + "\n";
  if (v && v->is_array()) {
    std::string s = "\n";
    for (const auto& item : *v) s += "- " + item.get<std::string>() + "\n";
    return s;
  }
  return fmt::format("**To be filled by the institution** (`{}` in the card.governance file: {}).\n", f.key, f.asks);
}

std::string field(const Json& g, const char* key, const char* label) {
  for (const auto& f : governance_fields())
    if (std::string(f.key) == key) return fmt::format("**{}.** {}\n", label, answer(g, f));
  return "";
}

std::string measured_data(const Json& c) {
  const Json& t = c.value("training_data", Json::object());
  return fmt::format(
      "**Measured by chart.** {} subjects ({} tokens) of the `{}` split of `{}`; events from {} to {}; MEDS source "
      "`{}`; codes in fewer than {} train subjects have no token (the privacy threshold k); vocabulary of {} tokens.\n",
      text(at(t, {"subjects"})), text(at(t, {"tokens"})), text(at(t, {"split"})), text(at(t, {"dataset_dir"})),
      text(at(t, {"first_event"})), text(at(t, {"last_event"})), text(at(t, {"meds_source"})),
      text(at(t, {"privacy_min_subjects"})), text(at(t, {"vocab_size"})));
}

std::string subgroup_table(const Json& sub) {
  std::string md = "\n| subgroup | rows (positive) | AUROC [95% CI] | calibration slope [95% CI] | note |\n"
                   "| --- | --- | --- | --- | --- |\n";
  for (const auto& g : sub.value("groups", Json::array()))
    md += fmt::format("| {} = {} | {} ({}) | {} | {} | {} |\n", text(at(g, {"dimension"})), text(at(g, {"group"})),
                      text(at(g, {"n"})), text(at(g, {"n_positive"})), with_ci(g, "auroc"),
                      with_ci(g, "calibration_slope"), g.value("warning", Json()).is_string() ? "few cases" : "");
  for (const auto& gap : sub.value("largest_auroc_gaps", Json::array()))
    md += fmt::format("\nLargest AUROC gap by {}: {} ({}) vs {} ({}), {}.\n", text(at(gap, {"dimension"})),
                      text(at(gap, {"lowest"})), text(at(gap, {"lowest_auroc"})), text(at(gap, {"highest"})),
                      text(at(gap, {"highest_auroc"})), text(at(gap, {"gap"})));
  return md;
}

std::string measured_evaluation(const Json& c) {
  const Json* ev = at(c, {"evaluation"});
  if (!ev) return "**Measured by chart.** Not evaluated: run `chart eval` on held-out data for the card to carry it.\n";
  const Json* model = at(*ev, {"model"});
  if (!model)  // fine-tuning's choice of step, on the tuning split
    return fmt::format("**Measured by chart.** Tuning-split AUROC {} ({} rows) at the kept step {}: the split that "
                       "chose the step, not an independent evaluation; run `chart eval` on held_out.\n",
                       text(at(*ev, {"auroc"})), text(at(*ev, {"n"})), text(at(*ev, {"step"})));
  std::string md = fmt::format(
      "**Measured by chart** on the `{}` split, {} rows ({} positive): AUROC {}, AUPRC {}, Brier {}; calibration "
      "intercept {}, slope {}.\n",
      text(at(*ev, {"split"})), text(at(*model, {"n"})), text(at(*model, {"n_positive"})), with_ci(*model, "auroc"),
      with_ci(*model, "auprc"), with_ci(*model, "brier"), with_ci(*model, "calibration_intercept"),
      with_ci(*model, "calibration_slope"));
  if (const Json* sub = at(*ev, {"subgroups"})) md += subgroup_table(*sub);
  else md += "\nNo subgroup results: run `chart eval` with eval.subgroups.\n";
  return md;
}

std::string measured_warnings(const Json& c) {
  std::string md;
  if (const Json* w = at(c, {"evaluation", "warnings"}); w && w->is_array())
    for (const auto& item : *w) md += "- measured: " + text(&item) + "\n";
  return md;
}

std::string measured_privacy(const Json& c) {
  const Json* a = at(c, {"privacy_audit"});
  if (!a)
    return "**Measured by chart.** Not audited: run `chart audit` on the pretrained checkpoint for the card to carry "
           "membership inference and extraction results.\n";
  std::string md = fmt::format("**Measured by chart.** Membership inference AUROC by loss {} [{}, {}] (0.5: the attack "
                               "cannot tell training subjects from others).",
                               text(at(*a, {"membership", "loss", "auroc"})),
                               text(at(*a, {"membership", "loss", "auroc_low"})),
                               text(at(*a, {"membership", "loss", "auroc_high"})));
  if (const Json* low = at(*a, {"membership", "loss", "tpr_at_low_fpr"}); low && low->is_array() && low->size() > 1)
    md += fmt::format(" At a false-positive rate of {} (target 0.01) it flags {} of the members (TPR {}).",
                      text(at((*low)[1], {"fpr"})), text(at((*low)[1], {"members_flagged"})),
                      text(at((*low)[1], {"tpr"})));
  if (const Json* x = at(*a, {"extraction"}))
    md += fmt::format(" Extraction: {} tokens after the rarest code reproduced exactly for {} of {} members and {} of "
                      "{} non-members.",
                      text(at(*x, {"tokens"})), text(at(*x, {"members", "exact"})), text(at(*x, {"members", "prompts"})),
                      text(at(*x, {"non_members", "exact"})), text(at(*x, {"non_members", "prompts"})));
  if (const Json* t = at(*a, {"thresholds"}))
    md += fmt::format(" {} code tokens and {} numeric bins rest on fewer than k = {} train subjects.",
                      text(at(*t, {"code_tokens_below_k"})), text(at(*t, {"bins_below_k"})), text(at(*t, {"k"})));
  return md + "\n";
}

std::string measured_lineage(const Json& c) {
  std::string md = fmt::format(
      "**Recorded by chart.** A {} model; chart {}, git `{}`; config SHA-256 `{}`; dataset manifest SHA-256 `{}`; "
      "{} training steps; card written {}.",
      text(at(c, {"kind"})), text(at(c, {"code", "chart_version"})), text(at(c, {"code", "git_commit"})),
      text(at(c, {"config_sha256"})), text(at(c, {"training_data", "manifest_sha256"})),
      text(at(c, {"training", "steps"})), text(at(c, {"created_utc"})));
  if (const Json* base = at(c, {"base_model"}))
    md += fmt::format(" Fine-tuned from a {} model trained on `{}` (git `{}`).", text(at(*base, {"kind"})),
                      text(at(*base, {"training_data", "dataset_dir"})), text(at(*base, {"code", "git_commit"})));
  return md + "\n";
}

}  // namespace

std::string governance_markdown(const Json& c) {
  const Json g = c.value("governance", Json::object());
  std::string md = "\n## Governance\n";
  md += "What a clinical governance board and a regulator ask; the institution's answers come from the card.governance "
        "file, the measured ones from chart. docs/governance.md maps these headings to the EU AI Act (Annex IV, "
        "Art. 13) and the CHAI applied model card.\n";
  if (const Json* f = at(g, {"from"}); f && f->is_string())
    md += fmt::format("Answers from `{}` (SHA-256 `{}`).\n", f->get<std::string>(), text(at(g, {"sha256"})));
  const size_t missing = g.value("to_be_filled", Json::array()).size();
  if (missing) md += fmt::format("**{} of {} fields are still to be filled by the institution.**\n", missing,
                                 governance_fields().size());
  md += "\n### Intended use\n" + field(g, "model_name", "Model") + field(g, "developer", "Developer") +
        field(g, "intended_use", "Intended use") + field(g, "intended_users", "Intended users") +
        field(g, "target_population", "Target population") + field(g, "out_of_scope", "Out of scope") +
        field(g, "clinical_risk_level", "Clinical risk level") + field(g, "regulatory_status", "Regulatory status");
  md += "\n### Training data\n" + field(g, "data_sources", "Sources") + field(g, "inclusion_criteria", "Inclusion") +
        measured_data(c);
  md += "\n### Evaluation, by subgroup, and calibration\n" + field(g, "evaluation_data", "Evaluation data") +
        measured_evaluation(c);
  md += "\n### Limitations and failure modes\n" + field(g, "limitations", "Known limitations") +
        field(g, "known_biases", "Known biases") + measured_warnings(c);
  md += "\n### Privacy\n" + field(g, "patient_disclosure", "Patient disclosure") + measured_privacy(c);
  md += "\n### Human oversight and maintenance\n" + field(g, "human_oversight", "Oversight") +
        field(g, "maintenance", "Monitoring and maintenance");
  md += "\n### Version and lineage\n" + measured_lineage(c);
  md += "\n### Transparency and contact\n" + field(g, "funding_source", "Funding") +
        field(g, "stakeholders_consulted", "Stakeholders consulted") + field(g, "contact", "Contact");
  return md;
}

}  // namespace chart
