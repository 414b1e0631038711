#include "train/recipes/audit.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "core/error.h"
#include "core/files.h"
#include "core/json.h"
#include "core/log.h"
#include "data/subject_counts.h"
#include "data/token_dataset.h"
#include "data/vocab.h"
#include "model/autocast.h"
#include "model/device.h"
#include "model/transformer.h"
#include "infer/risk.h"
#include "train/checkpoint/governance.h"
#include "train/checkpoint/model_card.h"
#include "train/checkpoint/run_lock.h"
#include "train/interop/load_pretrained.h"
#include "train/recipes/audit_extraction.h"
#include "train/report/audit_report.h"
#include "train/recipes/audit_windows.h"
#include "train/validation/binary_metrics.h"
#include "train/validation/low_fpr.h"

namespace chart {
namespace fs = std::filesystem;
namespace {

// The next-token log-probabilities of a batch of windows, each read from its own first token
// (as a packed training window may start), appended to its subject's list.
void score_windows(ClinicalTransformer& model, const data::TokenDataset& ds, const std::string& split,
                   const std::vector<data::SubjectRef>& refs, const std::vector<Window>& windows, int64_t context,
                   const DeviceChoice& dev, std::vector<std::vector<double>>& logps) {
  const WindowInputs in = window_inputs(ds, split, refs, windows, context);
  torch::Tensor token_logp;
  {
    AutocastGuard autocast(dev);
    auto out = model->forward(in.tokens.to(dev.device), in.ages.to(dev.device), in.segments.to(dev.device));
    auto logp = torch::log_softmax(out.logits.to(torch::kFloat32).narrow(1, 0, context - 1), -1);
    // log p(token j+1 | tokens <= j), [B, context - 1]
    token_logp = logp.gather(2, in.tokens.narrow(1, 1, context - 1).to(dev.device).unsqueeze(2)).squeeze(2).cpu();
  }
  auto lp = token_logp.accessor<float, 2>();
  for (int64_t b = 0; b < int64_t(windows.size()); ++b)
    for (int64_t j = 0; j + 1 < windows[size_t(b)].n; ++j) logps[windows[size_t(b)].subject].push_back(lp[b][j]);
}

// A subject's fit from its token log-probabilities: mean loss and Min-K%.
SubjectFit summarise(int64_t subject_id, std::vector<double> lp, double min_k) {
  std::sort(lp.begin(), lp.end());
  const auto t = static_cast<int64_t>(lp.size());
  const auto k = static_cast<size_t>(std::max<int64_t>(1, std::llround(min_k * double(t))));
  double sum = 0, low = 0;
  for (size_t j = 0; j < lp.size(); ++j) (j < k ? low : sum) += lp[j];
  return {subject_id, t, -(sum + low) / double(t), low / double(k)};
}

// Every subject's whole timeline, in windows of model.context tokens (the last one shorter).
std::vector<SubjectFit> fit_subjects(ClinicalTransformer& model, const data::TokenDataset& ds, const std::string& split,
                                     const std::vector<data::SubjectRef>& refs, const Config& cfg,
                                     const DeviceChoice& dev) {
  const int64_t context = cfg.model.context;
  std::vector<Window> windows;
  for (size_t i = 0; i < refs.size(); ++i) {
    const int64_t n = ds.shards(split)[refs[i].shard].subject(refs[i].entry).n_tokens;
    for (int64_t start = 0; start + 1 < n; start += context) windows.push_back({i, start, std::min(context, n - start)});
  }
  std::vector<std::vector<double>> logps(refs.size());
  const auto batch = static_cast<size_t>(cfg.audit.batch_size);
  for (size_t i = 0; i < windows.size(); i += batch) {
    const std::vector<Window> chunk(windows.begin() + long(i), windows.begin() + long(std::min(windows.size(), i + batch)));
    score_windows(model, ds, split, refs, chunk, context, dev, logps);
  }
  std::vector<SubjectFit> fits;
  for (size_t i = 0; i < refs.size(); ++i)
    fits.push_back(summarise(ds.shards(split)[refs[i].shard].subject(refs[i].entry).subject_id, std::move(logps[i]),
                             cfg.audit.min_k));
  return fits;
}

// The AUROC of telling members (train) from non-members (held_out, tuning) by a score, higher meaning
// "member"; exp() maps each score into (0, 1], which keeps its order.
Json membership_auroc(const std::vector<SubjectFit>& members, const std::vector<SubjectFit>& others,
                      double (*score)(const SubjectFit&), int64_t bootstrap, uint64_t seed, Curve& roc) {
  std::vector<double> p;
  std::vector<int> y;
  for (const auto& f : members) p.push_back(std::exp(score(f))), y.push_back(1);
  for (const auto& f : others) p.push_back(std::exp(score(f))), y.push_back(0);
  const BinaryEvaluation e = evaluate_binary(p, y, bootstrap, seed);
  roc = roc_curve(p, y);
  Json low = Json::array();
  for (double target : {0.1, 0.01, 0.001}) {  // members flagged when almost no non-member is
    const TprAtFpr r = tpr_at_fpr(p, y, target);
    const auto [lo, hi] = infer::wilson_interval(r.true_positives, r.positives);
    low.push_back({{"target_fpr", target}, {"fpr", r.fpr}, {"tpr", r.tpr()}, {"tpr_low", lo}, {"tpr_high", hi},
                   {"members_flagged", r.true_positives}, {"non_members_flagged", r.false_positives}});
  }
  return Json{{"auroc", e.point.auroc}, {"auroc_low", e.auroc.lo}, {"auroc_high", e.auroc.hi}, {"tpr_at_low_fpr", low}};
}

double mean_of(const std::vector<SubjectFit>& fits) {
  double s = 0;
  for (const auto& f : fits) s += f.mean_nll;
  return fits.empty() ? NAN : s / double(fits.size());
}

// The rarest entries of a list of (subjects, entry), at most `most`, fewest subjects first.
Json rarest(std::vector<std::pair<int64_t, Json>> entries, size_t most) {
  std::stable_sort(entries.begin(), entries.end(), [](const auto& x, const auto& y) { return x.first < y.first; });
  Json out = Json::array();
  for (size_t i = 0; i < std::min(most, entries.size()); ++i) out.push_back(std::move(entries[i].second));
  return out;
}

// Tokens and numeric bins of the training data that rest on fewer than k train subjects (but
// more than none: a token nobody has reveals nobody), the rarest 50 of each listed. Special
// tokens are not data.
Json rare_tokens_and_bins(const data::TokenDataset& ds, const data::SubjectCounts& counts, int64_t k) {
  constexpr size_t kListed = 50;
  const data::Vocab& vocab = ds.vocab();
  std::vector<std::pair<int64_t, Json>> tokens, bins;
  int64_t n_codes = 0;
  for (uint32_t id = 0; id < vocab.size(); ++id) {
    const int64_t n = counts.token[id];
    if (vocab.kind(id) == data::TokenKind::kSpecial || n == 0 || n >= k) continue;
    n_codes += vocab.kind(id) == data::TokenKind::kCode;
    tokens.emplace_back(n, Json{{"token", vocab.token(id)}, {"subjects", n}});
  }
  for (const auto& [bin, n] : counts.bin)
    if (n < k) bins.emplace_back(n, Json{{"code", vocab.token(bin.first)}, {"bin", vocab.token(bin.second)}, {"subjects", n}});
  return Json{{"k", k},
              {"train_subjects", counts.subjects},
              {"tokens_below_k", tokens.size()},
              {"code_tokens_below_k", n_codes},
              {"bins_below_k", bins.size()},
              {"tokens", rarest(std::move(tokens), kListed)},
              {"bins", rarest(std::move(bins), kListed)}};
}

// What the model card says of the audit: the headline figures and how to read them; audit.json
// beside it has the lists.
Json card_section(const Json& j) {
  Json c{{"what", "membership inference (loss, Min-K%) and extraction attacks by chart audit; docs/privacy.md has the "
                  "threat model and the limits"},
         {"reading", "AUROC 0.5: these attacks cannot tell the people the model trained on from others; an interval "
                     "above 0.5 is a finding to act on. A lower bound on risk, not a proof of privacy."},
         {"data", j["data"]},
         {"members", j["members"]},
         {"non_members", j["non_members"]},
         {"membership", j["membership"]}};
  if (j.contains("extraction")) c["extraction"] = j["extraction"];
  if (j.contains("thresholds"))
    for (const char* key : {"k", "k_from", "tokens_below_k", "code_tokens_below_k", "bins_below_k"})
      c["thresholds"][key] = j["thresholds"][key];
  return c;
}

void log_extraction(const Json& x) {
  const Json &in = x["members"], &out = x["non_members"];
  info("audit: extraction: greedy decoding after each subject's rarest code reproduced the next {} tokens for {}/{} "
       "members ({:.1f}% [{:.1f}, {:.1f}]) and {}/{} non-members ({:.1f}% [{:.1f}, {:.1f}])",
       x["tokens"].get<int64_t>(), in["exact"].get<int64_t>(), in["prompts"].get<int64_t>(),
       100 * in["exact_rate"].get<double>(), 100 * in["exact_low"].get<double>(), 100 * in["exact_high"].get<double>(),
       out["exact"].get<int64_t>(), out["prompts"].get<int64_t>(), 100 * out["exact_rate"].get<double>(),
       100 * out["exact_low"].get<double>(), 100 * out["exact_high"].get<double>());
}

// prepare.min_subjects of the dataset, as its manifest records it (0 if it does not).
int64_t prepare_threshold(const fs::path& data_dir) {
  const Json m = Json::parse(read_file(data_dir / "manifest.json"));
  return m.contains("min_subjects") && m["min_subjects"].is_number_integer() ? m["min_subjects"].get<int64_t>() : 0;
}

}  // namespace

int run_audit(const Config& cfg_in) {
  Config cfg = cfg_in;
  if (cfg.run.dir.empty()) throw Error("run.dir is not set", "pass --set run.dir=DIR");
  const fs::path out = cfg.run.dir;
  RunLock lock(out, "chart audit");
  if (fs::exists(out / "audit.json"))
    throw Error(fmt::format("{} already holds an audit.json", out.string()), "choose another run.dir");
  set_cpu_threads(cfg.train.threads);
  governance_section(cfg.card.governance);  // a bad governance file fails before the audit runs
  Pretrained pre = load_pretrained(cfg.init.checkpoint);
  if (pre.tensors.count("cls_head.weight"))
    throw Error(fmt::format("{} is a fine-tuned checkpoint", pre.dir.string()),
                "audit the pretrained checkpoint it came from (init.checkpoint of the fine-tune run)");
  if (cfg.data.dir.empty()) cfg.data.dir = pre.config.data.dir;
  cfg.model = checkpoint_model(pre, cfg.model);
  if (cfg.audit.extract_tokens + 1 > cfg.model.context)
    fail("audit.extract_tokens ({}) must leave room for a prompt in model.context ({})", cfg.audit.extract_tokens,
         cfg.model.context);
  auto ds = data::TokenDataset::open(cfg.data.dir);
  check_vocab(pre, ds.vocab_hash(), cfg.data.dir);
  const int64_t most = cfg.audit.max_subjects;
  const auto members = audited_subjects(ds, "train", most);
  // Non-members: subjects the model never trained on, held_out first, then tuning (which
  // pretraining only evaluates on), up to audit.max_subjects.
  SplitSubjects others;
  size_t n_others = 0;
  for (const char* split : {"held_out", "tuning"}) {
    if (most > 0 && int64_t(n_others) >= most) break;
    others.emplace_back(split, audited_subjects(ds, split, most > 0 ? most - int64_t(n_others) : 0));
    n_others += others.back().second.size();
  }
  if (members.empty() || n_others == 0)
    fail("audit: {} needs subjects with two or more tokens in train ({}) and in held_out or tuning ({})", cfg.data.dir,
         members.size(), n_others);
  const DeviceChoice dev = choose_device(cfg.train.device, cfg.train.precision);
  torch::manual_seed(static_cast<uint64_t>(cfg.train.seed));
  ClinicalTransformer model(cfg.model, pre.vocab_size);
  copy_pretrained_weights(pre, *model);
  model->to(dev.device);
  model->eval();
  torch::NoGradGuard no_grad;
  info("audit: membership inference on {} train and {} held_out/tuning subjects of {} (whole timelines, in windows of "
       "{} tokens)", members.size(), n_others, cfg.data.dir, cfg.model.context);
  const auto fit_in = fit_subjects(model, ds, "train", members, cfg, dev);
  std::vector<SubjectFit> fit_out;
  Json non_members = Json::object();
  for (const auto& [split, refs] : others) {
    const auto fits = fit_subjects(model, ds, split, refs, cfg, dev);
    fit_out.insert(fit_out.end(), fits.begin(), fits.end());
    non_members[split] = fits.size();
  }

  const auto seed = static_cast<uint64_t>(cfg.train.seed);
  std::vector<Series> roc{{"mean loss", {}}, {fmt::format("Min-{:.0f}%", 100 * cfg.audit.min_k), {}}};
  Json loss = membership_auroc(fit_in, fit_out, [](const SubjectFit& f) { return -f.mean_nll; },
                               cfg.audit.bootstrap, seed, roc[0].curve);
  Json min_k = membership_auroc(fit_in, fit_out, [](const SubjectFit& f) { return f.min_k; }, cfg.audit.bootstrap, seed,
                                roc[1].curve);
  loss["mean_nll_train"] = mean_of(fit_in);
  loss["mean_nll_non_members"] = mean_of(fit_out);
  min_k["k"] = cfg.audit.min_k;
  Json j;
  j["checkpoint"] = pre.dir.string();
  j["data"] = cfg.data.dir;
  j["members"] = Json{{"train", fit_in.size()}};
  j["non_members"] = non_members;
  j["window"] = cfg.model.context;
  j["bootstrap"] = cfg.audit.bootstrap;
  j["membership"] = Json{{"loss", loss}, {"min_k", min_k}};
  const data::SubjectCounts counts = data::count_subjects(ds, "train");
  if (cfg.audit.extract_tokens > 0)
    j["extraction"] = extraction_audit(model, ds, {{"train", members}}, others, counts, cfg, dev);
  const int64_t k = cfg.audit.k > 0 ? cfg.audit.k : prepare_threshold(cfg.data.dir);
  if (k > 0) {
    j["thresholds"] = rare_tokens_and_bins(ds, counts, k);
    j["thresholds"]["k_from"] = cfg.audit.k > 0 ? "audit.k" : "prepare.min_subjects";
  }
  j["device"] = dev.describe();
  write_file_atomic(out / "config.yaml", config_to_yaml(cfg));
  if (fs::exists(pre.dir / "model_card.json"))  // the audited checkpoint's card, with the audit
    write_model_card_json(out, with_governance(with_model_card_section(read_model_card_json(pre.dir), "privacy_audit",
                                                                       card_section(j).dump()),
                                               cfg.card.governance));
  write_audit_report(out / "report.html", j, roc);
  write_file_atomic(out / "audit.json", dump_json(j));  // last: its presence means the audit is whole
  info("audit: membership AUROC by loss {:.3f} [{:.3f}, {:.3f}], by Min-{:.0f}% {:.3f} [{:.3f}, {:.3f}] "
       "(0.5: nothing this attack can see); mean loss members {:.3f} vs non-members {:.3f}; wrote {}",
       loss["auroc"].get<double>(), loss["auroc_low"].get<double>(), loss["auroc_high"].get<double>(),
       100 * cfg.audit.min_k, min_k["auroc"].get<double>(), min_k["auroc_low"].get<double>(),
       min_k["auroc_high"].get<double>(), mean_of(fit_in), mean_of(fit_out),
       (out / "audit.json").string() + " and " + (out / "report.html").string());
  const Json& at1 = loss["tpr_at_low_fpr"][1];
  info("audit: at a false-positive rate of {:.1f}% (target 1%) the loss attack flags {} of {} members (TPR {:.1f}% "
       "[{:.1f}, {:.1f}])", 100 * at1["fpr"].get<double>(), at1["members_flagged"].get<int64_t>(), fit_in.size(),
       100 * at1["tpr"].get<double>(), 100 * at1["tpr_low"].get<double>(), 100 * at1["tpr_high"].get<double>());
  if (j.contains("extraction")) log_extraction(j["extraction"]);
  if (k > 0) {
    const Json& t = j["thresholds"];
    const int64_t rare = t["tokens_below_k"].get<int64_t>() + t["bins_below_k"].get<int64_t>();
    const std::string line = fmt::format("audit: {} tokens ({} of them codes) and {} numeric bins rest on fewer than {} "
                                         "train subjects (k from {})", t["tokens_below_k"].get<int64_t>(),
                                         t["code_tokens_below_k"].get<int64_t>(), t["bins_below_k"].get<int64_t>(), k,
                                         t["k_from"].get<std::string>());
    if (rare > 0) warn("{}; audit.json lists them", line);
    else info("{}", line);
  }
  return 0;
}

}  // namespace chart
