#include "log/internal/format.h"

#include <charconv>
#include <cmath>
#include <climits>
#include <cstdio>
#include <cstring>
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
  // Quoted when empty or holding a space, quote, '=' or backslash (after escaping).
  const std::size_t at = out.size();
  core::AppendTerminalSafe(out, s);
  const std::string_view safe(out.data() + at, out.size() - at);
  if (!safe.empty() && safe.find_first_of(" \"=\\") == std::string_view::npos) return;
  std::string quoted = "\"";
  for (char c : safe) {
    if (c == '"' || c == '\\') quoted.push_back('\\');
    quoted.push_back(c);
  }
  quoted.push_back('"');
  out.replace(at, std::string::npos, quoted);
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
  // "YYYY-MM-DDTHH:MM:SS" changes once a second: each thread keeps the last one it made.
  thread_local std::int64_t cached_secs = INT64_MIN;
  thread_local char cached[32];
  thread_local int cached_len = 0;
  if (secs != cached_secs) {
    const auto tt = static_cast<std::time_t>(secs);
    std::tm tm{};
    ::gmtime_r(&tt, &tm);
    cached_len = std::snprintf(cached, sizeof cached, "%04d-%02d-%02dT%02d:%02d:%02d",
                               tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                               tm.tm_min, tm.tm_sec);
    if (cached_len < 0 || cached_len >= static_cast<int>(sizeof cached)) cached_len = 0;
    cached_secs = secs;
  }
  const int digits = fraction_digits == 3 ? 3 : 6;
  if (digits == 3) frac /= 1000;
  char out[48];
  std::memcpy(out, cached, static_cast<std::size_t>(cached_len));
  char* p = out + cached_len;
  *p++ = '.';
  for (int d = digits - 1; d >= 0; --d) {
    p[d] = static_cast<char>('0' + frac % 10);
    frac /= 10;
  }
  p += digits;
  *p++ = 'Z';
  return std::string(out, p);
}

}  // namespace dlsys::log::internal
