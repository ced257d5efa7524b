// What dlsys monitor's views share, whether they read logs (cmd_monitor.cpp) or a server's
// metrics (monitor_url.cpp): the terminal (redrawn in place, fitted to its size), tables and
// numbers as text.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace dlsys::cli::monitor_view {

// TERM unset or "dumb", or NO_COLOR set: no escape sequences.
bool TermIsDumb();
// Whether the terminal takes UTF-8: the first of LC_ALL, LC_CTYPE, LANG that is set names it
// (as the C library would resolve the locale); "C"/"POSIX" or nothing set means ASCII.
bool LocaleIsUtf8();
// Standard output's terminal size (columns, rows); 0 when unknown.
std::pair<int, int> TerminalSize();

// A frame that replaces the previous one without flicker: cursor home, each line overwritten
// and cleared to its end, then everything below cleared; written with one write().
std::string InPlace(const std::string& frame);
// The frame fitted to the terminal: lines cut at the width (a wrapped line would break the
// in-place redraw) and at most rows - 1 lines, the last saying how many were left out.
std::string FitToTerminal(const std::string& frame, int cols, int rows);

// Left-aligned key columns, right-aligned numbers, two spaces between.
std::string Table(const std::vector<std::vector<std::string>>& rows, std::size_t key_columns);
// v with `digits` decimals; "-" when not finite.
std::string Fixed(double v, int digits);
// Milliseconds with three significant digits or more: 0.152, 12.6, 1234; "-" when not finite.
std::string Ms(double ms);

}  // namespace dlsys::cli::monitor_view
