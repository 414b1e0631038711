// The frame every chart report shares: one self-contained HTML page (inline CSS and SVG, no
// scripts, no external assets), a facts table under the title, warnings, figures with captions.
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace chart {

// <!DOCTYPE html> ... <body><h1>title</h1> and the facts table; close with page_close().
std::string page_open(const std::string& title, const std::vector<std::pair<std::string, std::string>>& facts);
std::string page_close();
std::string warning_html(const std::string& text);  // a highlighted paragraph, text escaped
std::string figure(const std::string& svg, const std::string& caption_html);

}  // namespace chart
