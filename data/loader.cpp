#include "data/loader.h"

#include <algorithm>

#include "core/error.h"
#include "core/mix.h"
#include "core/time.h"

namespace chart::data {
namespace {


// Windows a subject of `len` tokens yields without packing: each needs a token and its target.
int64_t subject_windows(int64_t len, int64_t context) {
  return len < 2 ? 0 : (len - 2) / context + 1;
}

}  // namespace

Loader::Loader(const TokenDataset& dataset, std::string split, LoaderOptions options, LoaderState state)
    : ds_(dataset), split_(std::move(split)), opt_(options), state_(state), produce_at_(state) {
  if (opt_.context < 1 || opt_.batch_size < 1 || opt_.world_size < 1 || opt_.rank < 0 ||
      opt_.rank >= opt_.world_size)
    fail("loader: bad options (context {}, batch {}, rank {} of {})", opt_.context,
         opt_.batch_size, opt_.rank, opt_.world_size);
  subjects_ = ds_.subjects(split_);
  const auto& shards = ds_.shards(split_);
  int64_t total = 0;
  for (const auto& s : subjects_) {
    int64_t len = shards[s.shard].subject(s.entry).n_tokens;
    total += len;
    if (!opt_.packing) n_windows_ += subject_windows(len, opt_.context);
  }
  if (opt_.packing) n_windows_ = total > 0 ? (total - 1) / opt_.context : 0;
  const int64_t per_step = opt_.batch_size * opt_.world_size;
  steps_per_epoch_ = n_windows_ / per_step;
  if (steps_per_epoch_ == 0)
    fail("{}: split '{}' has {} subjects and {} windows of {} tokens, fewer than one step needs "
         "({} windows = batch_size {} x {} rank(s))", ds_.dir().string(), split_, subjects_.size(),
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

void Loader::order_epoch(int64_t epoch) {
  if (epoch == ordered_epoch_) return;
  ordered_epoch_ = epoch;
  order_ = subjects_;
  if (opt_.shuffle) {  // Fisher-Yates with our own generator: the same order on every platform
    uint64_t s = mix(opt_.seed ^ mix(static_cast<uint64_t>(epoch) + 1));
    for (size_t i = order_.size(); i > 1; --i) {
      s = mix(s);
      std::swap(order_[i - 1], order_[s % i]);
    }
  }
  const auto& shards = ds_.shards(split_);
  prefix_.assign(order_.size() + 1, 0);
  for (size_t i = 0; i < order_.size(); ++i) {
    int64_t len = shards[order_[i].shard].subject(order_[i].entry).n_tokens;
    prefix_[i + 1] = prefix_[i] + (opt_.packing ? len : subject_windows(len, opt_.context));
  }
}

void Loader::fill_row(int64_t window, int64_t row, Batch& b, std::vector<int32_t>& cu) {
  const auto& shards = ds_.shards(split_);
  const int64_t L = opt_.context;
  int64_t* tok = b.tokens.data_ptr<int64_t>() + row * L;
  int64_t* tgt = b.targets.data_ptr<int64_t>() + row * L;
  float* age = b.ages.data_ptr<float>() + row * L;
  float* dt = b.target_dt.data_ptr<float>() + row * L;
  int32_t* seg = b.segments.data_ptr<int32_t>() + row * L;
  auto subject_at = [&](int64_t unit) {  // the subject whose units cover `unit`
    return static_cast<size_t>(std::upper_bound(prefix_.begin(), prefix_.end(), unit) - prefix_.begin() - 1);
  };
  // Copies tokens [from, to) of ordered subject i into positions starting at j; returns the new j.
  auto copy = [&](size_t i, int64_t from, int64_t to, int64_t j, int32_t segment) {
    const TokenShard& sh = shards[order_[i].shard];
    const SubjectEntry& e = sh.subject(order_[i].entry);
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
    int64_t pos = window * L;
    size_t i = subject_at(pos);
    for (int32_t segment = 0; j < L; ++segment, ++i) {
      int64_t from = pos + j - prefix_[i];
      int64_t len = prefix_[i + 1] - prefix_[i];
      j = copy(i, from, len, j, segment);
      // The window's last position predicts the token after it, inside the same subject only.
    }
  } else {
    size_t i = subject_at(window);
    int64_t start = (window - prefix_[i]) * L;
    j = copy(i, start, start + L, j, 0);
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
  order_epoch(epoch);
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
