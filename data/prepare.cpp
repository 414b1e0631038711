#include "data/prepare.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>

#include <fmt/ranges.h>

#include "core/error.h"
#include "core/mix.h"
#include "core/files.h"
#include "core/json.h"
#include "core/log.h"
#include "core/sha256.h"
#include "core/utc_time.h"
#include "data/coverage.h"
#include "data/meds_reader.h"
#include "data/subject_splits.h"
#include "data/token_shard.h"
#include "data/tokenizer.h"
#include "data/vocab_builder.h"

namespace chart::data {
namespace {


// Runs job(i) for i in [0, n) on `threads` threads; the first exception stops the rest and is
// rethrown here.
void parallel_for(size_t n, int threads, const std::function<void(size_t)>& job) {
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::exception_ptr error;
  std::mutex error_mutex;
  auto worker = [&] {
    for (size_t i; !failed && (i = next++) < n;) {
      try {
        job(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!failed.exchange(true)) error = std::current_exception();
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& th : pool) th.join();
  if (error) std::rethrow_exception(error);
}

// A subject's split from the splits file; the folder it sits in, when that names a split, must agree.
std::string split_from_file(const SubjectSplits& splits, const MedsFile& f, int64_t subject) {
  const std::string* split = splits.find(subject);
  if (!split)
    throw Error(fmt::format("{}: subject {} is not in {}", f.path.string(), subject, splits.path().string()),
                "list every subject of data/ in metadata/subject_splits.parquet, or remove the file to "
                "split by folder or by hash");
  if (!f.split.empty() && f.split != *split)
    fail("{}: subject {} is in the folder of split '{}' but in split '{}' in {}", f.path.string(), subject,
         f.split, *split, splits.path().string());
  return *split;
}

struct FileOutput {  // what pass 2 learned from one input file
  std::vector<int64_t> subjects;
  std::map<std::string, SplitCounts> splits;
  std::map<std::string, std::string> sha256;  // shard path (relative) -> checksum
};

using SplitOf = std::function<std::string(const MedsFile&, int64_t)>;

// Pass 1: distinct train subjects per key and a sample of each numeric code's values.
KeyCounter count_train_keys(const std::vector<MedsFile>& files, const SplitOf& split_of, const PrepareConfig& cfg,
                            int threads) {
  KeyCounter counter;
  std::mutex counter_mutex;
  std::atomic<int64_t> rows{0}, files_done{0};
  Progress p1("prepare: vocabulary", static_cast<int64_t>(files.size()));
  parallel_for(files.size(), threads, [&](size_t i) {
    if (!files[i].split.empty() && files[i].split != "train") return;
    MedsFileReader reader(files[i], cfg);
    KeyCounter local;
    Subject s;
    Timeline t;
    while (reader.next(s)) {
      if (split_of(files[i], s.id) != "train") continue;
      build_timeline(s, cfg.text, t);
      local.add(t);
    }
    rows += reader.rows_read();
    std::lock_guard<std::mutex> lock(counter_mutex);
    counter.merge(std::move(local));
    p1.update(++files_done, format_count(rows / std::max(1e-9, p1.elapsed_s())) + " rows/s");
  });
  p1.finish(fmt::format("{} rows, {} distinct keys", rows.load(), counter.distinct_keys()));
  return counter;
}

// A fixed vocabulary brings its bins: prepare.time_bins and numeric_bins become the vocabulary's,
// so prepare.yaml says what the tokens mean.
Vocab adopt_fixed_vocab(const FixedVocab& fixed, PrepareConfig& cfg) {
  Vocab vocab = Vocab::parse(fixed.tsv, fixed.from);
  const auto edges = time_bin_edges(vocab.time_names(), fixed.from);
  if (edges != cfg.time_bins || vocab.numeric_bins() != cfg.numeric_bins)
    info("prepare: time bins [{}] and {} numeric bins from {} (the config's are not used)", fmt::join(edges, ", "),
         vocab.numeric_bins(), fixed.from);
  cfg.time_bins = edges;
  cfg.numeric_bins = vocab.numeric_bins();
  return vocab;
}

// Pass 2: tokens and times of every split, one shard per (input file, split), checksummed.
std::vector<FileOutput> tokenize_files(const std::vector<MedsFile>& files, const SplitOf& split_of,
                                       const PrepareConfig& cfg, int threads, const Tokenizer& tokenizer,
                                       const std::string& vocab_hash, const fs::path& stage, CoverageCounter& coverage) {
  const VocabHash hash = vocab_hash_from_hex(vocab_hash);
  std::vector<FileOutput> outputs(files.size());
  std::mutex mutex;
  std::atomic<int64_t> rows{0}, files_done{0};
  Progress p2("prepare: tokens", static_cast<int64_t>(files.size()));
  parallel_for(files.size(), threads, [&](size_t i) {
    MedsFileReader reader(files[i], cfg);
    std::map<std::string, std::unique_ptr<ShardWriter>> writers;
    FileOutput& fo = outputs[i];
    CoverageCounter local;
    Subject s;
    Timeline t;
    std::vector<uint32_t> tokens, unknown;
    std::vector<int64_t> times;
    while (reader.next(s)) {
      const std::string split = split_of(files[i], s.id);
      auto& w = writers[split];
      if (!w) w = std::make_unique<ShardWriter>(stage / split / fmt::format("shard_{:05d}.bin", i), hash);
      build_timeline(s, cfg.text, t);
      TokenizeCounts c;
      tokenizer.tokenize(t, tokens, times, c, &unknown);
      w->add(s.id, t.birth_us, tokens, times);
      local.add(split, t, unknown);
      SplitCounts& sc = fo.splits[split];
      sc.subjects += 1;
      sc.events += c.events;
      sc.tokens += c.tokens;
      sc.unknown += c.unknown;
      for (const Item& it : t.items)
        if (!it.is_static) sc.add_time(it.time_us);
      fo.subjects.push_back(s.id);
    }
    for (auto& [split, w] : writers) {
      w->finish();
      fo.splits[split].shards += 1;
      // Checksummed here, in parallel and while the shard is still in the page cache.
      const std::string rel = split + "/" + fmt::format("shard_{:05d}.bin", i);
      fo.sha256[rel] = sha256_file(stage / rel);
    }
    rows += reader.rows_read();
    std::lock_guard<std::mutex> lock(mutex);
    coverage.merge(std::move(local));
    p2.update(++files_done, format_count(rows / std::max(1e-9, p2.elapsed_s())) + " rows/s");
  });
  p2.finish(fmt::format("{} rows", rows.load()));
  return outputs;
}

// "2020-01-31": a split's time span to the day, which is what its readers need.
std::string utc_date(int64_t us) { return format_utc(us).substr(0, 10); }

// MEDS keeps each subject in one file; a subject in two files would be two timelines.
void check_one_file_per_subject(const std::vector<MedsFile>& files, const std::vector<FileOutput>& outputs) {
  std::vector<std::pair<int64_t, size_t>> all;
  for (size_t i = 0; i < outputs.size(); ++i)
    for (int64_t id : outputs[i].subjects) all.emplace_back(id, i);
  std::sort(all.begin(), all.end());
  for (size_t j = 1; j < all.size(); ++j)
    if (all[j].first == all[j - 1].first)
      fail("subject {} appears in two files, {} and {}; MEDS keeps each subject in one file",
           all[j].first, files[all[j - 1].second].path.string(), files[all[j].second].path.string());
}

// A split whose events are often [UNK] is read by the model through holes: say so, with the codes.
void warn_low_coverage(const Json& coverage, double threshold, bool fixed) {
  for (const auto& [name, s] : coverage["splits"].items()) {
    const double share = s["unknown_share"].get<double>();
    if (share <= threshold) continue;
    std::vector<std::string> top;
    for (const Json& c : s["codes"]) {
      if (top.size() == 5) break;
      top.push_back(fmt::format("{} ({} events)", c["code"].get<std::string>(), c["events"].get<int64_t>()));
    }
    warn("prepare: {:.1f}% of the {} split's events have codes {} (most: {}); coverage.json lists them all "
         "(prepare.unknown_warning={})", 100 * share, name,
         fixed ? "outside the fixed vocabulary" : "below the privacy threshold", fmt::join(top, ", "), threshold);
  }
}

// The manifest: counts and a checksum of every file, written last.
void write_manifest(const fs::path& stage, const std::vector<FileOutput>& outputs, Json m) {
  std::vector<fs::path> written;
  for (const auto& e : fs::recursive_directory_iterator(stage))
    if (e.is_regular_file()) written.push_back(fs::relative(e.path(), stage));
  std::sort(written.begin(), written.end());
  std::map<std::string, std::string> known;
  for (const auto& fo : outputs) known.insert(fo.sha256.begin(), fo.sha256.end());
  m["files"] = Json::object();
  for (const auto& rel : written) {
    auto k = known.find(rel.generic_string());
    m["files"][rel.generic_string()] = {
        {"bytes", fs::file_size(stage / rel)},
        {"sha256", k != known.end() ? k->second : sha256_file(stage / rel)}};
  }
  write_file_atomic(stage / "manifest.json", dump_json(m));
}

}  // namespace

std::string hash_split(int64_t subject_id, const PrepareConfig& cfg) {
  double u = static_cast<double>(mix(static_cast<uint64_t>(subject_id) ^ mix(cfg.split_seed)) >> 11) *
             0x1.0p-53;
  if (u < cfg.held_out_fraction) return "held_out";
  if (u < cfg.held_out_fraction + cfg.tuning_fraction) return "tuning";
  return "train";
}

PrepareResult prepare_dataset(const fs::path& meds, const fs::path& out, const Config& config_in,
                              bool overwrite, const FixedVocab* fixed) {
  Config config = config_in;
  PrepareConfig& cfg = config.prepare;
  auto start = std::chrono::steady_clock::now();
  if (fs::exists(out) && !overwrite)
    throw Error(fmt::format("output {} already exists{}", out.string(),
                            fs::exists(out / "manifest.json") ? " and holds a complete token dataset" : ""),
                "pass --overwrite to replace it, or choose another --out");
  const auto split_map = split_renames(cfg.split_map);
  const std::optional<SubjectSplits> splits = SubjectSplits::read(meds, split_map);
  std::vector<MedsFile> files = find_meds_files(meds, splits.has_value(), split_map);
  for (auto& f : files)  // with a splits file, a folder is a split only when it names one
    if (splits && !splits->has(f.split)) f.split.clear();
  const bool unsplit = std::all_of(files.begin(), files.end(), [](const MedsFile& f) { return f.split.empty(); });
  int threads = cfg.threads > 0 ? static_cast<int>(cfg.threads)
                                : std::max(1u, std::thread::hardware_concurrency());
  threads = std::min<int>(threads, static_cast<int>(files.size()));
  SplitOf split_of = [&](const MedsFile& f, int64_t subject) -> std::string {
    if (splits) return split_from_file(*splits, f, subject);
    return unsplit ? hash_split(subject, cfg) : f.split;
  };
  info("prepare: {} parquet file(s) from {} ({}), {} thread(s)", files.size(), meds.string(),
       splits ? "splits from " + splits->path().string()
              : unsplit ? "no split folders: subjects hashed into splits" : "split folders",
       threads);

  // The vocabulary: fixed, or built from the train split only (pass 1).
  std::optional<Vocab> vocab;
  std::string vocab_tsv;
  int64_t codes_seen = -1;
  if (fixed) {
    vocab.emplace(adopt_fixed_vocab(*fixed, cfg));
    vocab_tsv = fixed->tsv;  // byte for byte: its hash is what the model was trained with
    info("prepare: the fixed vocabulary of {} ({} tokens)", fixed->from, vocab->size());
  } else {
    const KeyCounter counter = count_train_keys(files, split_of, cfg, threads);
    vocab.emplace(counter.build_vocab(TimeBins(cfg.time_bins).names(), cfg));
    vocab_tsv = vocab->to_tsv();
    codes_seen = static_cast<int64_t>(counter.distinct_keys());
    info("prepare: vocabulary of {} tokens ({} of {} keys are in >= {} train subjects)", vocab->size(),
         vocab->size() - 3 - cfg.time_bins.size() - cfg.numeric_bins, codes_seen, cfg.min_subjects);
  }
  const TimeBins bins(cfg.time_bins);
  const std::string vocab_hash = sha256_hex(vocab_tsv);

  StagingDir stage(out);
  write_file_atomic(stage.path() / "vocab.tsv", vocab_tsv);
  for (const auto& s : split_names()) fs::create_directories(stage.path() / s);
  if (splits)
    for (const auto& s : splits->names()) fs::create_directories(stage.path() / s);

  CoverageCounter coverage;
  std::vector<FileOutput> outputs =
      tokenize_files(files, split_of, cfg, threads, Tokenizer(*vocab, bins), vocab_hash, stage.path(), coverage);
  check_one_file_per_subject(files, outputs);

  PrepareResult result;
  for (const auto& s : split_names()) result.splits[s] = {};
  for (const auto& fo : outputs)
    for (const auto& [split, c] : fo.splits) {
      SplitCounts& r = result.splits[split];
      r.subjects += c.subjects;
      r.events += c.events;
      r.tokens += c.tokens;
      r.unknown += c.unknown;
      r.shards += c.shards;
      r.first_us = std::min(r.first_us, c.first_us), r.last_us = std::max(r.last_us, c.last_us);
    }
  result.vocab_size = static_cast<int64_t>(vocab->size());
  result.codes_seen = codes_seen;
  result.codes_kept = result.vocab_size - 3 - static_cast<int64_t>(bins.names().size()) - cfg.numeric_bins;
  result.vocab_hash = vocab_hash;
  result.vocab_from = fixed ? fixed->from : "";
  if (!fixed && result.splits["train"].subjects == 0)
    fail("{}: no subjects in the train split; the vocabulary needs train data", meds.string());
  for (const auto& [name, c] : result.splits)
    if (std::find(split_names().begin(), split_names().end(), name) == split_names().end())
      warn("prepare: split '{}' of {} ({} subjects) is kept in {}/{}/; chart's recipes use train, tuning "
           "and held_out", name, splits->path().string(), c.subjects, out.string(), name);

  Json cov = coverage.to_json();
  cov["vocab_from"] = fixed ? Json(fixed->from) : Json();
  warn_low_coverage(cov, cfg.unknown_warning, fixed != nullptr);
  write_file_atomic(stage.path() / "coverage.json", dump_json(cov));
  write_file_atomic(stage.path() / "prepare.yaml", config_to_yaml(config));
  Json m;
  m["format"] = "chart-token-dataset";
  m["format_version"] = kShardVersion;
  m["vocab_hash"] = vocab_hash;
  m["vocab_size"] = vocab->size();
  m["vocab_from"] = cov["vocab_from"];
  m["source"] = fs::weakly_canonical(fs::absolute(meds)).string();
  m["splits_from"] = splits ? splits->path().string() : unsplit ? "hash of subject_id" : "data/<split>/ folders";
  m["min_subjects"] = cfg.min_subjects;
  m["codes_seen"] = codes_seen >= 0 ? Json(codes_seen) : Json();
  m["codes_kept"] = result.codes_kept;
  m["splits"] = Json::object();
  for (const auto& [name, c] : result.splits)
    m["splits"][name] = {{"subjects", c.subjects}, {"events", c.events}, {"tokens", c.tokens},
                         {"unknown", c.unknown}, {"shards", c.shards},
                         {"first_event", c.first_us <= c.last_us ? Json(utc_date(c.first_us)) : Json()},
                         {"last_event", c.first_us <= c.last_us ? Json(utc_date(c.last_us)) : Json()}};
  write_manifest(stage.path(), outputs, std::move(m));
  stage.commit(overwrite);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace chart::data
