#include "serve/answers.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/utc_time.h"

namespace chart::serve {
namespace {

std::string short_version(const ServedModel& m) { return m.model_sha256().substr(0, 12); }

std::string percent(double p) { return fmt::format("{:.1f}%", 100.0 * p); }

// How the model reached its probability, in a sentence (the card and the RiskAssessment's method).
std::string method_text(const Answer& a) {
  if (!a.model.zero_shot())
    return fmt::format("chart fine-tuned model for {} (version {})", a.model.task(), short_version(a.model));
  return fmt::format("chart pretrained model (version {}), zero-shot: {} sampled futures scored on [{}]",
                     short_version(a.model), a.model.samples(), fmt::join(a.model.outcome_codes(), ", "));
}

// The interval in words: "95% interval 3.1%-7.4%, from 20 sampled futures".
std::string interval_text(const TaskPrediction& p) {
  if (!p.interval) return "a point estimate from a fine-tuned model; no interval";
  return fmt::format("95% interval {}-{}, from {} sampled futures", percent(p.interval->first),
                     percent(p.interval->second), p.samples);
}

}  // namespace

std::vector<std::string> warnings(const Answer& a) {
  std::vector<std::string> w;
  const TaskPrediction& p = a.prediction;
  if (p.coverage() < a.min_coverage)
    w.push_back(fmt::format("low vocabulary coverage: the model knows the codes of {} of the record's {} events "
                            "(below {}); the prediction may not reflect the record",
                            percent(p.coverage()), p.events, percent(a.min_coverage)));
  if (p.after_prediction_time > 0)
    w.push_back(fmt::format("{} events after prediction_time were not read", p.after_prediction_time));
  if (p.tokens > a.model.context())
    w.push_back(fmt::format("the record is longer than the model's context: only its last {} of {} tokens were read",
                            a.model.context(), p.tokens));
  if (a.record.unmapped > 0)
    w.push_back(fmt::format("{} FHIR resources had no mapped code or time and were not read", a.record.unmapped));
  return w;
}

Json prediction_json(const Answer& a) {
  const TaskPrediction& p = a.prediction;
  Json j;
  j["task"] = a.model.task();
  j["probability"] = p.probability;
  // A fine-tuned head gives a point estimate; a zero-shot task's sampled futures give an interval.
  j["interval"] = nullptr;
  if (p.interval) j["interval"] = {{"low", p.interval->first}, {"high", p.interval->second}, {"level", 0.95}};
  j["method"] = a.model.zero_shot() ? "zero-shot" : "fine-tuned";
  if (a.model.zero_shot()) {
    j["samples"] = p.samples;
    j["outcome_codes"] = a.model.outcome_codes();
  }
  j["model"] = {{"version", a.model.model_sha256()}, {"card", a.model_card_url}};
  j["coverage"] = {{"events", p.events}, {"unknown_codes", p.unknown}, {"known_share", p.coverage()},
                   {"after_prediction_time", p.after_prediction_time}, {"tokens", p.tokens}};
  j["warnings"] = warnings(a);
  return j;
}

Json risk_assessment(const Answer& a) {
  const TaskPrediction& p = a.prediction;
  Json r;
  r["resourceType"] = "RiskAssessment";
  r["id"] = a.request_id.substr(0, 64);
  r["status"] = "final";
  r["subject"] = {{"reference", "Patient/" + a.record.subject}};
  r["occurrenceDateTime"] = format_utc(a.record.prediction_time_us);
  r["method"] = {{"coding", Json::array({{{"system", "urn:chart:model"},
                                          {"code", a.model.task()},
                                          {"version", a.model.model_sha256()}}})},
                 {"text", method_text(a)}};
  r["basis"] = Json::array({{{"display", fmt::format("{} events of the patient's record up to {}", p.events,
                                                     format_utc(a.record.prediction_time_us))}}});
  Json pred;
  pred["outcome"] = {{"text", a.model.task()}};
  pred["probabilityDecimal"] = p.probability;
  Json when = {{"start", format_utc(a.record.prediction_time_us)}};
  if (a.model.horizon_us()) when["end"] = format_utc(a.record.prediction_time_us + *a.model.horizon_us());
  pred["whenPeriod"] = when;
  r["prediction"] = Json::array({pred});
  auto notes = warnings(a);
  if (p.interval) notes.insert(notes.begin(), interval_text(p));
  if (!notes.empty()) {
    r["note"] = Json::array();
    for (const auto& s : notes) r["note"].push_back({{"text", s}});
  }
  return r;
}

Json cds_card(const Answer& a, const std::string& hook) {
  const TaskPrediction& p = a.prediction;
  const auto w = warnings(a);
  Json c;
  c["uuid"] = a.request_id + "-" + a.model.task();
  c["summary"] = fmt::format("{}: {} predicted risk", a.model.task(), percent(p.probability)).substr(0, 140);
  c["indicator"] = w.empty() ? "info" : "warning";
  std::string detail = fmt::format("Predicted probability of **{}**: {} ({}).\n\n{}. Read {} events; {} of their "
                                   "codes are known to the model.",
                                   a.model.task(), percent(p.probability), interval_text(p), method_text(a), p.events,
                                   percent(p.coverage()));
  if (hook == "order-select") detail += "\n\nThe draft orders are not part of the prediction: it reads the record only.";
  for (const auto& s : w) detail += "\n\n**Warning:** " + s;
  c["detail"] = detail;
  c["source"] = {{"label", "chart " + a.model.task() + " model"}, {"url", a.model_card_url}};
  c["links"] = Json::array({{{"label", "Model card"}, {"url", a.model_card_url}, {"type", "absolute"}}});
  return c;
}

}  // namespace chart::serve
