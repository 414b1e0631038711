#include "data/parquet_table.h"

#include <arrow/io/file.h>
#include <parquet/arrow/reader.h>

#include "core/error.h"

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

}  // namespace chart::data
