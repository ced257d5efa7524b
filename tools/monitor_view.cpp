#include "monitor_view.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "core/text.h"

namespace dlsys::cli::monitor_view {

bool TermIsDumb() {
  const char* term = std::getenv("TERM");
  return term == nullptr || std::string_view(term) == "dumb" || std::getenv("NO_COLOR") != nullptr;
}

bool LocaleIsUtf8() {
  for (const char* name : {"LC_ALL", "LC_CTYPE", "LANG"}) {
    const char* v = std::getenv(name);
    if (v == nullptr || *v == '\0') continue;
    std::string s(v);
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    return s.find("utf-8") != std::string::npos || s.find("utf8") != std::string::npos;
  }
  return false;
}

std::pair<int, int> TerminalSize() {
  winsize ws{};
  if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) != 0) return {0, 0};
  return {ws.ws_col, ws.ws_row};
}

std::string InPlace(const std::string& frame) {
  std::string out = "\x1b[H";
  std::size_t at = 0;
  while (at < frame.size()) {
    const std::size_t nl = std::min(frame.find('\n', at), frame.size());
    out.append(frame, at, nl - at);
    out += "\x1b[K\n";
    at = nl + 1;
  }
  return out + "\x1b[J";
}

std::string FitToTerminal(const std::string& frame, int cols, int rows) {
  if (cols <= 0 || rows <= 1) return frame;
  std::vector<std::string> lines;
  for (std::size_t at = 0; at < frame.size();) {
    const std::size_t nl = std::min(frame.find('\n', at), frame.size());
    lines.push_back(frame.substr(at, nl - at));
    at = nl + 1;
  }
  std::string out;
  const auto max_lines = static_cast<std::size_t>(rows - 1);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    std::string line = lines[i];
    const bool last = i + 1 == max_lines && lines.size() > max_lines;
    if (last) {
      line = "(" + std::to_string(lines.size() - i) +
             " more lines: enlarge the terminal, or use --by/--where, or --json)";
    }
    out += core::CharCount(line) > static_cast<std::size_t>(cols)
               ? core::Truncate(line, static_cast<std::size_t>(cols))
               : line;
    out += '\n';
    if (last) break;
  }
  return out;
}

std::string Table(const std::vector<std::vector<std::string>>& rows, std::size_t key_columns) {
  if (rows.empty()) return "";
  std::vector<std::size_t> width(rows[0].size(), 0);
  for (const auto& r : rows) {
    for (std::size_t i = 0; i < r.size() && i < width.size(); ++i) {
      width[i] = std::max(width[i], core::CharCount(r[i]));
    }
  }
  std::string out;
  for (const auto& r : rows) {
    std::string line;
    for (std::size_t i = 0; i < r.size() && i < width.size(); ++i) {
      const std::size_t pad = width[i] - core::CharCount(r[i]);
      line += i < key_columns ? r[i] + std::string(pad, ' ') : std::string(pad, ' ') + r[i];
      line += i + 1 < r.size() ? "  " : "";
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  }
  return out;
}

std::string Fixed(double v, int digits) {
  if (!std::isfinite(v)) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string Ms(double ms) {
  if (!std::isfinite(ms)) return "-";
  return Fixed(ms, ms < 10 ? 3 : ms < 100 ? 2 : ms < 1000 ? 1 : 0);
}

}  // namespace dlsys::cli::monitor_view
