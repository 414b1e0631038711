#include "data/meds_reader.h"

#include <arrow/api.h>
#include <arrow/io/file.h>
#include <parquet/arrow/reader.h>
#include <parquet/exception.h>

#include <algorithm>
#include <cmath>
#include <ctime>

#include "core/error.h"
#include "core/utc_time.h"

namespace chart::data {

std::map<std::string, std::string> split_renames(const std::vector<std::string>& entries) {
  std::map<std::string, std::string> out;
  for (const auto& e : entries) {
    const auto eq = e.find('=');
    if (eq != std::string::npos) out[e.substr(0, eq)] = e.substr(eq + 1);
  }
  return out;
}

std::vector<MedsFile> find_meds_files(const fs::path& meds, bool any_folders,
                                      const std::map<std::string, std::string>& split_map) {
  std::vector<MedsFile> files;
  if (fs::is_regular_file(meds)) {
    files.push_back({meds, ""});
    return files;
  }
  if (!fs::is_directory(meds)) fail("MEDS input {} does not exist", meds.string());
  fs::path data = meds / "data";
  if (!fs::is_directory(data))
    throw Error(fmt::format("{} has no data/ folder: not a MEDS dataset root", meds.string()),
                "pass the folder that holds data/ and metadata/, or a single parquet file");
  bool split = false, unsplit = false;
  for (const auto& e : fs::recursive_directory_iterator(data)) {
    if (!e.is_regular_file() || e.path().extension() != ".parquet") continue;
    fs::path rel = fs::relative(e.path(), data);
    std::string first = rel.begin()->string();
    if (auto m = split_map.find(first); m != split_map.end()) first = m->second;
    if (rel.has_parent_path()) {
      if (!any_folders && std::find(split_names().begin(), split_names().end(), first) == split_names().end())
        throw Error(fmt::format("{}: unknown split name '{}' (MEDS splits: train, tuning, held_out)",
                                e.path().string(), first),
                    fmt::format("map it to one with --set prepare.split_map=[{}=train] (or tuning, held_out), "
                                "rename the folder, or list each subject's split in "
                                "metadata/subject_splits.parquet", first));
      files.push_back({e.path(), first});
      split = true;
    } else {
      files.push_back({e.path(), ""});
      unsplit = true;
    }
  }
  if (files.empty()) fail("{} holds no .parquet files", data.string());
  if (split && unsplit && !any_folders)
    fail("{} mixes parquet files directly under data/ with split folders", data.string());
  std::sort(files.begin(), files.end(),
            [](const MedsFile& a, const MedsFile& b) { return a.path < b.path; });
  return files;
}

std::string format_time_us(int64_t us) { return format_utc(us); }

namespace {

// A string column of any Arrow string layout MEDS writers use: string, large_string, or a
// dictionary of either.
struct StringColumn {
  const arrow::Array* values = nullptr;   // the strings (the dictionary, if encoded)
  const arrow::Array* indices = nullptr;  // dictionary indices, or null
  const arrow::Array* validity = nullptr;

  void bind(const std::shared_ptr<arrow::Array>& a) {
    validity = a.get();
    if (a->type_id() == arrow::Type::DICTIONARY) {
      auto& d = static_cast<const arrow::DictionaryArray&>(*a);
      values = d.dictionary().get();
      indices = d.indices().get();
    } else {
      values = a.get();
      indices = nullptr;
    }
  }
  bool is_null(int64_t i) const { return validity->IsNull(i); }
  std::string_view get(int64_t i) const {
    int64_t j = i;
    if (indices) {
      switch (indices->type_id()) {
        case arrow::Type::INT8: j = static_cast<const arrow::Int8Array&>(*indices).Value(i); break;
        case arrow::Type::INT16: j = static_cast<const arrow::Int16Array&>(*indices).Value(i); break;
        case arrow::Type::INT32: j = static_cast<const arrow::Int32Array&>(*indices).Value(i); break;
        default: j = static_cast<const arrow::Int64Array&>(*indices).Value(i); break;
      }
    }
    if (values->type_id() == arrow::Type::LARGE_STRING)
      return static_cast<const arrow::LargeStringArray&>(*values).GetView(j);
    return static_cast<const arrow::StringArray&>(*values).GetView(j);
  }
};

}  // namespace

struct MedsFileReader::Columns {
  const arrow::Int64Array* subject = nullptr;
  const arrow::TimestampArray* time = nullptr;
  int64_t time_mul = 1, time_div = 1;  // to microseconds
  StringColumn code, text;
  bool has_text = false;
  const arrow::Array* value = nullptr;
  bool value_is_double = false;
};

MedsFileReader::MedsFileReader(const MedsFile& file, const PrepareConfig& cfg)
    : file_(file), read_text_(cfg.text) {
  const std::string name = file.path.string();
  if (fs::file_size(file.path) == 0) fail("{}: empty file (0 bytes), not a parquet file", name);
  auto opened = arrow::io::ReadableFile::Open(name);
  if (!opened.ok()) fail("{}: cannot open: {}", name, opened.status().message());
  parquet::ArrowReaderProperties props;
  props.set_batch_size(64 * 1024);
  parquet::arrow::FileReaderBuilder builder;
  auto st = builder.Open(*opened);
  if (!st.ok())
    throw Error(fmt::format("{}: not a readable parquet file: {}", name, st.message()),
                "the file may be truncated or corrupt; regenerate or re-copy it");
  st = builder.properties(props)->Build(&reader_);
  if (!st.ok()) fail("{}: cannot read parquet: {}", name, st.message());
  std::shared_ptr<arrow::Schema> schema;
  st = reader_->GetSchema(&schema);
  if (!st.ok()) fail("{}: cannot read the schema: {}", name, st.message());
  cols_ = check_meds_schema(*schema, name, cfg);
  if (reader_->parquet_reader()->metadata()->num_rows() == 0) fail("{}: the file has no rows", name);
  std::vector<int> wanted = {cols_.subject_id, cols_.time, cols_.code};
  if (cols_.numeric_value >= 0) wanted.push_back(cols_.numeric_value);
  if (cols_.text_value >= 0 && read_text_) wanted.push_back(cols_.text_value);
  std::vector<int> row_groups(reader_->num_row_groups());
  for (size_t i = 0; i < row_groups.size(); ++i) row_groups[i] = static_cast<int>(i);
  auto rb = reader_->GetRecordBatchReader(row_groups, wanted);
  if (!rb.ok()) fail("{}: cannot read parquet: {}", name, rb.status().message());
  batches_reader_ = std::move(*rb);
  cur_ = std::make_unique<Columns>();
}

MedsFileReader::~MedsFileReader() = default;

void MedsFileReader::row_error(const std::string& what) const {
  fail("{} row {}: {}", file_.path.string(), row_in_file_, what);
}

bool MedsFileReader::load_batch() {
  std::shared_ptr<arrow::RecordBatch> batch;
  do {
    auto st = batches_reader_->ReadNext(&batch);
    if (!st.ok())
      throw Error(fmt::format("{} near row {}: cannot read parquet data: {}", file_.path.string(),
                              row_in_file_, st.message()),
                  "the file may be truncated or corrupt; regenerate or re-copy it");
    if (!batch) return false;
  } while (batch->num_rows() == 0);
  batches_.push_back(batch);
  // Columns of the batch come in the order they were requested.
  Columns& c = *cur_;
  c.subject = static_cast<const arrow::Int64Array*>(batch->column(0).get());
  c.time = static_cast<const arrow::TimestampArray*>(batch->column(1).get());
  auto unit = static_cast<const arrow::TimestampType&>(*c.time->type()).unit();
  c.time_mul = unit == arrow::TimeUnit::SECOND ? 1000000 : unit == arrow::TimeUnit::MILLI ? 1000 : 1;
  c.time_div = unit == arrow::TimeUnit::NANO ? 1000 : 1;
  c.code.bind(batch->column(2));
  int next = 3;
  c.value = nullptr;
  if (cols_.numeric_value >= 0) {
    c.value = batch->column(next++).get();
    c.value_is_double = c.value->type_id() == arrow::Type::DOUBLE;
  }
  c.has_text = cols_.text_value >= 0 && read_text_ &&
               batch->column(next)->type_id() != arrow::Type::NA;
  if (c.has_text) c.text.bind(batch->column(next));
  row_ = 0;
  cur_len_ = batch->num_rows();
  return true;
}

bool MedsFileReader::next(Subject& out) {
  // The previous subject's rows are consumed: keep only the batch we are in.
  while (batches_.size() > 1) batches_.pop_front();
  out.events.clear();
  bool have = false, have_time = false;
  int64_t last_time = 0;
  for (;;) {
    if (row_ >= cur_len_ && !load_batch()) break;
    const Columns& c = *cur_;
    if (c.subject->IsNull(row_)) row_error("null subject_id");
    int64_t sid = c.subject->Value(row_);
    if (!have) {
      if (!seen_subjects_.insert(sid).second)
        row_error(fmt::format("subject {} appears again after other subjects; MEDS requires each "
                              "subject's rows to be contiguous", sid));
      out.id = sid;
      have = true;
    } else if (sid != out.id) {
      break;  // the next subject starts here; the next call reads it
    }
    Event e;
    if (c.code.is_null(row_)) row_error(fmt::format("subject {}: null code", sid));
    e.code = c.code.get(row_);
    // MEDS puts static (null-time) rows first; files sorted with nulls last are common and
    // unambiguous, so static rows are accepted anywhere within the subject.
    if (!c.time->IsNull(row_)) {
      int64_t t = c.time->Value(row_);
      e.time_us = c.time_div == 1 ? t * c.time_mul : (t >= 0 ? t / 1000 : -((-t + 999) / 1000));
      e.has_time = true;
      if (have_time && e.time_us < last_time)
        row_error(fmt::format("subject {}: times are not sorted ({} after {})", sid,
                              format_time_us(e.time_us), format_time_us(last_time)));
      have_time = true;
      last_time = e.time_us;
    }
    if (c.value && !c.value->IsNull(row_)) {
      double v = c.value_is_double ? static_cast<const arrow::DoubleArray*>(c.value)->Value(row_)
                                   : static_cast<const arrow::FloatArray*>(c.value)->Value(row_);
      if (!std::isfinite(v))
        row_error(fmt::format("subject {}, code {}: numeric_value is {}; use null for a missing "
                              "value", sid, e.code, v));
      e.value = static_cast<float>(v);
      e.has_value = true;
    }
    if (c.has_text && !c.text.is_null(row_)) {
      e.text = c.text.get(row_);
      e.has_text = true;
    }
    out.events.push_back(e);
    ++row_;
    ++row_in_file_;
  }
  return have;
}

}  // namespace chart::data
