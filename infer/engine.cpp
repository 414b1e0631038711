#include "infer/engine.h"

#include <map>

#include "core/time.h"
#include "data/vocab.h"
#include "infer/prefill.h"
#include "model/autocast.h"

namespace chart::infer {
namespace {

// One decode slot: the trajectory it holds, and how many positions of its cache row are filled.
struct Slot {
  bool busy = false;
  size_t prompt = 0;
  int64_t sample = 0;
  std::vector<int64_t> tokens;  // history: prompt, then what was sampled (prompts a new window)
  std::vector<float> ages;
  double age = 0, elapsed_us = 0;
  int64_t generated = 0, length = 0;
  std::vector<int64_t> sampled;
};

// A prompt whose samples are not all started yet keeps its prefilled cache.
struct Waiting {
  PrefilledPrompt pre;
  int64_t started = 0;
};

enum class Next { kDecode, kEnded };

class EngineRun {
 public:
  EngineRun(ClinicalTransformer& model, const TokenRoles& roles, const EngineOptions& opt, const DeviceChoice& dev,
            const std::vector<Prompt>& prompts, EngineStats& stats, const std::function<void(size_t)>& done)
      : model_(model), roles_(roles), opt_(opt), dev_(dev), prompts_(prompts), stats_(stats), done_(done),
        banned_(roles.banned.to(dev.device)), results_(prompts.size() * size_t(opt.samples)),
        finished_(prompts.size(), 0) {
    std::vector<int64_t> outcome;
    for (size_t id = 0; id < roles.outcome.size(); ++id)
      if (roles.outcome[id]) outcome.push_back(int64_t(id));
    outcome_ids_ = torch::tensor(outcome, torch::kInt64).to(dev.device);
    const auto total = static_cast<int64_t>(results_.size());
    slots_.resize(size_t(std::max<int64_t>(1, std::min(opt.slots, total))));
    pool_ = model_->new_cache(int64_t(slots_.size()), opt.context);
  }

  std::vector<TrajectoryResult> run() {
    while (true) {
      admit();
      if (busy() == 0) break;
      step();
      compact_if_sparse();
    }
    return std::move(results_);
  }

 private:
  int64_t busy() const {
    int64_t n = 0;
    for (const auto& s : slots_) n += s.busy;
    return n;
  }
  bool work_waiting() const { return !waiting_.empty() || next_prompt_ < prompts_.size(); }

  // Fills every free slot with the next sample of a prompt already prefilled, or prefills the
  // next prompt; its cache is dropped once all its samples have started.
  void admit() {
    for (size_t s = 0; s < slots_.size() && work_waiting(); ++s) {
      if (slots_[s].busy) continue;
      if (waiting_.empty()) {
        const Prompt& p = prompts_[next_prompt_];
        const auto from = p.tokens.size() - std::min(p.tokens.size(), size_t(opt_.prompt_tokens));
        waiting_[next_prompt_].pre = prefill(model_, {p.tokens.begin() + long(from), p.tokens.end()},
                                             {p.ages.begin() + long(from), p.ages.end()}, dev_);
        ++stats_.prefills;
        stats_.prefill_tokens += int64_t(p.tokens.size() - from);
        ++next_prompt_;
      }
      auto it = waiting_.begin();
      start(s, it->first, it->second.started++, it->second.pre);
      if (it->second.started == opt_.samples) waiting_.erase(it);
    }
  }

  void start(size_t s, size_t prompt, int64_t sample, const PrefilledPrompt& pre) {
    const Prompt& p = prompts_[prompt];
    const auto from = p.tokens.size() - std::min(p.tokens.size(), size_t(opt_.prompt_tokens));
    Slot& slot = slots_[s];
    slot = Slot{};
    slot.busy = true;
    slot.prompt = prompt;
    slot.sample = sample;
    slot.tokens.assign(p.tokens.begin() + long(from), p.tokens.end());
    slot.ages.assign(p.ages.begin() + long(from), p.ages.end());
    slot.age = p.age;
    slot.elapsed_us = p.elapsed_us;
    place(s, pre);
  }

  // The slot's cache row and next-token logits become those of a prefilled prompt.
  void place(size_t s, const PrefilledPrompt& pre) {
    copy_into_slot(pre, pool_, int64_t(s));
    if (!logits_.defined()) logits_ = torch::zeros({int64_t(slots_.size()), pre.logits.size(1)}, pre.logits.options());
    logits_[int64_t(s)].copy_(pre.logits[0]);
    slots_[s].length = pre.cache.length;
  }

  // One token for every busy slot; those that go on are decoded together, a full one re-prompted.
  void step() {
    std::vector<int64_t> rows;
    for (size_t s = 0; s < slots_.size(); ++s)
      if (slots_[s].busy) rows.push_back(int64_t(s));
    std::vector<double> u;  // each trajectory's own uniform for this step
    for (int64_t s : rows) {
      const Slot& slot = slots_[size_t(s)];
      u.push_back(trajectory_uniform(opt_.seed, prompts_[slot.prompt].row, slot.sample, slot.generated));
    }
    // Drawn where the logits are: the host gets a token and an outcome probability per row.
    const Draws draws = draw_tokens(
        sampling_distribution(logits_.index_select(0, torch::tensor(rows).to(dev_.device)), banned_, opt_.temperature,
                              opt_.top_k),
        u, outcome_ids_);
    std::vector<int64_t> decode_rows;
    for (size_t i = 0; i < rows.size(); ++i) {
      Slot& slot = slots_[size_t(rows[i])];
      // This step's chance of an outcome code, counted whatever is drawn.
      results_[slot.prompt * size_t(opt_.samples) + size_t(slot.sample)].expected += draws.outcome[i];
      const int64_t token = draws.tokens[i];
      if (advance(slot, token) == Next::kEnded) {
        finish(size_t(rows[i]));
      } else if (slot.length == opt_.context && !new_window(size_t(rows[i]))) {
        // prefilled with its new token: its logits are ready
      } else {
        decode_rows.push_back(rows[i]);
      }
    }
    if (!decode_rows.empty()) decode(decode_rows);
  }

  // The sampled token moves the trajectory's clock; says whether it goes on.
  Next advance(Slot& t, int64_t token) {
    const auto id = size_t(token);
    t.elapsed_us += double(roles_.advance_us[id]);
    t.age += micros_to_years(double(roles_.advance_us[id]));
    t.tokens.push_back(token);
    t.ages.push_back(float(t.age));
    if (opt_.keep_tokens) t.sampled.push_back(token);
    ++t.generated;
    ++stats_.generated;
    TrajectoryResult& r = results_[t.prompt * size_t(opt_.samples) + size_t(t.sample)];
    r.generated = t.generated;
    if (t.elapsed_us > double(opt_.horizon_us)) return Next::kEnded;  // past the horizon: no hit
    if (roles_.outcome[id]) {
      r.hit = true;
      return Next::kEnded;
    }
    if (roles_.stop[id]) return Next::kEnded;
    if (t.generated >= opt_.max_new_tokens) {
      r.truncated = true;
      return Next::kEnded;
    }
    return Next::kDecode;
  }

  void finish(size_t s) {
    Slot& slot = slots_[s];
    results_[slot.prompt * size_t(opt_.samples) + size_t(slot.sample)].sampled = std::move(slot.sampled);
    slot.busy = false;
    if (++finished_[slot.prompt] == opt_.samples && done_) done_(slot.prompt);
  }

  // A full slot goes on in a new window of its last prompt_tokens tokens (the one just sampled
  // among them): its cache slides to keep the others and the new token is decoded as usual
  // (returns true), or the window is prefilled, new token included (returns false).
  bool new_window(size_t s) {
    Slot& slot = slots_[s];
    ++stats_.windows;
    if (opt_.slide && opt_.prompt_tokens > 1) {
      model_->slide_cache_row(pool_, int64_t(s), slot.length, opt_.prompt_tokens - 1);
      slot.length = opt_.prompt_tokens - 1;
      return true;
    }
    const auto from = slot.tokens.size() - std::min(slot.tokens.size(), size_t(opt_.prompt_tokens));
    place(s, prefill(model_, {slot.tokens.begin() + long(from), slot.tokens.end()},
                     {slot.ages.begin() + long(from), slot.ages.end()}, dev_));
    ++stats_.prefills;
    stats_.prefill_tokens += int64_t(slot.tokens.size() - from);
    return false;
  }

  // Every row of the pool goes through the model (a row not listed gets a padding token at its
  // own position, overwritten before it is ever attended); listed rows take the new logits.
  void decode(const std::vector<int64_t>& rows) {
    const auto n = int64_t(slots_.size());
    std::vector<int64_t> tokens(size_t(n), data::Vocab::kPad), positions(size_t(n), 0);
    std::vector<float> ages(size_t(n), 0.f);
    for (size_t s = 0; s < slots_.size(); ++s) positions[s] = std::min(slots_[s].length, opt_.context - 1);
    for (int64_t r : rows) {
      Slot& slot = slots_[size_t(r)];
      tokens[size_t(r)] = slot.tokens.back();
      ages[size_t(r)] = slot.ages.back();
    }
    torch::Tensor out;
    {
      AutocastGuard autocast(dev_);
      out = model_->decode_rows(torch::tensor(tokens).to(dev_.device), torch::tensor(ages).to(dev_.device), positions,
                                pool_);
    }
    auto index = torch::tensor(rows).to(dev_.device);
    logits_.index_copy_(0, index, out.index_select(0, index).to(logits_.dtype()));
    for (int64_t r : rows) ++slots_[size_t(r)].length;
    ++stats_.decode_steps;
    stats_.slot_steps += n;
  }

  // With nothing left to admit and at most half the slots busy, the pool shrinks to its busy
  // rows, so the last trajectories do not pay for idle ones.
  void compact_if_sparse() {
    const int64_t b = busy();
    if (work_waiting() || b == 0 || b * 2 > int64_t(slots_.size())) return;
    std::vector<int64_t> keep;
    std::vector<Slot> kept;
    for (size_t s = 0; s < slots_.size(); ++s)
      if (slots_[s].busy) {
        keep.push_back(int64_t(s));
        kept.push_back(std::move(slots_[s]));
      }
    auto index = torch::tensor(keep).to(dev_.device);
    pool_.select_rows(index);
    logits_ = logits_.index_select(0, index);
    slots_ = std::move(kept);
  }

  ClinicalTransformer& model_;
  const TokenRoles& roles_;
  const EngineOptions& opt_;
  const DeviceChoice& dev_;
  const std::vector<Prompt>& prompts_;
  EngineStats& stats_;
  const std::function<void(size_t)>& done_;
  torch::Tensor banned_, logits_;  // logits_ [slots, V]: each slot's next token
  KVCache pool_;
  std::vector<Slot> slots_;
  std::map<size_t, Waiting> waiting_;
  size_t next_prompt_ = 0;
  std::vector<TrajectoryResult> results_;
  std::vector<int64_t> finished_;
  torch::Tensor outcome_ids_;  // [K] int64 on the device: the outcome codes' tokens
};

}  // namespace

std::vector<TrajectoryResult> generate(ClinicalTransformer& model, const TokenRoles& roles, const EngineOptions& opt,
                                       const DeviceChoice& dev, const std::vector<Prompt>& prompts, EngineStats& stats,
                                       const std::function<void(size_t)>& on_prompt_done) {
  TORCH_CHECK(opt.samples > 0 && opt.context > opt.prompt_tokens && opt.prompt_tokens > 0 && opt.max_new_tokens > 0,
              "infer::generate: samples, prompt_tokens < context and max_new_tokens must be positive");
  torch::NoGradGuard no_grad;
  return EngineRun(model, roles, opt, dev, prompts, stats, on_prompt_done).run();
}

}  // namespace chart::infer
