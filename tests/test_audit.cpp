// chart audit's membership inference must see what a model memorised: a model trained for many
// epochs on a few subjects tells them from subjects it never saw (AUROC clearly above 0.5), while
// one that saw each training timeline less than once cannot (its interval holds 0.5); and its
// extraction attack finds what a model that memorised a few timelines reproduces after their
// rarest codes.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "core/files.h"
#include "tests/test_util.h"

namespace chart {
namespace {
namespace fs = std::filesystem;
using testing::config;

struct Audited {
  double loss_auroc, loss_low, loss_high, min_k_auroc, train_nll, held_out_nll;
  int64_t members;
  nlohmann::json extraction, loss;
};

// synth -> prepare -> train `steps` -> audit, in dir.
Audited audit_after(const fs::path& dir, int subjects, int steps, const std::string& train_extra = "",
                    const std::string& prepare_extra = "") {
  std::string out;
  EXPECT_EQ(testing::run_chart(fmt::format("synth --out {} --subjects {} --seed 3", (dir / "meds").string(), subjects), &out), 0)
      << out;
  EXPECT_EQ(testing::run_chart(fmt::format("prepare --meds {} --out {} {}", (dir / "meds").string(), (dir / "tok").string(),
                                           prepare_extra), &out), 0)
      << out;
  EXPECT_EQ(testing::run_chart(fmt::format("train {} --set data.dir={} --set run.dir={} --set train.steps={} "
                                           "--set model.context=64 --set train.eval_every=0 --set train.threads=2 {}",
                                           config("tiny.yaml"), (dir / "tok").string(), (dir / "pre").string(), steps,
                                           train_extra),
                               &out), 0)
      << out;
  EXPECT_EQ(testing::run_chart(fmt::format("audit {} --set init.checkpoint={} --set run.dir={} --set audit.bootstrap=300 "
                                           "--set audit.max_subjects=200",
                                           config("tiny.yaml"), (dir / "pre").string(), (dir / "audit").string()),
                               &out), 0)
      << out;
  EXPECT_NE(out.find("audit: membership AUROC by loss"), std::string::npos) << out;
  auto j = nlohmann::json::parse(read_file(dir / "audit" / "audit.json"));
  const auto& loss = j["membership"]["loss"];
  return {loss["auroc"], loss["auroc_low"], loss["auroc_high"], j["membership"]["min_k"]["auroc"],
          loss["mean_nll_train"], loss["mean_nll_non_members"], j["members"]["train"], j["extraction"], loss};
}

TEST(Audit, MembershipInferenceSeesMemorisationAndOnlyThat) {
  testing::TempDir dir;
  // 300 subjects (~220 train, 60k tokens): 1500 steps of 8 x 64 tokens are 13 epochs of each
  // timeline, for a model wide enough to remember some of them (AUROC 0.72 [0.66, 0.78] here).
  const Audited over = audit_after(dir / "over", 300, 1500,
                                   "--set model.d_model=128 --set train.lr=1e-3 --set train.min_lr=1e-3");
  EXPECT_GT(over.loss_auroc, 0.65) << "an overfit model's members should stand out";
  EXPECT_GT(over.loss_low, 0.55);
  EXPECT_LT(over.train_nll, over.held_out_nll);
  EXPECT_GT(over.min_k_auroc, 0.6);
  // At a low false-positive rate, the overfit model's members are flagged far above chance.
  const auto& over_10 = over.loss["tpr_at_low_fpr"][0];
  EXPECT_EQ(over_10["target_fpr"], 0.1);
  EXPECT_LE(over_10["fpr"].get<double>(), 0.1);
  EXPECT_GT(over_10["tpr_low"].get<double>(), 0.2) << over_10;
  // 3000 subjects, 40 steps: well under one pass over the training timelines.
  const Audited fair = audit_after(dir / "fair", 3000, 40);
  EXPECT_EQ(fair.members, 200);
  EXPECT_LT(fair.loss_low, 0.5) << fair.loss_auroc;
  EXPECT_GT(fair.loss_high, 0.5) << fair.loss_auroc;
  EXPECT_LT(std::abs(fair.loss_auroc - 0.5), 0.1);
  const auto& fair_10 = fair.loss["tpr_at_low_fpr"][0];
  // At chance a member is flagged as often as a non-member (TPR = FPR; 0.145 at 0.1 here). The
  // Wilson interval holds the threshold fixed, so it is not asked to hold 0.1.
  EXPECT_LT(fair_10["tpr"].get<double>() - fair_10["fpr"].get<double>(), 0.1) << fair_10;
  const auto& fair_x = fair.extraction["logp_auroc"];
  EXPECT_LT(fair_x["auroc_low"].get<double>(), 0.5) << fair_x;
  EXPECT_GT(fair_x["auroc_high"].get<double>(), 0.5) << fair_x;
}

TEST(Audit, ExtractionSeesTheTimelinesAModelMemorisedAndTheCardCarriesTheAudit) {
  testing::TempDir dir;
  // 80 subjects (59 train), 800 steps of 8 x 64 tokens: about 70 passes over each training
  // timeline (prepare.min_subjects=2 keeps enough of their codes). After its rarest code, the
  // model continues a member's timeline with its true next tokens clearly more often than a
  // non-member's (here 54% of 8 tokens vs 38%; continuation log-probability AUROC 0.89).
  const Audited memorised = audit_after(dir / "m", 80, 800,
                                        "--set model.d_model=128 --set train.lr=1e-3 --set train.min_lr=1e-3",
                                        "--set prepare.min_subjects=2");
  const auto& x = memorised.extraction;
  EXPECT_EQ(x["tokens"], 8);
  EXPECT_EQ(x["members"]["prompts"].get<int64_t>() + x["members"]["too_short"].get<int64_t>(), memorised.members);
  EXPECT_GT(x["members"]["prompts"].get<int64_t>(), 40);
  EXPECT_GT(x["non_members"]["prompts"].get<int64_t>(), 10);
  EXPECT_GT(x["members"]["token_match"].get<double>(), x["non_members"]["token_match"].get<double>() + 0.08) << x;
  EXPECT_GT(x["members"]["mean_logp"].get<double>(), x["non_members"]["mean_logp"].get<double>()) << x;
  EXPECT_GT(x["logp_auroc"]["auroc"].get<double>(), 0.7) << x;
  EXPECT_GT(x["logp_auroc"]["auroc_low"].get<double>(), 0.55) << x;
  for (const char* side : {"members", "non_members"}) {  // the exact rate within its Wilson interval
    const auto& s = x[side];
    EXPECT_LE(s["exact_low"].get<double>(), s["exact_rate"].get<double>()) << side;
    EXPECT_GE(s["exact_high"].get<double>(), s["exact_rate"].get<double>()) << side;
    EXPECT_GT(s["exact_high"].get<double>(), 0.0) << side;
  }
  // The audited checkpoint's model card, carried on with the audit, for a person too.
  const fs::path audit = dir / "m" / "audit";
  auto card = nlohmann::json::parse(read_file(audit / "model_card.json"));
  EXPECT_EQ(card["kind"], "pretrained");
  EXPECT_EQ(card["privacy_audit"]["membership"]["loss"]["auroc"], memorised.loss_auroc);
  EXPECT_EQ(card["privacy_audit"]["extraction"], x);
  EXPECT_EQ(card["privacy_audit"]["thresholds"]["k"], 2);
  EXPECT_NE(read_file(audit / "MODEL_CARD.md").find("## privacy_audit"), std::string::npos);
  // The report a privacy officer reads: the attacks' figures as audit.json has them, the ROC plot.
  const std::string html = read_file(audit / "report.html");
  for (const std::string part : {std::string("<h2>Membership inference</h2>"), std::string("class=\"membership-roc\""),
                                 std::string("<h2>Extraction</h2>"), std::string("<h2>Privacy threshold</h2>"),
                                 fmt::format("{:.3f}", memorised.loss_auroc),
                                 fmt::format("{:.3f}", x["logp_auroc"]["auroc"].get<double>())})
    EXPECT_NE(html.find(part), std::string::npos) << part;
  EXPECT_NE(html.find("the loss attack tells members from non-members"), std::string::npos) << "a finding is flagged";
  // Without extraction (audit.extract_tokens=0), none is reported; a continuation that leaves no
  // room for a prompt in the context is refused, naming both keys.
  std::string out;
  ASSERT_EQ(testing::run_chart(fmt::format("audit {} --set init.checkpoint={} --set run.dir={} --set audit.extract_tokens=0 "
                                           "--set audit.bootstrap=10", config("tiny.yaml"), (dir / "m" / "pre").string(),
                                           (dir / "no-x").string()), &out), 0) << out;
  EXPECT_FALSE(nlohmann::json::parse(read_file(dir / "no-x" / "audit.json")).contains("extraction"));
  EXPECT_EQ(out.find("audit: extraction"), std::string::npos) << out;
  EXPECT_EQ(testing::run_chart(fmt::format("audit {} --set init.checkpoint={} --set run.dir={} --set audit.extract_tokens=64 "
                                           "--set audit.bootstrap=10", config("tiny.yaml"), (dir / "m" / "pre").string(),
                                           (dir / "too-long").string()), &out), 1) << out;
  EXPECT_NE(out.find("audit.extract_tokens (64) must leave room for a prompt in model.context (64)"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(dir / "too-long" / "audit.json"));
}

TEST(Audit, CountsRareTokensAndBinsAndRefusesAFineTunedCheckpointAnExistingAuditAndNoCheckpoint) {
  testing::TempDir dir;
  std::string out;
  const Audited first = audit_after(dir / "a", 200, 5);
  const fs::path audit = dir / "a" / "audit";
  const std::string before = read_file(audit / "audit.json");
  EXPECT_GT(first.members, 0);
  // The privacy threshold, counted from the training shards: no code token rests on fewer than
  // prepare.min_subjects (10) train subjects, as prepare promised; at a k above the cohort's
  // size every token and bin is below it, so the count could not be stuck at zero.
  auto thresholds = nlohmann::json::parse(before)["thresholds"];
  EXPECT_EQ(thresholds["k"], 10);
  EXPECT_EQ(thresholds["k_from"], "prepare.min_subjects");
  EXPECT_EQ(thresholds["code_tokens_below_k"], 0);
  EXPECT_GT(thresholds["train_subjects"].get<int64_t>(), 100);
  ASSERT_EQ(testing::run_chart(fmt::format("audit {} --set init.checkpoint={} --set run.dir={} --set audit.k=100000 "
                                           "--set audit.bootstrap=10 --set audit.max_subjects=5",
                                           config("tiny.yaml"), (dir / "a" / "pre").string(),
                                           (dir / "audit-k").string()), &out), 0) << out;
  EXPECT_NE(out.find("numeric bins rest on fewer than 100000 train subjects (k from audit.k)"), std::string::npos) << out;
  auto strict = nlohmann::json::parse(read_file(dir / "audit-k" / "audit.json"))["thresholds"];
  EXPECT_GT(strict["code_tokens_below_k"].get<int64_t>(), 10);
  EXPECT_GT(strict["bins_below_k"].get<int64_t>(), 0);
  EXPECT_LE(strict["tokens"].size(), 50u);
  const std::string html = read_file(dir / "audit-k" / "report.html");
  EXPECT_NE(html.find("token (rarest first)"), std::string::npos);
  EXPECT_NE(html.find("<code>" + strict["tokens"][0]["token"].get<std::string>() + "</code>"), std::string::npos);
  EXPECT_GT(strict["tokens"][0]["subjects"].get<int64_t>(), 0);
  for (const char* list : {"tokens", "bins"})  // the rarest first
    for (size_t i = 1; i < strict[list].size(); ++i)
      EXPECT_LE(strict[list][i - 1]["subjects"].get<int64_t>(), strict[list][i]["subjects"].get<int64_t>()) << list;
  EXPECT_EQ(testing::run_chart(fmt::format("audit {} --set init.checkpoint={} --set run.dir={}", config("tiny.yaml"),
                                           (dir / "a" / "pre").string(), audit.string()), &out), 1) << out;
  EXPECT_NE(out.find("already holds an audit.json"), std::string::npos) << out;
  EXPECT_EQ(read_file(audit / "audit.json"), before);
  ASSERT_EQ(testing::run_chart(fmt::format("finetune {} --set init.checkpoint={} --set task.labels={} --set run.dir={} "
                                           "--set train.steps=2 --set train.eval_every=0",
                                           config("finetune/full.yaml"), (dir / "a" / "pre").string(),
                                           (dir / "a" / "meds" / "labels" / "mortality_5y").string(),
                                           (dir / "ft").string()), &out), 0) << out;
  EXPECT_EQ(testing::run_chart(fmt::format("audit {} --set init.checkpoint={} --set run.dir={}", config("tiny.yaml"),
                                           (dir / "ft").string(), (dir / "audit-ft").string()), &out), 1) << out;
  EXPECT_NE(out.find("is a fine-tuned checkpoint"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(dir / "audit-ft" / "audit.json"));
  EXPECT_EQ(testing::run_chart(fmt::format("audit {} --set run.dir={}", config("tiny.yaml"), (dir / "b").string()), &out), 1)
      << out;
  EXPECT_FALSE(fs::exists(dir / "b" / "audit.json"));
}

}  // namespace
}  // namespace chart
