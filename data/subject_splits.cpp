#include "data/subject_splits.h"

#include <arrow/api.h>

#include <algorithm>
#include <cctype>

#include "core/error.h"
#include "data/parquet_table.h"

namespace chart::data {
namespace fs = std::filesystem;
namespace {

// Row i of a string, large_string or dictionary-of-string array.
std::string string_at(const arrow::Array& a, int64_t i) {
  if (a.type_id() == arrow::Type::DICTIONARY) {
    const auto& d = static_cast<const arrow::DictionaryArray&>(a);
    return string_at(*d.dictionary(), d.GetValueIndex(i));
  }
  if (a.type_id() == arrow::Type::LARGE_STRING) return std::string(static_cast<const arrow::LargeStringArray&>(a).GetView(i));
  return std::string(static_cast<const arrow::StringArray&>(a).GetView(i));
}

}  // namespace

std::optional<SubjectSplits> SubjectSplits::read(const fs::path& meds, const std::map<std::string, std::string>& rename) {
  const fs::path path = meds / "metadata" / "subject_splits.parquet";
  if (!fs::is_directory(meds) || !fs::exists(path)) return std::nullopt;
  const std::string name = path.string();
  const std::shared_ptr<arrow::Table> table = read_parquet_table(path);
  auto sid = table->GetColumnByName("subject_id");
  auto split = table->GetColumnByName("split");
  if (!sid || !split)
    fail("{}: expected columns subject_id, split (meds.SubjectSplitSchema); it has {}", name,
         fmt::join(table->ColumnNames(), ", "));
  if (sid->type()->id() != arrow::Type::INT64) fail("{}: subject_id has type {}, expected int64", name, sid->type()->ToString());
  const auto string_like = [](const arrow::DataType& t) {
    return t.id() == arrow::Type::STRING || t.id() == arrow::Type::LARGE_STRING;
  };
  const auto& st_type = *split->type();
  if (!string_like(st_type) && !(st_type.id() == arrow::Type::DICTIONARY &&
                                 string_like(*static_cast<const arrow::DictionaryType&>(st_type).value_type())))
    fail("{}: split has type {}, expected string", name, st_type.ToString());

  SubjectSplits s;
  s.path_ = path;
  s.subjects_.reserve(static_cast<size_t>(table->num_rows()));
  int64_t row = 0;
  for (int c = 0; c < sid->num_chunks(); ++c) {
    const auto& ids = static_cast<const arrow::Int64Array&>(*sid->chunk(c));
    const arrow::Array& names = *split->chunk(c);
    for (int64_t i = 0; i < ids.length(); ++i, ++row) {
      if (ids.IsNull(i) || names.IsNull(i)) fail("{} row {}: null subject_id or split", name, row);
      std::string split_name = string_at(names, i);
      if (auto m = rename.find(split_name); m != rename.end()) split_name = m->second;
      auto it = std::find(s.names_.begin(), s.names_.end(), split_name);
      if (it == s.names_.end()) {
        // A split becomes a folder of the token dataset: a plain name, never a path.
        const bool plain = !split_name.empty() && split_name[0] != '.' &&
                           std::all_of(split_name.begin(), split_name.end(),
                                       [](unsigned char c) { return std::isalnum(c) || c == '_' || c == '-' || c == '.'; });
        if (!plain) fail("{} row {}: split '{}' is not a plain name (letters, digits, _ - .)", name, row, split_name);
        it = s.names_.insert(s.names_.end(), split_name);
      }
      s.subjects_.emplace_back(ids.Value(i), static_cast<uint32_t>(it - s.names_.begin()));
    }
  }
  std::sort(s.subjects_.begin(), s.subjects_.end());
  for (size_t i = 1; i < s.subjects_.size(); ++i)
    if (s.subjects_[i].first == s.subjects_[i - 1].first)
      fail("{}: subject {} is listed twice ({} and {}); a subject belongs to one split", name, s.subjects_[i].first,
           s.names_[s.subjects_[i - 1].second], s.names_[s.subjects_[i].second]);
  if (s.subjects_.empty()) fail("{}: no rows", name);
  return s;
}

const std::string* SubjectSplits::find(int64_t subject_id) const {
  auto it = std::lower_bound(subjects_.begin(), subjects_.end(), std::make_pair(subject_id, uint32_t{0}));
  if (it == subjects_.end() || it->first != subject_id) return nullptr;
  return &names_[it->second];
}

bool SubjectSplits::has(const std::string& name) const {
  return std::find(names_.begin(), names_.end(), name) != names_.end();
}

}  // namespace chart::data
