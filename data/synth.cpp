// `chart synth`: runs the generative model (synth_model.h) for every subject on all cores and
// writes the MEDS dataset and its label sets through Arrow's parquet writer.
#include "data/synth.h"

#include "data/parquet_table.h"

#include <arrow/api.h>
#include <arrow/io/file.h>
#include <parquet/arrow/writer.h>
#include <parquet/properties.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>

#include "core/error.h"
#include "core/files.h"
#include "core/json.h"
#include "core/log.h"
#include "data/synth_model.h"

namespace chart::data {
using namespace synth;
namespace {

const char* const kSplits[3] = {"train", "tuning", "held_out"};
constexpr int64_t kRowGroup = 100'000;
constexpr const char* kGeneratorVersion = "2";  // bump when a seed's output changes (2: the mortality_5y task)

void check(const arrow::Status& st, const fs::path& path) { check_arrow(st, path); }
template <typename T>
T check(arrow::Result<T> r, const fs::path& path) {
  check(r.status(), path);
  return std::move(r).ValueOrDie();
}

int usable_cpus() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

std::shared_ptr<parquet::WriterProperties> writer_properties() {
  return parquet::WriterProperties::Builder().compression(parquet::Compression::ZSTD)->build();
}
std::shared_ptr<parquet::ArrowWriterProperties> arrow_properties() {
  // Keep the Arrow schema in the file, so that readers get text_value back as large_string.
  return parquet::ArrowWriterProperties::Builder().store_schema()->build();
}

void write_parquet(const arrow::Table& table, const fs::path& path) {
  auto sink = check(arrow::io::FileOutputStream::Open(path.string()), path);
  check(parquet::arrow::WriteTable(table, arrow::default_memory_pool(), sink, kRowGroup,
                                   writer_properties(), arrow_properties()),
        path);
  check(sink->Close(), path);
}

std::shared_ptr<arrow::Array> finish(arrow::ArrayBuilder& b, const fs::path& path) {
  std::shared_ptr<arrow::Array> a;
  check(b.Finish(&a), path);
  return a;
}

// The MEDS 0.4 data schema (meds.DataSchema), with its nullability.
std::shared_ptr<arrow::Schema> events_schema() {
  return arrow::schema({arrow::field("subject_id", arrow::int64(), false),
                        arrow::field("time", arrow::timestamp(arrow::TimeUnit::MICRO)),
                        arrow::field("code", arrow::utf8(), false),
                        arrow::field("numeric_value", arrow::float32()),
                        arrow::field("text_value", arrow::large_utf8())});
}

void write_events(const std::vector<const SynthSubject*>& subjects,
                  const std::vector<SynthCode>& codes, const fs::path& path) {
  int64_t rows = 0, bytes = 0;
  for (const auto* s : subjects) {
    rows += static_cast<int64_t>(s->events.size());
    for (const auto& e : s->events) bytes += static_cast<int64_t>(codes[e.code].code.size());
  }
  arrow::Int64Builder id;
  arrow::TimestampBuilder time(arrow::timestamp(arrow::TimeUnit::MICRO), arrow::default_memory_pool());
  arrow::StringBuilder code;
  arrow::FloatBuilder value;
  arrow::LargeStringBuilder text;
  check(id.Reserve(rows), path);
  check(time.Reserve(rows), path);
  check(code.Reserve(rows), path);
  check(code.ReserveData(bytes), path);
  check(value.Reserve(rows), path);
  for (const auto* s : subjects)
    for (const auto& e : s->events) {
      id.UnsafeAppend(s->subject_id);
      if (e.time == kStaticTime) time.UnsafeAppendNull();
      else time.UnsafeAppend(e.time);
      code.UnsafeAppend(codes[e.code].code);
      if (std::isnan(e.value)) value.UnsafeAppendNull();
      else value.UnsafeAppend(e.value);
    }
  check(text.AppendNulls(rows), path);
  auto table = arrow::Table::Make(events_schema(), {finish(id, path), finish(time, path),
                                                    finish(code, path), finish(value, path),
                                                    finish(text, path)});
  write_parquet(*table, path);
}

// A MEDS label file (subject_id, prediction_time, boolean_value: exactly meds.LabelSchema) and,
// at `oracle`, the generator's true_probability of each row, keyed the same way.
void write_labels(const std::vector<const SynthSubject*>& subjects, size_t task, const fs::path& path,
                  const fs::path& oracle) {
  arrow::Int64Builder id;
  arrow::TimestampBuilder time(arrow::timestamp(arrow::TimeUnit::MICRO), arrow::default_memory_pool());
  arrow::BooleanBuilder value;
  arrow::DoubleBuilder prob;
  for (const auto* s : subjects) {
    const SynthLabel& l = s->labels[task];
    if (!l.present) continue;
    check(id.Append(s->subject_id), path);
    check(time.Append(l.prediction_time), path);
    check(value.Append(l.value), path);
    check(prob.Append(l.probability), path);
  }
  auto key_id = arrow::field("subject_id", arrow::int64(), false);
  auto key_time = arrow::field("prediction_time", arrow::timestamp(arrow::TimeUnit::MICRO), false);
  auto ids = finish(id, path), times = finish(time, path);
  write_parquet(*arrow::Table::Make(arrow::schema({key_id, key_time, arrow::field("boolean_value", arrow::boolean(), false)}),
                                    {ids, times, finish(value, path)}),
                path);
  write_parquet(*arrow::Table::Make(arrow::schema({key_id, key_time, arrow::field("true_probability", arrow::float64(), false)}),
                                    {ids, times, finish(prob, oracle)}),
                oracle);
}

struct BlockResult {
  int64_t events = 0, files = 0;
  int64_t split_subjects[3] = {0, 0, 0};
  std::vector<int64_t> labels, positives;
};

// Subjects [begin, end) -> data/<split>/<block>.parquet, labels/<task>/<split>/<block>.parquet and
// oracle/<task>/<split>/<block>.parquet
// (a split with no subjects in this block gets no file).
BlockResult write_block(const SynthModel& model, const SynthOptions& o, const fs::path& root,
                        int64_t block, int64_t begin, int64_t end, std::atomic<int64_t>& done) {
  const auto& tasks = synth_tasks();
  BlockResult r;
  r.labels.assign(tasks.size(), 0);
  r.positives.assign(tasks.size(), 0);
  std::vector<SynthSubject> subjects;
  subjects.reserve(static_cast<size_t>(end - begin));
  for (int64_t i = begin; i < end; ++i) {
    subjects.push_back(simulate_subject(model, o.seed, i));
    if ((i - begin) % 256 == 255) done += 256;
  }
  done += (end - begin) % 256;
  std::vector<const SynthSubject*> by_split[3];
  for (const auto& s : subjects) {
    by_split[synth_split_index(s.subject_id)].push_back(&s);
    r.events += static_cast<int64_t>(s.events.size());
    for (size_t t = 0; t < tasks.size(); ++t)
      if (s.labels[t].present) ++r.labels[t], r.positives[t] += s.labels[t].value;
  }
  const std::string name = std::to_string(block) + ".parquet";
  for (int split = 0; split < 3; ++split) {
    r.split_subjects[split] = static_cast<int64_t>(by_split[split].size());
    if (by_split[split].empty()) continue;
    write_events(by_split[split], model.codes(), root / "data" / kSplits[split] / name);
    for (size_t t = 0; t < tasks.size(); ++t)
      write_labels(by_split[split], t, root / "labels" / tasks[t].name / kSplits[split] / name,
                   root / "oracle" / tasks[t].name / kSplits[split] / name);
    r.files += 1 + 2 * static_cast<int64_t>(tasks.size());
  }
  return r;
}

void write_codes(const std::vector<SynthCode>& codes, const fs::path& path) {
  arrow::StringBuilder code, description;
  auto parent = std::make_shared<arrow::StringBuilder>();
  arrow::ListBuilder parents(arrow::default_memory_pool(), parent);
  for (const auto& c : codes) {
    check(code.Append(c.code), path);
    check(description.Append(c.description), path);
    check(parents.Append(), path);
    for (const auto& p : c.parents) check(parent->Append(p), path);
  }
  auto schema = arrow::schema({arrow::field("code", arrow::utf8(), false),
                               arrow::field("description", arrow::utf8()),
                               arrow::field("parent_codes", arrow::list(arrow::utf8()))});
  write_parquet(*arrow::Table::Make(schema, {finish(code, path), finish(description, path),
                                             finish(parents, path)}),
                path);
}

// subject_id, split for every subject, streamed a million rows at a time.
void write_subject_splits(int64_t subjects, const fs::path& path) {
  auto schema = arrow::schema({arrow::field("subject_id", arrow::int64(), false),
                               arrow::field("split", arrow::utf8(), false)});
  auto sink = check(arrow::io::FileOutputStream::Open(path.string()), path);
  auto writer = check(parquet::arrow::FileWriter::Open(*schema, arrow::default_memory_pool(), sink,
                                                       writer_properties(), arrow_properties()),
                      path);
  for (int64_t begin = 0; begin < subjects; begin += 1'000'000) {
    arrow::Int64Builder id;
    arrow::StringBuilder split;
    for (int64_t i = begin; i < std::min(subjects, begin + 1'000'000); ++i) {
      check(id.Append(synth_subject_id(i)), path);
      check(split.Append(synth_split(synth_subject_id(i))), path);
    }
    auto table = arrow::Table::Make(schema, {finish(id, path), finish(split, path)});
    check(writer->WriteTable(*table, kRowGroup), path);
  }
  check(writer->Close(), path);
  check(sink->Close(), path);
}

}  // namespace

int synth_split_index(int64_t subject_id) {
  const uint64_t bucket = mix64(static_cast<uint64_t>(subject_id) ^ 0x5EEDC0DE5EEDC0DEull) % 10;
  return bucket < 8 ? 0 : bucket == 8 ? 1 : 2;
}
const char* synth_split(int64_t subject_id) { return kSplits[synth_split_index(subject_id)]; }

SynthSummary write_synth_dataset(const SynthOptions& o) {
  const auto t_start = std::chrono::steady_clock::now();
  fs::path out = o.out.lexically_normal();
  if (!out.has_filename()) out = out.parent_path();  // "dir/" -> "dir"
  if (out.empty()) fail("--out: empty path");
  if (o.subjects < 1) fail("--subjects must be at least 1, got {}", o.subjects);
  if (fs::exists(fs::symlink_status(out)) && !o.overwrite)
    throw Error(fmt::format("{} already exists", out.string()),
                "pass --overwrite to replace it, or choose another --out");

  StagingDir stage(out);
  const fs::path root = stage.path();
  const auto& tasks = synth_tasks();
  auto make_dir = [](const fs::path& dir) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) fail("cannot create directory {}: {}", dir.string(), ec.message());
  };
  for (const char* split : kSplits) {
    make_dir(root / "data" / split);
    for (const auto& t : tasks) {
      make_dir(root / "labels" / t.name / split);
      make_dir(root / "oracle" / t.name / split);
    }
  }
  make_dir(root / "metadata");

  const SynthModel model;
  // Blocks depend only on the subject count (never on the thread count): up to 20k subjects, at
  // least 8 blocks when there are enough subjects to keep several cores busy.
  const int64_t block_size = std::clamp<int64_t>((o.subjects + 7) / 8, 2000, 20000);
  const int64_t blocks = (o.subjects + block_size - 1) / block_size;
  std::vector<BlockResult> results(static_cast<size_t>(blocks));
  std::atomic<int64_t> next_block{0}, done{0};
  std::atomic<bool> failed{false};
  std::exception_ptr error;
  std::mutex mu;
  std::condition_variable cv;
  int threads = static_cast<int>(std::min<int64_t>(o.threads > 0 ? o.threads : usable_cpus(), blocks));
  int running = threads;
  auto worker = [&] {
    try {
      for (int64_t b; !failed && (b = next_block++) < blocks;)
        results[b] = write_block(model, o, root, b, b * block_size,
                                 std::min(o.subjects, (b + 1) * block_size), done);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu);
      if (!error) error = std::current_exception();
      failed = true;
    }
    std::lock_guard<std::mutex> lock(mu);
    --running;
    cv.notify_all();
  };
  std::vector<std::thread> pool;
  for (int i = 0; i < threads; ++i) pool.emplace_back(worker);
  {
    Progress progress("synth: subjects", o.subjects);
    std::unique_lock<std::mutex> lock(mu);
    while (running > 0) {
      cv.wait_for(lock, std::chrono::milliseconds(200));
      if (o.progress) progress.update(done);
    }
    if (o.progress && stderr_is_terminal()) progress.finish();  // ends the redrawn line
  }
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);

  write_codes(model.codes(), root / "metadata" / "codes.parquet");
  write_subject_splits(o.subjects, root / "metadata" / "subject_splits.parquet");
  // No created_at: a seed's output is byte-identical from run to run.
  Json meta;
  meta["dataset_name"] = "chart_synth";
  meta["dataset_version"] = fmt::format("{} (seed {}, {} subjects)", kGeneratorVersion, o.seed, o.subjects);
  meta["etl_name"] = "chart synth";
  meta["etl_version"] = kGeneratorVersion;
  meta["meds_version"] = "0.4.0";
  write_file_atomic(root / "metadata" / "dataset.json", dump_json(meta));
  stage.commit(o.overwrite);

  SynthSummary s;
  s.subjects = o.subjects;
  s.files = 3;
  for (const auto& t : tasks) s.task_names.push_back(t.name);
  s.labels.assign(tasks.size(), 0);
  s.positives.assign(tasks.size(), 0);
  for (const auto& r : results) {
    s.events += r.events;
    s.files += r.files;
    for (int i = 0; i < 3; ++i) s.split_subjects[i] += r.split_subjects[i];
    for (size_t t = 0; t < tasks.size(); ++t) s.labels[t] += r.labels[t], s.positives[t] += r.positives[t];
  }
  s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  return s;
}

}  // namespace chart::data
