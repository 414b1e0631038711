#include "train/checkpoint/optimizer_state.h"

#include "core/error.h"
#include "train/checkpoint/checkpoint.h"

namespace chart {

std::string MomentSlot::key(const std::string& kind) const {
  return whole ? kind + "/" + name : fmt::format("{}/{}@{}-{}", kind, name, begin, end);
}

std::vector<MomentSlot> moment_slots(ClinicalTransformer& model, const Zero1* zero) {
  if (zero) return moment_slots(model, zero->pieces(), zero->piece_params());
  std::vector<MomentSlot> slots;
  for (const auto& p : model->named_parameters())
    slots.push_back({p.key(), 0, p.value().numel(), p.value().numel(), true, p.value()});
  return slots;
}

std::vector<MomentSlot> moment_slots(ClinicalTransformer& model, const std::vector<ShardPiece>& pieces,
                                     const std::vector<torch::Tensor>& views) {
  const auto named = model->named_parameters();
  std::vector<MomentSlot> slots;
  for (size_t k = 0; k < pieces.size(); ++k) {
    const auto& p = named[pieces[k].param];
    slots.push_back({p.key(), pieces[k].begin, pieces[k].end, p.value().numel(), false, views.at(k)});
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

// One saved range of one parameter: where its exp_avg, exp_avg_sq and step lie in which file.
struct SavedRange {
  const std::filesystem::path* file = nullptr;
  const SafetensorsLayout* layout = nullptr;
  const SafetensorsEntry *exp_avg = nullptr, *exp_avg_sq = nullptr, *step = nullptr;
  int64_t begin = 0, end = 0;
};

struct OptimizerFile {
  std::filesystem::path path;
  SafetensorsLayout layout;
};

// name -> its saved ranges, from the files' headers alone.
std::map<std::string, std::vector<SavedRange>> index_ranges(const std::vector<OptimizerFile>& files) {
  std::map<std::string, std::vector<SavedRange>> out;
  for (const OptimizerFile& f : files) {
    std::map<std::string, const SafetensorsEntry*> by_key;
    for (const auto& e : f.layout.tensors) by_key[e.name] = &e;
    for (const auto& e : f.layout.tensors) {
      auto k = parse_moment_key(e.name);
      if (!k || k->kind != "exp_avg") continue;
      const std::string suffix = e.name.substr(e.name.find('/'));
      auto sq = by_key.find("exp_avg_sq" + suffix), st = by_key.find("step" + suffix);
      if (sq == by_key.end() || st == by_key.end() || st->second->numel != 1)
        fail("{}: incomplete AdamW state for '{}'", f.path.string(), suffix.substr(1));
      SavedRange r{&f.path, &f.layout, &e, sq->second, st->second, k->range ? k->range->first : 0,
                   k->range ? k->range->second : static_cast<int64_t>(e.numel)};
      if (static_cast<int64_t>(e.numel) != r.end - r.begin || sq->second->numel != e.numel)
        fail("{}: AdamW state '{}' has {} elements for the range [{}, {})", f.path.string(), e.name, e.numel, r.begin,
             r.end);
      out[k->name].push_back(r);
    }
  }
  return out;
}

torch::Tensor read_checked(const SavedRange& r, const SafetensorsEntry& e, int64_t from, int64_t to) {
  torch::Tensor t = read_safetensors_elements(*r.file, *r.layout, e, from, to);
  require_finite(NamedTensors{{e.name, t}}, r.file->string());
  return t;
}

}  // namespace

void load_moments(const std::filesystem::path& dir, const std::vector<MomentSlot>& slots,
                  torch::optim::AdamW& optimizer) {
  std::vector<OptimizerFile> files;  // headers only: a rank reads the bytes of its own slots alone
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const std::string f = e.path().filename().string();
    if (f == "optimizer.safetensors" || (f.rfind("optimizer.rank", 0) == 0 && e.path().extension() == ".safetensors"))
      files.push_back({e.path(), read_safetensors_layout(e.path())});
  }
  const auto ranges = index_ranges(files);
  for (const MomentSlot& s : slots) {
    auto it = ranges.find(s.name);
    if (it == ranges.end()) continue;  // saved before the first step
    const int64_t n = s.end - s.begin;
    const auto opts = s.tensor.options().dtype(torch::kFloat32);
    torch::Tensor a = torch::zeros({n}, opts), sq = torch::zeros({n}, opts);
    int64_t covered = 0, step = -1;
    for (const SavedRange& r : it->second) {  // the saved ranges overlapping this slot, read in part
      const int64_t from = std::max(s.begin, r.begin), to = std::min(s.end, r.end);
      if (from >= to) continue;
      a.narrow(0, from - s.begin, to - from).copy_(read_checked(r, *r.exp_avg, from - r.begin, to - r.begin));
      sq.narrow(0, from - s.begin, to - from).copy_(read_checked(r, *r.exp_avg_sq, from - r.begin, to - r.begin));
      const int64_t st = read_checked(r, *r.step, 0, 1).item<int64_t>();
      if (step >= 0 && st != step)
        fail("{}: AdamW step counts of '{}' differ between its pieces ({} and {})", r.file->string(), s.name, step, st);
      step = st;
      covered += to - from;
    }
    if (covered != n)
      fail("checkpoint {}: AdamW state of '{}' covers {} of its elements [{}, {}) (a rank's optimizer file is missing?)",
           dir.string(), s.name, covered, s.begin, s.end);
    auto state = std::make_unique<torch::optim::AdamWParamState>();
    state->step(step);
    state->exp_avg(a.view_as(s.tensor).to(s.tensor.dtype()));
    state->exp_avg_sq(sq.view_as(s.tensor).to(s.tensor.dtype()));
    optimizer.state()[s.tensor.unsafeGetTensorImpl()] = std::move(state);
  }
}

}  // namespace chart
