// MEDS 0.4 data schema: which columns a data file must have, of which types, and how
// MEDS-like files with other column names map onto them (prepare.*_column).
#pragma once
#include <arrow/type_fwd.h>

#include <memory>
#include <string>

#include "core/config.h"

namespace chart::data {

// Column positions of the MEDS fields in one file's Arrow schema; -1 when an optional column
// (numeric_value, text_value) is absent.
struct MedsColumns {
  int subject_id = -1, time = -1, code = -1, numeric_value = -1, text_value = -1;
};

// Checks `schema` (read from `file`) against MEDS: subject_id int64; time timestamp (any unit);
// code string; numeric_value float32/float64 (optional); text_value string (optional); extra
// columns allowed. Throws chart::Error naming the file, the column and the expected type.
MedsColumns check_meds_schema(const arrow::Schema& schema, const std::string& file,
                              const PrepareConfig& cfg);

}  // namespace chart::data
