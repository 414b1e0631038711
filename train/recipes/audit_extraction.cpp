#include "train/recipes/audit_extraction.h"

#include <cmath>
#include <limits>

#include "data/vocab.h"
#include "infer/risk.h"
#include "model/autocast.h"
#include "train/validation/binary_metrics.h"

namespace chart {
namespace {

// One subject's extraction attempt: the prompt ends at `rare` (inclusive), the continuation is
// the `len` tokens after it.
struct Attempt {
  size_t subject;
  int64_t rare;
};

// The subject's rarest code token among those followed by `len` more tokens: fewest train
// subjects, the earliest on a tie; -1 when the timeline has none.
int64_t rarest_code(const data::TokenDataset& ds, const std::string& split, const data::SubjectRef& ref, int64_t len,
                    const data::SubjectCounts& counts) {
  const auto& sh = ds.shards(split)[ref.shard];
  const auto& e = sh.subject(ref.entry);
  int64_t best = -1, fewest = std::numeric_limits<int64_t>::max();
  for (int64_t j = 0; j + len < e.n_tokens; ++j) {
    const uint32_t t = sh.tokens()[e.token_start + uint64_t(j)];
    if (ds.vocab().kind(t) != data::TokenKind::kCode) continue;
    if (counts.token[t] < fewest) fewest = counts.token[t], best = j;
  }
  return best;
}

struct Scored {
  bool exact;
  int64_t matched;
  double mean_logp;
};

// A batch of attempts in one forward pass: each window ends at its continuation's last token and
// holds as much of the prompt before it as model.context allows.
std::vector<Scored> score_attempts(ClinicalTransformer& model, const data::TokenDataset& ds, const std::string& split,
                                   const std::vector<data::SubjectRef>& refs, const std::vector<Attempt>& attempts,
                                   int64_t len, int64_t context, const DeviceChoice& dev) {
  std::vector<Window> windows;
  for (const auto& a : attempts) {
    const int64_t end = a.rare + len + 1, start = std::max<int64_t>(0, end - context);
    windows.push_back({a.subject, start, end - start});
  }
  const WindowInputs in = window_inputs(ds, split, refs, windows, context);
  // Only the len positions predicting each row's continuation: [B, len] of [B, context, V].
  const auto B = static_cast<int64_t>(windows.size());
  auto pos = torch::empty({B, len}, torch::kLong);
  auto next = torch::empty({B, len}, torch::kLong);
  auto tok = in.tokens.accessor<int64_t, 2>();
  auto pa = pos.accessor<int64_t, 2>();
  auto na = next.accessor<int64_t, 2>();
  for (int64_t b = 0; b < B; ++b) {
    const int64_t first = windows[size_t(b)].n - len - 1;  // the position predicting the first token
    for (int64_t j = 0; j < len; ++j) pa[b][j] = first + j, na[b][j] = tok[b][first + j + 1];
  }
  torch::Tensor logp;
  {
    AutocastGuard autocast(dev);
    auto out = model->forward(in.tokens.to(dev.device), in.ages.to(dev.device), in.segments.to(dev.device));
    const auto rows = torch::arange(B, torch::TensorOptions().device(dev.device)).unsqueeze(1);
    const auto picked = out.logits.index({rows, pos.to(dev.device)});  // [B, len, V]
    logp = torch::log_softmax(picked.to(torch::kFloat32), -1).cpu();
  }
  const auto hit = logp.argmax(-1).eq(next);                               // [B, len]
  const auto next_logp = logp.gather(-1, next.unsqueeze(-1)).squeeze(-1);  // [B, len]
  auto h = hit.accessor<bool, 2>();
  auto lp = next_logp.accessor<float, 2>();
  std::vector<Scored> scored;
  for (int64_t b = 0; b < B; ++b) {
    Scored s{true, 0, 0.0};
    for (int64_t j = 0; j < len; ++j) {
      s.exact = s.exact && h[b][j];
      s.matched += h[b][j];
      s.mean_logp += lp[b][j] / double(len);
    }
    scored.push_back(s);
  }
  return scored;
}

struct Side {
  int64_t prompts = 0, exact = 0, matched = 0, too_short = 0;
  std::vector<double> mean_logp;
};

// Every subject of a side with a rare code followed by `len` tokens, scored in batches.
Side attempt_side(ClinicalTransformer& model, const data::TokenDataset& ds, const SplitSubjects& side,
                  const data::SubjectCounts& counts, const Config& cfg, const DeviceChoice& dev) {
  const int64_t len = cfg.audit.extract_tokens;
  Side out;
  for (const auto& [split, refs] : side) {
    std::vector<Attempt> attempts;
    for (size_t i = 0; i < refs.size(); ++i) {
      const int64_t rare = rarest_code(ds, split, refs[i], len, counts);
      if (rare < 0) ++out.too_short;
      else attempts.push_back({i, rare});
    }
    const auto batch = static_cast<size_t>(cfg.audit.batch_size);
    for (size_t i = 0; i < attempts.size(); i += batch) {
      const std::vector<Attempt> chunk(attempts.begin() + long(i),
                                       attempts.begin() + long(std::min(attempts.size(), i + batch)));
      for (const Scored& s : score_attempts(model, ds, split, refs, chunk, len, cfg.model.context, dev)) {
        ++out.prompts;
        out.exact += s.exact;
        out.matched += s.matched;
        out.mean_logp.push_back(s.mean_logp);
      }
    }
  }
  return out;
}

Json side_json(const Side& s, int64_t len) {
  const auto [low, high] = infer::wilson_interval(s.exact, s.prompts);
  double logp = 0;
  for (double v : s.mean_logp) logp += v;
  const double n = double(s.prompts);
  return Json{{"prompts", s.prompts},
              {"exact", s.exact},
              {"exact_rate", s.prompts ? double(s.exact) / n : NAN},
              {"exact_low", low},
              {"exact_high", high},
              {"token_match", s.prompts ? double(s.matched) / (n * double(len)) : NAN},
              {"mean_logp", s.prompts ? logp / n : NAN},
              {"too_short", s.too_short}};
}

}  // namespace

Json extraction_audit(ClinicalTransformer& model, const data::TokenDataset& ds, const SplitSubjects& members,
                      const SplitSubjects& non_members, const data::SubjectCounts& train_counts, const Config& cfg,
                      const DeviceChoice& dev) {
  const int64_t len = cfg.audit.extract_tokens;
  const Side in = attempt_side(model, ds, members, train_counts, cfg, dev);
  const Side out = attempt_side(model, ds, non_members, train_counts, cfg, dev);
  Json j{{"tokens", len},
         {"prompt", "each subject's timeline up to and including its rarest code token (fewest train subjects)"},
         {"members", side_json(in, len)},
         {"non_members", side_json(out, len)}};
  if (in.prompts > 0 && out.prompts > 0) {
    // Membership by the continuation's log-probability: exp() maps it into (0, 1], keeping its order.
    std::vector<double> p;
    std::vector<int> y;
    for (double v : in.mean_logp) p.push_back(std::exp(v)), y.push_back(1);
    for (double v : out.mean_logp) p.push_back(std::exp(v)), y.push_back(0);
    const BinaryEvaluation e = evaluate_binary(p, y, cfg.audit.bootstrap, static_cast<uint64_t>(cfg.train.seed));
    j["logp_auroc"] = Json{{"auroc", e.point.auroc}, {"auroc_low", e.auroc.lo}, {"auroc_high", e.auroc.hi}};
  }
  return j;
}

}  // namespace chart
