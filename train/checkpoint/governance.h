// The governance part of a model card: what a clinical governance board and a regulator ask of
// a model that chart cannot measure (its intended use and users, the uses it is not for, where
// its data came from, its known limitations, who oversees it and who answers for it). The
// institution writes these in a YAML file (card.governance); every card written in the run
// carries them as its `governance` section, with the fields the file leaves out listed under
// `to_be_filled`, never invented. MODEL_CARD.md renders them beside what chart measured (data
// span, evaluation overall and by subgroup, calibration, the privacy audit, lineage) under the
// headings docs/governance.md maps to the EU AI Act (Annex IV, Art. 13) and the CHAI model card.
#pragma once
#include <string>
#include <vector>

#include "core/json.h"

namespace chart {

struct GovernanceField {
  const char* key;   // the YAML key and the card's field
  const char* asks;  // what the institution must say there
};
// Every field the governance file may hold, in the order the card shows them.
const std::vector<GovernanceField>& governance_fields();

// The `governance` section (JSON text) for the file at `path`: its fields (text, or a list of
// texts), `from` (the file's absolute path) and `sha256`, and `to_be_filled` (the fields it
// leaves out or empty). An empty path gives a section with every field to be filled. Throws
// chart::Error naming the file and the key for a missing file, bad YAML, an unknown key or a
// value that is neither text nor a list of texts.
std::string governance_section(const std::string& path);

// card_json with `governance` set from the file at `path` when one is given; without one, a
// card keeps the governance it carries (written when its checkpoint was trained) or gets one
// with every field to be filled.
std::string with_governance(const std::string& card_json, const std::string& path);

// The "## Governance" part of MODEL_CARD.md for a parsed card.
std::string governance_markdown(const Json& card);

}  // namespace chart
