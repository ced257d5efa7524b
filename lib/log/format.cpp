#include "log/internal/format.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <ctime>

#include "core/text.h"
#include "core/utf8.h"

namespace dlsys::log::internal {

void AppendJsonVerbatim(std::string& out, std::string_view json) {
  out.reserve(out.size() + json.size());
  std::size_t i = 0;
  while (i < json.size()) {
    const auto c = static_cast<unsigned char>(json[i]);
    if (c < 0x80) {
      if (c == 0x7f) {
        core::AppendJsonUnicodeEscape(
            out, c);  // legal only inside a string, where the escape means the same
      } else {
        out.push_back(c < 0x20 ? ' ' : static_cast<char>(c));
      }
      ++i;
      continue;
    }
    char32_t cp = 0;
    const std::size_t n = core::DecodeUtf8At(json, i, &cp);
    if (n == 0) {
      core::AppendJsonUnicodeEscape(out, 0xfffd);
      ++i;
      continue;
    }
    core::AppendJsonUnicodeEscape(out, cp);
    i += n;
  }
}

void AppendJsonNumber(std::string& out, double v) {
  if (!std::isfinite(v)) {
    out += "null";
    return;
  }
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

void AppendTextValue(std::string& out, std::string_view s) {
  const std::string safe = core::TerminalSafe(s);
  const bool quote = safe.empty() || safe.find_first_of(" \"=\\") != std::string::npos;
  if (!quote) {
    out += safe;
    return;
  }
  out.push_back('"');
  for (char c : safe) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('"');
}

std::string FormatTimestamp(std::chrono::system_clock::time_point t, int fraction_digits) {
  using namespace std::chrono;
  const auto us = duration_cast<microseconds>(t.time_since_epoch()).count();
  // Floor division, so instants before 1970 still get a fraction in [0, 1 s).
  std::int64_t secs = us / 1000000;
  std::int64_t frac = us % 1000000;
  if (frac < 0) {
    frac += 1000000;
    --secs;
  }
  const auto tt = static_cast<std::time_t>(secs);
  std::tm tm{};
  ::gmtime_r(&tt, &tm);
  char buf[40];
  int n = 0;
  if (fraction_digits == 3) {
    n = std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                      tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                      static_cast<int>(frac / 1000));
  } else {
    n = std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900,
                      tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                      static_cast<int>(frac));
  }
  return std::string(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
}

}  // namespace dlsys::log::internal
