// A whole parquet file as one Arrow table (one chunk per column), for the small files chart reads
// at once: label sets, metadata/subject_splits.parquet. Errors name the file.
#pragma once
#include <arrow/api.h>

#include <filesystem>
#include <memory>

namespace chart::data {

std::shared_ptr<arrow::Table> read_parquet_table(const std::filesystem::path& file);

}  // namespace chart::data
