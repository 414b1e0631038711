// `chart prepare`: MEDS -> token dataset. Two passes over the data, each parallel over files:
//   1. the train split: distinct subjects per key and a bounded sample of each numeric code's
//      values -> the vocabulary (privacy threshold, quantile cut points);
//   2. every split: tokens + times into one shard per (input file, split).
// The output directory is built under a temporary name and appears only when complete:
//   vocab.tsv, {train,tuning,held_out}/shard_NNNNN.bin, manifest.json, prepare.yaml
// With a fixed vocabulary (FixedVocab: a new cohort or external site on a pretrained model)
// pass 1 is skipped, vocab.tsv is written byte for byte (same hash, so the model accepts the
// shards), time and numeric bins are the vocabulary's own, and the train split may be empty.
// coverage.json counts the events whose code has no token, per split and per code.
// A subject's split is metadata/subject_splits.parquet's when the dataset has one (other split
// names are kept as their own folders), else its data/<split>/ folder's, else a hash of its id.
#pragma once
#include <cstdint>
#include <algorithm>
#include <filesystem>
#include <limits>
#include <map>
#include <string>

#include "core/config.h"

namespace chart::data {

struct SplitCounts {
  int64_t subjects = 0, events = 0, tokens = 0, unknown = 0, shards = 0;
  // The earliest and latest timed event (birth rows aside), microseconds since 1970; first > last
  // while the split has none. The model card states the training data's time span from them.
  int64_t first_us = std::numeric_limits<int64_t>::max(), last_us = std::numeric_limits<int64_t>::min();
  void add_time(int64_t us) { first_us = std::min(first_us, us), last_us = std::max(last_us, us); }
};

// vocab.tsv's bytes and where they came from (a token dataset, a checkpoint, an export).
struct FixedVocab {
  std::string tsv;
  std::string from;
};

struct PrepareResult {
  std::map<std::string, SplitCounts> splits;
  std::string vocab_from;  // "" when the vocabulary was built from the train split
  int64_t vocab_size = 0, codes_seen = 0, codes_kept = 0;
  std::string vocab_hash;
  double seconds = 0;
};

PrepareResult prepare_dataset(const std::filesystem::path& meds, const std::filesystem::path& out,
                              const Config& config, bool overwrite, const FixedVocab* fixed = nullptr);

// The split a subject of unsplit input is hashed into (prepare.*_fraction, prepare.split_seed).
std::string hash_split(int64_t subject_id, const PrepareConfig& cfg);

}  // namespace chart::data
