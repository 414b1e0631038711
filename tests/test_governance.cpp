// The governance part of model cards: the institution's answers from card.governance, the
// fields it left out marked as to be filled (never invented), and beside them what chart
// measured (the data's time span, held-out results by subgroup, calibration, lineage).
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <regex>

#include "core/error.h"
#include "core/files.h"
#include "core/json.h"
#include "tests/test_util.h"
#include "train/checkpoint/governance.h"

namespace chart {
namespace {
namespace fs = std::filesystem;
using testing::config;
using testing::contains;

// The card of a run's latest checkpoint (checkpoints/latest names it).
Json latest_card(const fs::path& run) {
  std::string name = read_file(run / "checkpoints" / "latest");
  while (!name.empty() && std::isspace(static_cast<unsigned char>(name.back()))) name.pop_back();
  return read_json_file(run / "checkpoints" / name / "model_card.json");
}

TEST(Governance, CarriesTheAnswersAndListsWhatIsToBeFilled) {
  testing::TempDir dir;
  write_file_atomic(dir / "gov.yaml", "intended_use: 5-year mortality risk for care planning\n"
                                      "out_of_scope: [triage, children]\n"
                                      "contact: \"\"\n");
  const Json g = parse_json(governance_section((dir / "gov.yaml").string()), "section");
  EXPECT_EQ(g["intended_use"], "5-year mortality risk for care planning");
  EXPECT_EQ(g["out_of_scope"], Json::array({"triage", "children"}));
  EXPECT_TRUE(g["contact"].is_null()) << "an empty answer is still to be filled";
  EXPECT_EQ(g["sha256"].get<std::string>().size(), 64u);
  const auto& missing = g["to_be_filled"];
  EXPECT_EQ(missing.size(), governance_fields().size() - 2);
  EXPECT_NE(std::find(missing.begin(), missing.end(), "contact"), missing.end());
  EXPECT_EQ(std::find(missing.begin(), missing.end(), "intended_use"), missing.end());
  // No file: every field to be filled, nothing made up.
  const Json none = parse_json(governance_section(""), "section");
  EXPECT_EQ(none["to_be_filled"].size(), governance_fields().size());
  EXPECT_TRUE(none["from"].is_null());
  for (const auto& f : governance_fields()) EXPECT_TRUE(none[f.key].is_null()) << f.key;
  // A card without governance gets the empty one; with it, keeps it unless a file is given.
  const Json card = parse_json(with_governance(R"({"kind": "pretrained"})", ""), "card");
  EXPECT_EQ(card["governance"]["to_be_filled"].size(), governance_fields().size());
  const std::string kept = with_governance(with_governance("{}", (dir / "gov.yaml").string()), "");
  EXPECT_EQ(parse_json(kept, "card")["governance"]["intended_use"], "5-year mortality risk for care planning");
}

TEST(Governance, RefusesWhatItCannotCarryNamingTheFileAndField) {
  testing::TempDir dir;
  auto refused = [&](const std::string& yaml) -> std::string {
    write_file_atomic(dir / "g.yaml", yaml);
    try {
      governance_section((dir / "g.yaml").string());
    } catch (const Error& e) {
      return std::string(e.what()) + " " + e.hint();
    }
    return "";
  };
  std::string m = refused("intended_use: x\nintended_usage: y\n");
  EXPECT_TRUE(contains(m, "g.yaml") && contains(m, "unknown governance field 'intended_usage'")) << m;
  EXPECT_TRUE(contains(m, "intended_users")) << "the hint lists the fields: " << m;
  m = refused("limitations:\n  small: cohort\n");
  EXPECT_TRUE(contains(m, "limitations: must be text or a list of texts")) << m;
  m = refused("limitations: [ok, {a: b}]\n");
  EXPECT_TRUE(contains(m, "limitations: every item must be text")) << m;
  m = refused("intended_use: [unclosed\n");
  EXPECT_TRUE(contains(m, "not valid YAML")) << m;
  m = refused("- a list\n");
  EXPECT_TRUE(contains(m, "must be a mapping")) << m;
  try {
    governance_section((dir / "absent.yaml").string());
    ADD_FAILURE() << "a missing file was accepted";
  } catch (const Error& e) {
    EXPECT_TRUE(contains(e.what(), "card.governance") && contains(e.what(), "absent.yaml")) << e.what();
  }
}

TEST(Governance, TheEvaluatedCardAnswersTheBoardBesideWhatChartMeasured) {
  testing::TempDir dir;
  std::string out;
  const std::string meds = (dir / "meds").string(), tok = (dir / "tok").string();
  ASSERT_EQ(testing::run_chart(fmt::format("synth --out {} --subjects 300 --seed 5", meds), &out), 0) << out;
  ASSERT_EQ(testing::run_chart(fmt::format("prepare --meds {} --out {}", meds, tok), &out), 0) << out;
  // The training data's time span, to the day, per split in the manifest.
  const Json split = read_json_file(dir / "tok" / "manifest.json")["splits"]["train"];
  const std::regex day(R"(\d{4}-\d{2}-\d{2})");
  ASSERT_TRUE(std::regex_match(split["first_event"].get<std::string>(), day)) << split;
  ASSERT_TRUE(std::regex_match(split["last_event"].get<std::string>(), day)) << split;
  EXPECT_LT(split["first_event"].get<std::string>(), split["last_event"].get<std::string>());

  // A bad governance file stops the run before it trains, naming the field.
  write_file_atomic(dir / "bad.yaml", "intended_use: x\nowner: y\n");
  const std::string train = fmt::format("train {} --set data.dir={} --set train.steps=5 --set train.eval_every=0",
                                        config("tiny.yaml"), tok);
  EXPECT_EQ(testing::run_chart(fmt::format("{} --set run.dir={} --set card.governance={}", train,
                                           (dir / "bad-run").string(), (dir / "bad.yaml").string()), &out), 1) << out;
  EXPECT_TRUE(contains(out, "unknown governance field 'owner'")) << out;
  EXPECT_FALSE(fs::exists(dir / "bad-run" / "checkpoints"));

  write_file_atomic(dir / "gov.yaml", "model_name: mortality-5y demo\n"
                                      "intended_use: research on synthetic timelines only\n"
                                      "limitations:\n  - trained on 300 synthetic subjects\n  - no external validation\n"
                                      "contact: governance@example.org\n");
  ASSERT_EQ(testing::run_chart(fmt::format("{} --set run.dir={} --set card.governance={}", train, (dir / "pre").string(),
                                           (dir / "gov.yaml").string()), &out), 0) << out;
  const Json pre_card = latest_card(dir / "pre");
  EXPECT_EQ(pre_card["governance"]["model_name"], "mortality-5y demo");
  EXPECT_EQ(pre_card["training_data"]["first_event"], split["first_event"]);
  const std::string labels = (dir / "meds" / "labels" / "mortality_5y").string();
  ASSERT_EQ(testing::run_chart(fmt::format("finetune {} --set init.checkpoint={} --set task.labels={} --set run.dir={} "
                                           "--set train.steps=10 --set train.eval_every=0",
                                           config("finetune/full.yaml"), (dir / "pre").string(), labels,
                                           (dir / "ft").string()), &out), 0) << out;
  const Json ft_card = latest_card(dir / "ft");
  EXPECT_EQ(ft_card["governance"]["to_be_filled"].size(), governance_fields().size()) << "this run named no file";
  ASSERT_EQ(testing::run_chart(fmt::format("eval {} --set init.checkpoint={} --set task.labels={} --set run.dir={} "
                                           "--set card.governance={} --set eval.bootstrap=50",
                                           config("finetune/full.yaml"), (dir / "ft").string(), labels,
                                           (dir / "ev").string(), (dir / "gov.yaml").string()), &out), 0) << out;
  const Json card = read_json_file(dir / "ev" / "model_card.json");
  EXPECT_EQ(card["governance"]["limitations"].size(), 2u);
  const std::string md = read_file(dir / "ev" / "MODEL_CARD.md");
  const std::string gov = md.substr(md.find("## Governance"));
  for (const char* expected :
       {"**Intended use.** research on synthetic timelines only", "- no external validation",
        "**Contact.** governance@example.org", "**Intended users.** **To be filled by the institution** (`intended_users`",
        "fields are still to be filled", "### Evaluation, by subgroup, and calibration", "on the `held_out` split",
        "| sex = ", "| age = ", "calibration", "Fine-tuned from a pretrained model", "Not audited"})
    EXPECT_TRUE(contains(gov, expected)) << expected << "\n" << gov;
  EXPECT_TRUE(contains(gov, "events from " + split["first_event"].get<std::string>())) << gov;
  EXPECT_LT(md.find("## Governance"), md.find("## evaluation")) << "the answers come before the raw sections";
}

}  // namespace
}  // namespace chart
