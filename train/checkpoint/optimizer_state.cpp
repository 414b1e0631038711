#include "train/checkpoint/optimizer_state.h"

#include "core/error.h"

namespace chart {

std::string MomentSlot::key(const std::string& kind) const {
  return whole ? kind + "/" + name : fmt::format("{}/{}@{}-{}", kind, name, begin, end);
}

std::vector<MomentSlot> moment_slots(ClinicalTransformer& model, const Zero1* zero) {
  const auto named = model->named_parameters();
  std::vector<MomentSlot> slots;
  if (!zero) {
    for (const auto& p : named)
      slots.push_back({p.key(), 0, p.value().numel(), p.value().numel(), true, p.value()});
    return slots;
  }
  for (size_t k = 0; k < zero->pieces().size(); ++k) {
    const ShardPiece& piece = zero->pieces()[k];
    const auto& p = named[piece.param];
    slots.push_back({p.key(), piece.begin, piece.end, p.value().numel(), false, zero->piece_params()[k]});
  }
  return slots;
}

NamedTensors moment_tensors(const std::vector<MomentSlot>& slots, torch::optim::AdamW& optimizer) {
  NamedTensors out;
  for (const MomentSlot& s : slots) {
    auto it = optimizer.state().find(s.tensor.unsafeGetTensorImpl());
    if (it == optimizer.state().end()) continue;  // no step taken yet
    auto& st = static_cast<torch::optim::AdamWParamState&>(*it->second);
    out.emplace_back(s.key("exp_avg"), st.exp_avg());
    out.emplace_back(s.key("exp_avg_sq"), st.exp_avg_sq());
    out.emplace_back(s.key("step"), torch::tensor(st.step(), torch::kInt64));
  }
  return out;
}

std::optional<MomentKey> parse_moment_key(const std::string& key) {
  const size_t slash = key.find('/');
  if (slash == std::string::npos) return std::nullopt;
  MomentKey k{key.substr(0, slash), key.substr(slash + 1), std::nullopt};
  if (k.kind != "exp_avg" && k.kind != "exp_avg_sq" && k.kind != "step") return std::nullopt;
  const size_t at = k.name.rfind('@');
  if (at == std::string::npos) return k;
  long long b = 0, e = 0;
  char tail = 0;
  if (std::sscanf(k.name.c_str() + at + 1, "%lld-%lld%c", &b, &e, &tail) != 2 || b < 0 || e <= b) return std::nullopt;
  k.range = std::make_pair(static_cast<int64_t>(b), static_cast<int64_t>(e));
  k.name.resize(at);
  return k;
}

}  // namespace chart

namespace chart {
namespace {

struct SavedRange {
  int64_t begin = 0, end = 0;
  torch::Tensor exp_avg, exp_avg_sq, step;
};

// name -> the ranges saved of it (one whole range for an unsharded file).
std::map<std::string, std::vector<SavedRange>> saved_ranges(const std::map<std::string, torch::Tensor>& saved,
                                                            const std::string& where) {
  std::map<std::string, std::vector<SavedRange>> out;
  for (const auto& [key, t] : saved) {
    auto k = parse_moment_key(key);
    if (!k || k->kind != "exp_avg") continue;
    const std::string suffix = key.substr(key.find('/'));
    SavedRange r{k->range ? k->range->first : 0, k->range ? k->range->second : t.numel(), t, {}, {}};
    auto sq = saved.find("exp_avg_sq" + suffix), st = saved.find("step" + suffix);
    if (sq == saved.end() || st == saved.end()) fail("{}: incomplete AdamW state for '{}'", where, key.substr(8));
    r.exp_avg_sq = sq->second;
    r.step = st->second;
    if (r.exp_avg.numel() != r.end - r.begin || r.exp_avg_sq.numel() != r.end - r.begin)
      fail("{}: AdamW state '{}' has {} elements for the range [{}, {})", where, key, r.exp_avg.numel(), r.begin, r.end);
    out[k->name].push_back(std::move(r));
  }
  return out;
}

}  // namespace

void restore_moments(const std::vector<MomentSlot>& slots, torch::optim::AdamW& optimizer,
                     const std::map<std::string, torch::Tensor>& saved, const std::string& where) {
  const auto ranges = saved_ranges(saved, where);
  for (const MomentSlot& s : slots) {
    auto it = ranges.find(s.name);
    if (it == ranges.end()) continue;  // saved before the first step
    const int64_t n = s.end - s.begin;
    auto opts = s.tensor.options().dtype(torch::kFloat32);
    torch::Tensor a = torch::zeros({n}, opts), sq = torch::zeros({n}, opts);
    int64_t covered = 0, step = -1;
    for (const SavedRange& r : it->second) {  // saved ranges overlapping this slot, copied in part
      const int64_t from = std::max(s.begin, r.begin), to = std::min(s.end, r.end);
      if (from >= to) continue;
      a.narrow(0, from - s.begin, to - from).copy_(r.exp_avg.reshape({-1}).narrow(0, from - r.begin, to - from));
      sq.narrow(0, from - s.begin, to - from).copy_(r.exp_avg_sq.reshape({-1}).narrow(0, from - r.begin, to - from));
      const int64_t st = r.step.item<int64_t>();
      if (step >= 0 && st != step) fail("{}: AdamW step counts of '{}' differ between its pieces ({} and {})", where, s.name, step, st);
      step = st;
      covered += to - from;
    }
    if (covered != n)
      fail("{}: AdamW state of '{}' covers {} of its elements [{}, {}) (a rank's optimizer file is missing?)", where,
           s.name, covered, s.begin, s.end);
    auto state = std::make_unique<torch::optim::AdamWParamState>();
    state->step(step);
    state->exp_avg(a.view_as(s.tensor).to(s.tensor.dtype()));
    state->exp_avg_sq(sq.view_as(s.tensor).to(s.tensor.dtype()));
    optimizer.state()[s.tensor.unsafeGetTensorImpl()] = std::move(state);
  }
}

}  // namespace chart
