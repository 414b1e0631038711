// metadata/subject_splits.parquet (meds.SubjectSplitSchema: subject_id int64, split string): the
// split a MEDS dataset assigns each subject. MEDS allows any split name; its train, tuning and
// held_out are chart's three, and other names are kept as they are.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace chart::data {

class SubjectSplits {
 public:
  // The splits file of the MEDS root `meds`; nothing when it has none (or `meds` is one file).
  // Throws chart::Error naming the file on a wrong schema, a null or a subject listed twice.
  // `rename` maps the file's split names to chart's (prepare.split_map).
  static std::optional<SubjectSplits> read(const std::filesystem::path& meds,
                                           const std::map<std::string, std::string>& rename = {});

  // The subject's split; nullptr when the file does not list it.
  const std::string* find(int64_t subject_id) const;
  const std::filesystem::path& path() const { return path_; }
  const std::vector<std::string>& names() const { return names_; }  // in order of first appearance
  bool has(const std::string& name) const;

 private:
  std::filesystem::path path_;
  std::vector<std::pair<int64_t, uint32_t>> subjects_;  // (subject_id, index in names_), sorted
  std::vector<std::string> names_;
};

}  // namespace chart::data
