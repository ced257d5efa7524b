// Formatting pieces of a log line: JSON string escaping, numbers and timestamps.
// Internal to lib/log (and its tests). Pure functions; thread-safe.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

namespace dlsys::log::internal {

// Appends json, trusted to be valid JSON, kept on one line and ASCII-only: control bytes
// (legal only as white space between tokens) become spaces, and non-ASCII UTF-8 (legal only
// inside strings) is escaped as in core::AppendAsciiJsonString.
void AppendJsonVerbatim(std::string& out, std::string_view json);

// Appends the shortest text that reads back as exactly v (std::to_chars), or null when v is
// NaN or infinite (JSON has no such numbers).
void AppendJsonNumber(std::string& out, double v);

// Appends a value for the text format: made terminal-safe (core::TerminalSafe), and quoted
// ("a b", with \" and \\ inside) when empty or holding a space, '"', '=' or '\'.
void AppendTextValue(std::string& out, std::string_view s);

// RFC 3339 UTC with `fraction_digits` (3 or 6) digits after the second and a "Z":
// "2026-12-01T15:47:28.123456Z".
std::string FormatTimestamp(std::chrono::system_clock::time_point t, int fraction_digits);

}  // namespace dlsys::log::internal
