#include "data/parquet_table.h"

#include <arrow/io/file.h>
#include <parquet/arrow/reader.h>

#include <parquet/arrow/writer.h>

#include "core/error.h"
#include "core/files.h"

namespace chart::data {

std::shared_ptr<arrow::Table> read_parquet_table(const std::filesystem::path& file) {
  const std::string name = file.string();
  auto opened = arrow::io::ReadableFile::Open(name);
  if (!opened.ok()) fail("{}: cannot open: {}", name, opened.status().message());
  auto reader = parquet::arrow::OpenFile(*opened, arrow::default_memory_pool());
  if (!reader.ok()) fail("{}: not a readable parquet file: {}", name, reader.status().message());
  std::shared_ptr<arrow::Table> table;
  auto st = (*reader)->ReadTable(&table);
  if (!st.ok()) fail("{}: cannot read: {}", name, st.message());
  auto combined = table->CombineChunks();
  if (!combined.ok()) fail("{}: cannot read: {}", name, combined.status().message());
  return *combined;
}

void check_arrow(const arrow::Status& status, const std::filesystem::path& file) {
  if (!status.ok()) fail("cannot write {}: {}", file.string(), status.ToString());
}

void write_parquet_table(const std::filesystem::path& file, const arrow::Table& table) {
  const std::filesystem::path tmp = file.string() + ".tmp";
  {
    auto sink = arrow::io::FileOutputStream::Open(tmp.string());
    if (!sink.ok()) fail("cannot write {}: {}", tmp.string(), sink.status().ToString());
    check_arrow(parquet::arrow::WriteTable(table, arrow::default_memory_pool(), *sink, 1 << 20), tmp);
    check_arrow((*sink)->Close(), tmp);
  }
  fsync_file(tmp);
  std::filesystem::rename(tmp, file);
  fsync_dir(file.has_parent_path() ? file.parent_path() : std::filesystem::path("."));
}

arrow::TimestampBuilder& TableBuilder::add_timestamp(const std::string& name, bool nullable) {
  auto type = arrow::timestamp(arrow::TimeUnit::MICRO);
  auto b = std::make_shared<arrow::TimestampBuilder>(type, arrow::default_memory_pool());
  fields_.push_back(arrow::field(name, type, nullable));
  builders_.push_back(b);
  return *b;
}

void TableBuilder::write() {
  std::vector<std::shared_ptr<arrow::Array>> arrays(builders_.size());
  for (size_t i = 0; i < builders_.size(); ++i) check_arrow(builders_[i]->Finish(&arrays[i]), file_);
  write_parquet_table(file_, *arrow::Table::Make(arrow::schema(fields_), arrays));
}

}  // namespace chart::data
