// A whole parquet file as one Arrow table (one chunk per column), for the small files chart reads
// or writes at once: label sets, metadata/subject_splits.parquet, predictions, risk tables.
// Errors name the file.
#pragma once
#include <arrow/api.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace chart::data {

std::shared_ptr<arrow::Table> read_parquet_table(const std::filesystem::path& file);

// Written through a temporary file, fsync and a rename: a file that exists is whole.
void write_parquet_table(const std::filesystem::path& file, const arrow::Table& table);

// An Arrow failure while building or writing `file` as a chart::Error naming it.
void check_arrow(const arrow::Status& status, const std::filesystem::path& file);

// Columns of a small table, built row by row: add(field, builder) once per column, then rows.
class TableBuilder {
 public:
  explicit TableBuilder(std::filesystem::path file) : file_(std::move(file)) {}
  template <typename Builder>
  Builder& add(std::shared_ptr<arrow::Field> field) {
    auto b = std::make_shared<Builder>();
    fields_.push_back(std::move(field));
    builders_.push_back(b);
    return *b;
  }
  arrow::TimestampBuilder& add_timestamp(const std::string& name, bool nullable);
  template <typename Builder, typename T>
  void append(Builder& b, T value) { check_arrow(b.Append(value), file_); }
  template <typename Builder, typename T>
  void append_or_null(Builder& b, const std::optional<T>& value) {
    check_arrow(value ? b.Append(*value) : b.AppendNull(), file_);
  }
  void write();  // finishes every column and writes the file

 private:
  std::filesystem::path file_;
  std::vector<std::shared_ptr<arrow::Field>> fields_;
  std::vector<std::shared_ptr<arrow::ArrayBuilder>> builders_;
};

}  // namespace chart::data
