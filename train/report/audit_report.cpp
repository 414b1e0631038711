#include "train/report/audit_report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/files.h"
#include "train/report/html_page.h"
#include "train/report/svg_plot.h"

namespace chart {
namespace {
using svg::html_escape;

std::string num(const Json& j, const char* key, const char* spec = "{:.3f}") {
  if (!j.is_object() || !j.contains(key) || !j[key].is_number()) return "n/a";
  const double v = j[key].get<double>();
  return std::isfinite(v) ? fmt::format(fmt::runtime(spec), v) : "n/a";
}
std::string pct(const Json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_number()) return "n/a";
  return fmt::format("{:.1f}%", 100 * j[key].get<double>());
}
std::string count(const Json& j, const char* key) {
  return j.is_object() && j.contains(key) && j[key].is_number_integer() ? std::to_string(j[key].get<int64_t>()) : "n/a";
}

std::string membership_html(const Json& m, const std::vector<Series>& roc, double min_k) {
  std::string h =
      "<h2>Membership inference</h2>\n<p>Can an attacker holding the weights tell the people the model trained on "
      "from people it never saw? Each attack scores every subject's whole timeline (by its mean loss, or by the mean "
      "of its least likely tokens: Min-K%); the AUROC is how well the score separates members from non-members. "
      "0.5: this attack cannot; above 0.5 with an interval clear of it: a finding to act on.</p>\n"
      "<table class=\"metrics membership\">\n<tr><th>attack</th><th>AUROC (95% CI)</th><th>at 10% FPR</th>"
      "<th>at 1% FPR</th><th>at 0.1% FPR</th></tr>\n";
  const std::pair<const char*, std::string> attacks[] = {{"loss", "mean loss"},
                                                         {"min_k", fmt::format("Min-{:.0f}%", 100 * min_k)}};
  for (const auto& [key, name] : attacks) {
    if (!m.contains(key)) continue;
    const Json& a = m[key];
    h += fmt::format("<tr><td>{}</td><td>{} ({}&ndash;{})</td>", html_escape(name), num(a, "auroc"), num(a, "auroc_low"),
                     num(a, "auroc_high"));
    for (const auto& t : a.value("tpr_at_low_fpr", Json::array()))
      h += fmt::format("<td>{} flagged (TPR {}, {}&ndash;{}) at FPR {}</td>", count(t, "members_flagged"), pct(t, "tpr"),
                       pct(t, "tpr_low"), pct(t, "tpr_high"), pct(t, "fpr"));
    h += "</tr>\n";
  }
  h += "</table>\n<p class=\"note\">At a target false-positive rate: the members flagged at the lowest threshold "
       "that flags no more non-members than the target allows; the rate reached is shown (with n non-members only "
       "0, 1/n, 2/n, ... can be reached). At chance the TPR equals the FPR. The TPR interval is Wilson's with the "
       "threshold held fixed.</p>\n";
  if (!roc.empty())
    h += "<div class=\"plots\">\n" +
         figure(curve_plot("Membership ROC (members positive)", roc, svg::unit_axis("false positive rate"),
                           svg::unit_axis("true positive rate"), false, {"chance", svg::kChance}, {{0, 1}, {0, 1}},
                           "membership-roc"),
                "A curve on the chance line: the attack learns nothing. Its left end is what matters most: members "
                "flagged while almost no non-member is.") +
         "</div>\n";
  return h;
}

std::string extraction_html(const Json& x) {
  std::string h = fmt::format(
      "<h2>Extraction</h2>\n<p>Prompted with a timeline up to its rarest code, does the model continue it with the "
      "{} tokens that truly follow (greedy decoding)? A model that does so more for members than for non-members "
      "has memorised those people's records.</p>\n<table class=\"metrics extraction\">\n<tr><th></th><th>prompts</th>"
      "<th>reproduced exactly (95% CI)</th><th>first-choice tokens</th><th>mean log-probability</th>"
      "<th>too short</th></tr>\n",
      count(x, "tokens"));
  for (const auto& [key, name] : {std::pair{"members", "members"}, std::pair{"non_members", "non-members"}}) {
    const Json& s = x.value(key, Json::object());
    h += fmt::format("<tr><td>{}</td><td>{}</td><td>{} of them, {} ({}&ndash;{})</td><td>{}</td><td>{}</td><td>{}</td>"
                     "</tr>\n",
                     name, count(s, "prompts"), count(s, "exact"), pct(s, "exact_rate"), pct(s, "exact_low"),
                     pct(s, "exact_high"), pct(s, "token_match"), num(s, "mean_logp"), count(s, "too_short"));
  }
  h += "</table>\n";
  if (x.contains("logp_auroc"))
    h += fmt::format("<p>Members vs non-members by the continuation's log-probability: AUROC {} ({}&ndash;{}).</p>\n",
                     num(x["logp_auroc"], "auroc"), num(x["logp_auroc"], "auroc_low"),
                     num(x["logp_auroc"], "auroc_high"));
  return h;
}

std::string thresholds_html(const Json& t) {
  std::string h = fmt::format(
      "<h2>Privacy threshold</h2>\n<p>A token or a code's numeric bin that rests on fewer than k = {} train subjects "
      "(k from <code>{}</code>) can point at those few people. Of {} train subjects: {} tokens ({} of them codes) and "
      "{} numeric bins are below k.</p>\n",
      count(t, "k"), html_escape(t.value("k_from", "?")), count(t, "train_subjects"), count(t, "tokens_below_k"),
      count(t, "code_tokens_below_k"), count(t, "bins_below_k"));
  auto list = [&](const char* key, const char* title, auto&& label) {
    const Json& items = t.value(key, Json::array());
    if (items.empty()) return;
    h += fmt::format("<table class=\"rare {}\">\n<tr><th>{} (rarest first)</th><th>train subjects</th></tr>\n", key, title);
    for (size_t i = 0; i < std::min<size_t>(items.size(), 20); ++i)
      h += fmt::format("<tr><td><code>{}</code></td><td>{}</td></tr>\n", html_escape(label(items[i])),
                       count(items[i], "subjects"));
    h += "</table>\n";
  };
  list("tokens", "token", [](const Json& e) { return e.value("token", std::string("?")); });
  list("bins", "code and bin", [](const Json& e) {
    return e.value("code", std::string("?")) + " " + e.value("bin", std::string("?"));
  });
  return h;
}

}  // namespace

std::string render_audit_html(const Json& a, const std::vector<Series>& roc) {
  const Json& non = a.value("non_members", Json::object());
  std::string others;
  for (const auto& [split, n] : non.items()) others += (others.empty() ? "" : ", ") + std::to_string(n.get<int64_t>()) + " " + split;
  std::string h = page_open("chart audit: privacy of a pretrained model",
                            {{"checkpoint", a.value("checkpoint", std::string("?"))},
                             {"data", a.value("data", std::string("?"))},
                             {"members (train)", count(a.value("members", Json::object()), "train")},
                             {"non-members", others.empty() ? "none" : others},
                             {"window", count(a, "window") + " tokens"},
                             {"device", a.value("device", std::string("?"))}});
  const Json& loss = a["membership"].value("loss", Json::object());
  if (loss.contains("auroc_low") && loss["auroc_low"].is_number() && loss["auroc_low"].get<double>() > 0.5)
    h += warning_html("the loss attack tells members from non-members (its AUROC interval lies above 0.5): the model "
                      "exposes whether a person's record was in its training data");
  h += "<p class=\"note\">An audit is an attack, not a proof: these attacks failing does not mean every attack fails. "
       "docs/privacy.md has the threat model and the limits.</p>\n";
  h += membership_html(a["membership"], roc, a["membership"].value("min_k", Json::object()).value("k", 0.2));
  if (a.contains("extraction")) h += extraction_html(a["extraction"]);
  if (a.contains("thresholds")) h += thresholds_html(a["thresholds"]);
  return h + page_close();
}

void write_audit_report(const std::filesystem::path& html, const Json& audit, const std::vector<Series>& roc) {
  write_file_atomic(html, render_audit_html(audit, roc));
}

}  // namespace chart
