// Writing small MEDS parquet files for tests, through Arrow like any MEDS writer.
#pragma once
#include <arrow/api.h>
#include <arrow/io/file.h>
#include <parquet/arrow/writer.h>

#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace chart::testing {

struct Row {
  int64_t subject;
  std::optional<int64_t> time_us;  // none: a static row
  std::string code;
  std::optional<float> value = std::nullopt;
};

inline int64_t days(double d) { return static_cast<int64_t>(d * 86400.0 * 1e6); }

inline void check(const arrow::Status& st) {
  if (!st.ok()) throw std::runtime_error(st.ToString());
}

inline void write_table(const std::filesystem::path& file, const std::shared_ptr<arrow::Table>& table) {
  std::filesystem::create_directories(file.parent_path());
  auto out = arrow::io::FileOutputStream::Open(file.string());
  check(out.status());
  check(parquet::arrow::WriteTable(*table, arrow::default_memory_pool(), *out, 1 << 16));
  check((*out)->Close());
}

// A MEDS data file. `value_column` renames numeric_value (for MEDS-like inputs); `value_nan`
// writes NaN where a row's value is set to this marker.
inline void write_meds(const std::filesystem::path& file, const std::vector<Row>& rows,
                       const std::string& value_column = "numeric_value") {
  arrow::Int64Builder sid;
  arrow::TimestampBuilder time(arrow::timestamp(arrow::TimeUnit::MICRO), arrow::default_memory_pool());
  arrow::StringBuilder code;
  arrow::FloatBuilder value;
  for (const auto& r : rows) {
    check(sid.Append(r.subject));
    check(r.time_us ? time.Append(*r.time_us) : time.AppendNull());
    check(code.Append(r.code));
    check(r.value ? value.Append(*r.value) : value.AppendNull());
  }
  std::shared_ptr<arrow::Array> a, b, c, d;
  check(sid.Finish(&a));
  check(time.Finish(&b));
  check(code.Finish(&c));
  check(value.Finish(&d));
  auto schema = arrow::schema({arrow::field("subject_id", arrow::int64()),
                               arrow::field("time", arrow::timestamp(arrow::TimeUnit::MICRO)),
                               arrow::field("code", arrow::utf8()),
                               arrow::field(value_column, arrow::float32())});
  write_table(file, arrow::Table::Make(schema, {a, b, c, d}));
}

// metadata/subject_splits.parquet (meds.SubjectSplitSchema) of a MEDS root.
inline void write_subject_splits(const std::filesystem::path& root,
                                 const std::vector<std::pair<int64_t, std::string>>& splits) {
  arrow::Int64Builder sid;
  arrow::StringBuilder split;
  for (const auto& [id, name] : splits) {
    check(sid.Append(id));
    check(split.Append(name));
  }
  auto schema = arrow::schema({arrow::field("subject_id", arrow::int64(), false),
                               arrow::field("split", arrow::utf8(), false)});
  write_table(root / "metadata" / "subject_splits.parquet",
              arrow::Table::Make(schema, {sid.Finish().ValueOrDie(), split.Finish().ValueOrDie()}));
}

}  // namespace chart::testing
