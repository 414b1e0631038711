#include "data/loader.h"

#include <algorithm>

#include "core/error.h"
#include "core/time.h"

namespace chart::data {
namespace {


// Windows a subject of `len` tokens yields without packing: each needs a token and its target.
int64_t subject_windows(int64_t len, int64_t context) {
  return len < 2 ? 0 : (len - 2) / context + 1;
}

}  // namespace

Loader::Loader(const TokenDataset& dataset, std::string split, LoaderOptions options, LoaderState state)
    : ds_(dataset), split_(std::move(split)), opt_(options), state_(state), produce_at_(state),
      order_(ds_.shards(split_),
             [packing = opt_.packing, context = opt_.context](const SubjectEntry& e) -> int64_t {
               return packing ? e.n_tokens : subject_windows(e.n_tokens, context);
             },
             opt_.shuffle, opt_.seed) {
  if (opt_.context < 1 || opt_.batch_size < 1 || opt_.world_size < 1 || opt_.rank < 0 ||
      opt_.rank >= opt_.world_size)
    fail("loader: bad options (context {}, batch {}, rank {} of {})", opt_.context,
         opt_.batch_size, opt_.rank, opt_.world_size);
  const int64_t total = order_.total_units();
  n_windows_ = !opt_.packing ? total : total > 0 ? (total - 1) / opt_.context : 0;
  const int64_t per_step = opt_.batch_size * opt_.world_size;
  steps_per_epoch_ = n_windows_ / per_step;
  if (steps_per_epoch_ == 0)
    fail("{}: split '{}' has {} subjects and {} windows of {} tokens, fewer than one step needs "
         "({} windows = batch_size {} x {} rank(s))", ds_.dir().string(), split_, order_.n_subjects(),
         n_windows_, opt_.context, per_step, opt_.batch_size, opt_.world_size);
  if (state_.step >= steps_per_epoch_) state_ = produce_at_ = {state_.epoch + 1, 0};
  if (opt_.prefetch > 0) thread_ = std::thread([this] { producer(); });
}

Loader::~Loader() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Loader::fill_row(int64_t window, int64_t row, Batch& b, std::vector<int32_t>& cu) {
  const auto& shards = ds_.shards(split_);
  const int64_t L = opt_.context;
  int64_t* tok = b.tokens.data_ptr<int64_t>() + row * L;
  int64_t* tgt = b.targets.data_ptr<int64_t>() + row * L;
  float* age = b.ages.data_ptr<float>() + row * L;
  float* dt = b.target_dt.data_ptr<float>() + row * L;
  int32_t* seg = b.segments.data_ptr<int32_t>() + row * L;
  // Copies tokens [from, to) of the subject at p into positions starting at j; returns the new j.
  auto copy = [&](const EpochOrder::Position& p, int64_t from, int64_t to, int64_t j, int32_t segment) {
    const TokenShard& sh = shards[p.ref.shard];
    const SubjectEntry& e = sh.subject(p.ref.entry);
    const uint32_t* t = sh.tokens() + e.token_start;
    const int64_t* tm = sh.times() + e.token_start;
    cu.push_back(static_cast<int32_t>(row * L + j));
    for (int64_t k = from; k < to && j < L; ++k, ++j) {
      tok[j] = t[k];
      tgt[j] = k + 1 < e.n_tokens ? static_cast<int64_t>(t[k + 1]) : -1;
      dt[j] = k + 1 < e.n_tokens ? gap_days(tm[k], tm[k + 1]) : 0.0f;
      age[j] = age_years(tm[k], e.birth_us);
      seg[j] = segment;
    }
    return j;
  };
  int64_t j = 0;
  if (opt_.packing) {
    // The window's last position predicts the token after it, inside the same subject only; the
    // epoch's stream always holds that token (n_windows_ leaves it), so next() never runs out.
    const int64_t pos = window * L;
    EpochOrder::Position p = order_.locate(pos);
    j = copy(p, pos - p.start, p.units, j, 0);
    for (int32_t segment = 1; j < L;) {
      p = order_.next(p);
      if (p.units > 0) j = copy(p, 0, p.units, j, segment++);
    }
  } else {
    const EpochOrder::Position p = order_.locate(window);
    const int64_t start = (window - p.start) * L;
    j = copy(p, start, start + L, j, 0);
  }
  if (j < L) cu.push_back(static_cast<int32_t>(row * L + j));  // the padding is a segment of its own
  for (; j < L; ++j) {
    tok[j] = Vocab::kPad;
    tgt[j] = -1;
    age[j] = 0;
    dt[j] = 0;
    seg[j] = -1;
  }
}

Batch Loader::build(int64_t epoch, int64_t step) {
  order_.set_epoch(epoch);
  const int64_t B = opt_.batch_size, L = opt_.context;
  Batch b;
  b.epoch = epoch;
  b.step = step;
  b.tokens = torch::empty({B, L}, torch::kInt64);
  b.targets = torch::empty({B, L}, torch::kInt64);
  b.ages = torch::empty({B, L}, torch::kFloat32);
  b.target_dt = torch::empty({B, L}, torch::kFloat32);
  b.segments = torch::empty({B, L}, torch::kInt32);
  std::vector<int32_t> cu;
  const int64_t first = (step * opt_.world_size + opt_.rank) * B;
  for (int64_t r = 0; r < B; ++r) fill_row(first + r, r, b, cu);
  cu.push_back(static_cast<int32_t>(B * L));
  b.cu_seqlens = torch::from_blob(cu.data(), {static_cast<int64_t>(cu.size())}, torch::kInt32).clone();
  b.n_targets = b.targets.ge(0).sum().item<int64_t>();
  if (opt_.pin_memory) {  // on the prefetch thread, off the training loop's path
    for (auto* t : {&b.tokens, &b.targets, &b.ages, &b.target_dt, &b.segments, &b.cu_seqlens}) *t = t->pin_memory();
  }
  return b;
}

void Loader::seek(LoaderState state) {
  if (opt_.prefetch > 0) fail("loader: seek() needs prefetch 0 (split '{}')", split_);
  state_ = state.step >= steps_per_epoch_ ? LoaderState{state.epoch + 1, 0} : state;
}

void Loader::producer() {
  for (;;) {
    LoaderState at;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || static_cast<int>(queue_.size()) < opt_.prefetch; });
      if (stop_) return;
      at = produce_at_;
    }
    Batch b;
    try {
      b = build(at.epoch, at.step);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu_);
      error_ = std::current_exception();
      cv_.notify_all();
      return;
    }
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(std::move(b));
    produce_at_ = at.step + 1 < steps_per_epoch_ ? LoaderState{at.epoch, at.step + 1}
                                                 : LoaderState{at.epoch + 1, 0};
    cv_.notify_all();
  }
}

Batch Loader::next() {
  Batch b;
  if (opt_.prefetch > 0) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return !queue_.empty() || error_; });
    if (queue_.empty()) std::rethrow_exception(error_);
    b = std::move(queue_.front());
    queue_.pop_front();
    cv_.notify_all();
  } else {
    b = build(state_.epoch, state_.step);
  }
  state_ = state_.step + 1 < steps_per_epoch_ ? LoaderState{state_.epoch, state_.step + 1}
                                              : LoaderState{state_.epoch + 1, 0};
  return b;
}

}  // namespace chart::data
