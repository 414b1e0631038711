#include "train/report/html_page.h"

#include "train/report/svg_plot.h"

namespace chart {
namespace {

const char* const kCss =
    R"(body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:24px auto;max-width:960px;color:#222;padding:0 16px}
h1{font-size:22px;margin-bottom:8px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;font-size:14px}th,td{padding:4px 10px;border-bottom:1px solid #e4e4e4;text-align:left}
table.metrics td{text-align:right;font-variant-numeric:tabular-nums}table.metrics td:first-child{text-align:left}
table.facts th{color:#555;font-weight:600}.note{color:#666;font-size:13px}
.warning{background:#fff4e5;border-left:4px solid #e8a33d;padding:8px 12px;margin:12px 0;font-size:14px}
.plots{display:flex;flex-wrap:wrap;gap:16px}figure{margin:0;width:440px}
figcaption{font-size:13px;color:#333;margin-top:4px;line-height:1.4}
svg text{font-family:Helvetica,Arial,sans-serif;font-size:11px;fill:#333}svg text.title{font-size:14px;font-weight:600;fill:#111}
svg text.note{font-size:14px;fill:#888}svg .grid{stroke:#e8e8e8;stroke-width:1}svg .tick{stroke:#555;stroke-width:1}
svg .frame{fill:none;stroke:#555;stroke-width:1})";

}  // namespace

std::string page_open(const std::string& title, const std::vector<std::pair<std::string, std::string>>& facts) {
  using svg::html_escape;
  std::string h = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>" +
                  html_escape(title) + "</title>\n<style>\n" + kCss + "\n</style>\n</head>\n<body>\n<h1>" +
                  html_escape(title) + "</h1>\n<table class=\"facts\">\n";
  for (const auto& [k, v] : facts) h += "<tr><th>" + html_escape(k) + "</th><td>" + html_escape(v) + "</td></tr>\n";
  return h + "</table>\n";
}

std::string page_close() { return "</body>\n</html>\n"; }

std::string warning_html(const std::string& text) {
  return "<p class=\"warning\"><b>Warning:</b> " + svg::html_escape(text) + "</p>\n";
}

std::string figure(const std::string& svg, const std::string& caption_html) {
  return "<figure>\n" + svg + "<figcaption>" + caption_html + "</figcaption>\n</figure>\n";
}

}  // namespace chart
