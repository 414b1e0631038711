// The loader: windows that reproduce the token stream exactly, never predict across subjects,
// shuffle deterministically, shard disjointly by rank and resume from a small state; and the
// token shard reader's refusal of damaged files.
#include <gtest/gtest.h>

#include <fstream>
#include <set>

#include "core/config.h"
#include "core/error.h"
#include "data/epoch_order.h"
#include "data/loader.h"
#include "data/prepare.h"
#include "data/token_dataset.h"
#include "tests/token_fixture.h"
#include "tests/test_util.h"

namespace chart {
namespace {
using testing::days;
using testing::Row;
using testing::TempDir;
namespace fs = std::filesystem;

// 60 train subjects of 3..40 events each (so some fill several windows of 16 tokens).
fs::path make_dataset(const TempDir& dir) {
  return testing::make_token_dataset(dir.path(), {60, 12, 12}, [](int s, int i) {
    const int64_t id = 1000 * (s + 1) + i;
    auto rows = testing::born(id, i % 2 ? "GENDER//F" : "GENDER//M", days(7305));
    const int n = 3 + (i * 7) % 38;
    for (int k = 0; k < n; ++k)
      rows.push_back({id, days(15000 + 3 * k + 0.01 * i), "DX//" + std::to_string(k % 5),
                      k % 3 ? std::optional<float>() : std::optional<float>(float(k + i))});
    return rows;
  });
}

data::LoaderOptions opts(int64_t batch, bool packing = true, bool shuffle = true) {
  data::LoaderOptions o;
  o.context = 16;
  o.batch_size = batch;
  o.packing = packing;
  o.shuffle = shuffle;
  o.seed = 7;
  return o;
}

bool same(const data::Batch& a, const data::Batch& b) {
  return a.tokens.equal(b.tokens) && a.targets.equal(b.targets) && a.ages.equal(b.ages) &&
         a.target_dt.equal(b.target_dt) &&
         a.segments.equal(b.segments) && a.cu_seqlens.equal(b.cu_seqlens);
}

TEST(Loader, PackedWindowsReproduceTheStreamAndStopAtSubjectEnds) {
  TempDir dir;
  auto ds = data::TokenDataset::open(make_dataset(dir));
  // Without shuffling, the stream is the subjects in shard order laid end to end.
  std::vector<int64_t> stream, next;  // next: the following token of the same subject, or -1
  const auto& shard = ds.shards("train").at(0);
  for (size_t e = 0; e < shard.n_subjects(); ++e) {
    const auto& s = shard.subject(e);
    for (uint32_t k = 0; k < s.n_tokens; ++k) {
      stream.push_back(shard.tokens()[s.token_start + k]);
      next.push_back(k + 1 < s.n_tokens ? int64_t(shard.tokens()[s.token_start + k + 1]) : int64_t(-1));
    }
  }
  data::Loader loader(ds, "train", opts(4, true, false));
  EXPECT_EQ(loader.windows_per_epoch(), static_cast<int64_t>((stream.size() - 1) / 16));
  for (int step = 0; step < loader.steps_per_epoch(); ++step) {
    data::Batch b = loader.next();
    for (int64_t r = 0; r < 4; ++r) {
      int64_t w = step * 4 + r;
      for (int64_t j = 0; j < 16; ++j) {
        ASSERT_EQ(b.tokens[r][j].item<int64_t>(), stream[w * 16 + j]);
        ASSERT_EQ(b.targets[r][j].item<int64_t>(), next[w * 16 + j]);
      }
      // A segment starts exactly at [BOS] (or at the row start).
      for (int64_t j = 1; j < 16; ++j)
        EXPECT_EQ(b.segments[r][j].item<int32_t>() != b.segments[r][j - 1].item<int32_t>(),
                  b.tokens[r][j].item<int64_t>() == data::Vocab::kBos);
    }
    // cu_seqlens marks every segment start in the flattened batch, then the end.
    auto cu = b.cu_seqlens;
    auto seg = b.segments.flatten();
    EXPECT_EQ(cu[0].item<int32_t>(), 0);
    EXPECT_EQ(cu[-1].item<int32_t>(), 64);
    int64_t starts = 0;
    for (int64_t p = 0; p < 64; ++p)
      starts += (p % 16 == 0 || seg[p].item<int32_t>() != seg[p - 1].item<int32_t>());
    EXPECT_EQ(cu.numel() - 1, starts);
  }
}

TEST(Loader, OneSubjectPerRowPadsAndCoversEachSubjectOncePerEpoch) {
  TempDir dir;
  auto ds = data::TokenDataset::open(make_dataset(dir));
  data::Loader loader(ds, "train", opts(2, /*packing=*/false));
  std::multiset<std::pair<int64_t, float>> firsts;  // (first token, first age) of each window
  int64_t windows = 0;
  for (int step = 0; step < loader.steps_per_epoch(); ++step) {
    data::Batch b = loader.next();
    EXPECT_EQ(b.epoch, 0);
    for (int64_t r = 0; r < 2; ++r) {
      auto seg = b.segments[r];
      EXPECT_EQ(seg.max().item<int32_t>(), 0);  // one subject
      for (int64_t j = 0; j < 16; ++j)
        if (seg[j].item<int32_t>() < 0) {
          EXPECT_EQ(b.tokens[r][j].item<int64_t>(), data::Vocab::kPad);
          EXPECT_EQ(b.targets[r][j].item<int64_t>(), -1);
        }
      ++windows;
    }
  }
  EXPECT_EQ(windows, loader.steps_per_epoch() * 2);
  EXPECT_GE(loader.windows_per_epoch(), 60);  // at least one window per subject
}

TEST(Loader, ShufflingIsDeterministicAndChangesPerEpoch) {
  TempDir dir;
  auto ds = data::TokenDataset::open(make_dataset(dir));
  data::Loader a(ds, "train", opts(4)), b(ds, "train", opts(4));
  auto o = opts(4);
  o.seed = 8;
  data::Loader c(ds, "train", o);
  data::Batch a0 = a.next(), b0 = b.next(), c0 = c.next();
  EXPECT_TRUE(same(a0, b0));
  EXPECT_FALSE(same(a0, c0));
  // The same step of the next epoch sees a different order.
  data::Loader d(ds, "train", opts(4), {1, 0});
  EXPECT_FALSE(same(a0, d.next()));
}

// Each epoch visits every subject exactly once, in an order that changes per epoch, from state
// of O(sqrt(subjects)) entries rather than a per-subject array on every rank.
TEST(EpochOrder, VisitsEverySubjectOncePerEpochFromSqrtState) {
  TempDir dir;
  auto ds = data::TokenDataset::open(make_dataset(dir));
  const auto& shards = ds.shards("train");
  data::EpochOrder order(shards, [](const data::SubjectEntry& e) -> int64_t { return e.n_tokens; }, true, 7);
  ASSERT_EQ(order.n_subjects(), 60);
  std::vector<std::vector<int64_t>> ids_by_epoch;
  for (int64_t epoch : {0, 1}) {
    order.set_epoch(epoch);
    std::vector<int64_t> ids;
    int64_t covered = 0;
    auto p = order.locate(0);
    for (int i = 0;; ++i) {
      EXPECT_EQ(p.start, covered);
      const auto& e = shards[p.ref.shard].subject(p.ref.entry);
      EXPECT_EQ(p.units, e.n_tokens);
      ids.push_back(e.subject_id);
      covered += p.units;
      if (i + 1 == order.n_subjects()) break;
      p = order.next(p);
    }
    EXPECT_EQ(covered, order.total_units());
    // locate() finds the subject covering any unit, including the last one.
    auto last = order.locate(order.total_units() - 1);
    EXPECT_EQ(last.start + last.units, order.total_units());
    EXPECT_EQ(std::set<int64_t>(ids.begin(), ids.end()).size(), 60u) << "a subject seen twice";
    ids_by_epoch.push_back(ids);
  }
  EXPECT_NE(ids_by_epoch[0], ids_by_epoch[1]);
  // Blocks of 8 (ceil sqrt 60): counts, order and prefix per block plus one block's order and prefix.
  EXPECT_LE(order.entries_held(), 5 * 8 + 3 + static_cast<int64_t>(shards.size()));
  EXPECT_THROW(order.locate(order.total_units()), Error);
}

TEST(Loader, RanksSplitAStepWithoutOverlap) {
  TempDir dir;
  auto ds = data::TokenDataset::open(make_dataset(dir));
  data::Loader one(ds, "train", opts(4));
  auto o0 = opts(2), o1 = opts(2);
  o0.world_size = o1.world_size = 2;
  o1.rank = 1;
  data::Loader r0(ds, "train", o0), r1(ds, "train", o1);
  EXPECT_EQ(one.steps_per_epoch(), r0.steps_per_epoch());
  for (int step = 0; step < 5; ++step) {
    data::Batch full = one.next(), a = r0.next(), b = r1.next();
    EXPECT_TRUE(full.tokens.equal(torch::cat({a.tokens, b.tokens})));
    EXPECT_TRUE(full.targets.equal(torch::cat({a.targets, b.targets})));
    EXPECT_TRUE(full.ages.equal(torch::cat({a.ages, b.ages})));
    EXPECT_FALSE(a.tokens.equal(b.tokens));
  }
}

TEST(Loader, ResumesExactlyFromItsState) {
  TempDir dir;
  auto ds = data::TokenDataset::open(make_dataset(dir));
  data::Loader straight(ds, "train", opts(4));
  const int64_t per_epoch = straight.steps_per_epoch();
  std::vector<data::Batch> want;
  for (int64_t i = 0; i < per_epoch + 3; ++i) want.push_back(straight.next());
  for (int64_t cut : {int64_t(1), per_epoch - 1, per_epoch + 1}) {
    data::Loader first(ds, "train", opts(4));
    for (int64_t i = 0; i < cut; ++i) first.next();
    data::LoaderState st = first.state();
    data::Loader resumed(ds, "train", opts(4), st);
    for (int64_t i = cut; i < per_epoch + 3; ++i)
      ASSERT_TRUE(same(resumed.next(), want[i])) << "cut " << cut << " step " << i;
  }
  // Prefetching or not, the same batches.
  auto o = opts(4);
  o.prefetch = 0;
  data::Loader plain(ds, "train", o);
  for (int64_t i = 0; i < per_epoch + 3; ++i) ASSERT_TRUE(same(plain.next(), want[i]));
}

TEST(Loader, TooFewWindowsForAStepIsAClearError) {
  TempDir dir;
  auto ds = data::TokenDataset::open(make_dataset(dir));
  try {
    data::Loader l(ds, "tuning", opts(100000));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("fewer than one step needs"), std::string::npos) << e.what();
  }
}

TEST(TokenShard, DamagedShardsAreRefused) {
  TempDir dir;
  auto tok = make_dataset(dir);
  auto shard = tok / "tuning" / "shard_00002.bin";
  ASSERT_TRUE(fs::exists(shard));
  auto expect_error = [&](const std::string& needle) {
    try {
      data::TokenDataset::open(tok);
      ADD_FAILURE() << "opened a damaged dataset";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(shard.string()), std::string::npos) << e.what();
    }
  };
  std::string good;
  {
    std::ifstream in(shard, std::ios::binary);
    good.assign(std::istreambuf_iterator<char>(in), {});
  }
  fs::resize_file(shard, good.size() - 8);
  expect_error("truncated or corrupt");
  std::string bad = good;
  bad[0] = 'X';
  std::ofstream(shard, std::ios::binary | std::ios::trunc) << bad;
  expect_error("bad magic");
  bad = good;
  bad[64 + 5] ^= 1;  // a byte of the vocabulary hash (header offset 64)
  std::ofstream(shard, std::ios::binary | std::ios::trunc) << bad;
  expect_error("another vocabulary");
  std::ofstream(shard, std::ios::binary | std::ios::trunc) << good;
  EXPECT_NO_THROW(data::TokenDataset::open(tok));
}

}  // namespace
}  // namespace chart
