#include "data/meds_schema.h"

#include <arrow/type.h>

#include "core/error.h"

namespace chart::data {
namespace {

bool is_string(const arrow::DataType& t) {
  if (t.id() == arrow::Type::STRING || t.id() == arrow::Type::LARGE_STRING) return true;
  if (t.id() == arrow::Type::DICTIONARY) {
    const auto& d = static_cast<const arrow::DictionaryType&>(t);
    return is_string(*d.value_type());
  }
  return false;
}

// A column named other than MEDS's (a prepare.*_column mapping) is required even when MEDS
// makes the column optional: a mistyped name must not silently drop every value.
int find(const arrow::Schema& schema, const std::string& file, const std::string& name,
         const char* meds_name, bool required) {
  int i = schema.GetFieldIndex(name);
  if (i >= 0 || (!required && name == meds_name)) return i;
  std::vector<std::string> names;
  for (const auto& f : schema.fields()) names.push_back(f->name());
  if (name != meds_name)
    throw Error(fmt::format("{}: no column '{}' for prepare.{}_column (the file's columns: {})", file, name,
                            meds_name, fmt::join(names, ", ")),
                fmt::format("set prepare.{}_column to one of those columns", meds_name));
  throw Error(fmt::format("{}: missing MEDS column '{}' (the file's columns: {})", file, name, fmt::join(names, ", ")),
              fmt::format("if the column has another name, map it with --set prepare.{}_column=NAME", meds_name));
}

}  // namespace

MedsColumns check_meds_schema(const arrow::Schema& schema, const std::string& file,
                              const PrepareConfig& cfg) {
  MedsColumns c;
  c.subject_id = find(schema, file, cfg.subject_id_column, "subject_id", true);
  c.time = find(schema, file, cfg.time_column, "time", true);
  c.code = find(schema, file, cfg.code_column, "code", true);
  c.numeric_value = find(schema, file, cfg.numeric_value_column, "numeric_value", false);
  c.text_value = find(schema, file, cfg.text_value_column, "text_value", false);

  auto type_error = [&](int i, const char* want) {
    fail("{}: column '{}' has type {}, MEDS requires {}", file, schema.field(i)->name(),
         schema.field(i)->type()->ToString(), want);
  };
  if (schema.field(c.subject_id)->type()->id() != arrow::Type::INT64) type_error(c.subject_id, "int64");
  if (schema.field(c.time)->type()->id() != arrow::Type::TIMESTAMP) type_error(c.time, "timestamp[us]");
  if (!is_string(*schema.field(c.code)->type())) type_error(c.code, "string");
  if (c.numeric_value >= 0) {
    auto id = schema.field(c.numeric_value)->type()->id();
    if (id != arrow::Type::FLOAT && id != arrow::Type::DOUBLE) type_error(c.numeric_value, "float32");
  }
  if (c.text_value >= 0) {
    const auto& t = *schema.field(c.text_value)->type();
    if (!is_string(t) && t.id() != arrow::Type::NA) type_error(c.text_value, "string");
  }
  return c;
}

}  // namespace chart::data
