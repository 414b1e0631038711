// Reading MEDS: finding the data files of a dataset and streaming one file subject by subject,
// validating the rows on the way (types, null codes, NaN/inf values, contiguous subjects,
// time order). Errors name the file, the row and the subject.
#pragma once
#include <cstdint>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "core/config.h"
#include "data/meds_event.h"
#include "data/meds_schema.h"

namespace arrow { class RecordBatch; class RecordBatchReader; }
namespace parquet::arrow { class FileReader; }

namespace chart::data {

namespace fs = std::filesystem;

inline const std::vector<std::string>& split_names() {
  static const std::vector<std::string> names = {"train", "tuning", "held_out"};
  return names;
}

struct MedsFile {
  fs::path path;
  std::string split;  // the folder under data/ (train | tuning | held_out); "" for files directly in data/
};

// `meds` is a MEDS root (with data/<split>/**.parquet), or a single parquet file (unsplit).
// Files come back sorted by path. Empty datasets are errors, and so are, unless `any_folders`
// (a subject_splits.parquet decides the splits, so folders are only nesting), folder names other
// than the splits and flat files beside split folders. `split_map` renames folders first (the
// dataset's "dev" as chart's "train": prepare.split_map, see split_renames()).
std::vector<MedsFile> find_meds_files(const fs::path& meds, bool any_folders = false,
                                      const std::map<std::string, std::string>& split_map = {});

// prepare.split_map's "NAME=SPLIT" entries as a map (the config has checked their shape).
std::map<std::string, std::string> split_renames(const std::vector<std::string>& entries);

class MedsFileReader {
 public:
  MedsFileReader(const MedsFile& file, const PrepareConfig& cfg);
  ~MedsFileReader();
  bool next(Subject& out);  // false at the end of the file
  int64_t rows_read() const { return row_in_file_; }
  const MedsFile& file() const { return file_; }

 private:
  struct Columns;  // typed views of the current batch
  bool load_batch();
  [[noreturn]] void row_error(const std::string& what) const;

  MedsFile file_;
  bool read_text_;
  MedsColumns cols_;
  std::unique_ptr<parquet::arrow::FileReader> reader_;
  std::unique_ptr<arrow::RecordBatchReader> batches_reader_;
  std::deque<std::shared_ptr<arrow::RecordBatch>> batches_;  // those the current subject uses
  std::unique_ptr<Columns> cur_;
  int64_t row_ = 0, cur_len_ = 0;  // position in the current batch
  int64_t row_in_file_ = 0;
  std::unordered_set<int64_t> seen_subjects_;
};

// "2021-03-04T05:06:07Z" (UTC) for messages.
std::string format_time_us(int64_t us);

}  // namespace chart::data
