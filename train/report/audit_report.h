// The report `chart audit` writes beside audit.json: one self-contained HTML page a privacy
// officer can read: what was attacked, the membership attacks' AUROCs and ROC curves, the
// members flagged at low false-positive rates, the extraction attack, and the tokens and bins
// resting on fewer than k subjects, each with what it means.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include "core/json.h"
#include "train/report/eval_report.h"

namespace chart {

// audit: audit.json as chart audit writes it; roc: one curve per membership attack, members as
// positives (empty: no plot).
std::string render_audit_html(const Json& audit, const std::vector<Series>& roc);
void write_audit_report(const std::filesystem::path& html, const Json& audit, const std::vector<Series>& roc);

}  // namespace chart
