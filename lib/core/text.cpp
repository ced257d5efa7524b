#include "core/text.h"

#include "core/utf8.h"

namespace dlsys::core {
namespace {

bool IsBidiControl(char32_t cp) {
  return cp == 0x061C || cp == 0x200E || cp == 0x200F || (cp >= 0x202A && cp <= 0x202E) ||
         (cp >= 0x2066 && cp <= 0x2069);
}

constexpr char kHex[] = "0123456789abcdef";

void AppendByteEscape(std::string& out, unsigned char c) {
  out += "\\x";
  out += kHex[c >> 4];
  out += kHex[c & 0xF];
}

void AppendCodePointEscape(std::string& out, char32_t cp) {
  char digits[8];
  int n = 0;
  do {
    digits[n++] = kHex[cp & 0xF];
    cp >>= 4;
  } while (cp != 0);
  out += "\\u{";
  while (n > 0) out += digits[--n];
  out += '}';
}

}  // namespace

void AppendTerminalSafe(std::string& out, std::string_view s) {
  out.reserve(out.size() + s.size());
  std::size_t i = 0;
  while (i < s.size()) {
    // Runs of printable ASCII (the usual case) are copied at once.
    std::size_t plain = i;
    while (plain < s.size() && static_cast<unsigned char>(s[plain]) >= 0x20 &&
           static_cast<unsigned char>(s[plain]) < 0x7F) {
      ++plain;
    }
    if (plain > i) {
      out.append(s.data() + i, plain - i);
      i = plain;
      continue;
    }
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      switch (c) {
        case '\n':
          out += "\\n";
          break;
        case '\r':
          out += "\\r";
          break;
        case '\t':
          out += "\\t";
          break;
        default:
          AppendByteEscape(out, c);
      }
      ++i;
      continue;
    }
    char32_t cp = 0;
    const std::size_t len = DecodeUtf8At(s, i, &cp);
    if (len == 0) {
      AppendByteEscape(out, c);
      ++i;
    } else if (cp <= 0x9F || IsBidiControl(cp)) {
      AppendCodePointEscape(out, cp);
      i += len;
    } else {
      out.append(s.substr(i, len));
      i += len;
    }
  }
}

std::string TerminalSafe(std::string_view s) {
  std::string out;
  AppendTerminalSafe(out, s);
  return out;
}

std::string Truncate(std::string_view s, std::size_t max_chars) {
  if (max_chars == 0) return {};
  // Byte offset after the first (max_chars - 1) characters, where "…" goes if s is too long.
  std::size_t keep = 0;
  std::size_t chars = 0;
  std::size_t i = 0;
  while (i < s.size()) {
    if (chars == max_chars) return std::string(s.substr(0, keep)) + "…";
    char32_t cp;
    const std::size_t len = DecodeUtf8At(s, i, &cp);
    i += len == 0 ? 1 : len;
    ++chars;
    if (chars == max_chars - 1) keep = i;
  }
  return std::string(s);
}

std::string TruncateMiddle(std::string_view s, std::size_t max_chars) {
  if (max_chars == 0) return {};
  const std::size_t total = CharCount(s);
  if (total <= max_chars) return std::string(s);
  const std::size_t head = (max_chars - 1) / 3;
  const std::size_t tail = max_chars - 1 - head;
  // Byte offsets where character `head` and character `total - tail` start.
  std::size_t head_end = 0, tail_start = s.size();
  std::size_t chars = 0;
  for (std::size_t i = 0; i < s.size(); ++chars) {
    if (chars == head) head_end = i;
    if (chars == total - tail) {
      tail_start = i;
      break;
    }
    char32_t cp;
    const std::size_t len = DecodeUtf8At(s, i, &cp);
    i += len == 0 ? 1 : len;
  }
  return std::string(s.substr(0, head_end)) + "…" + std::string(s.substr(tail_start));
}

std::size_t CharCount(std::string_view s) {
  std::size_t chars = 0;
  for (std::size_t i = 0; i < s.size(); ++chars) {
    char32_t cp;
    const std::size_t len = DecodeUtf8At(s, i, &cp);
    i += len == 0 ? 1 : len;
  }
  return chars;
}

namespace {

constexpr char kJsonHex[] = "0123456789abcdef";

void AppendU16(std::string& out, unsigned unit) {
  const char esc[6] = {'\\',
                       'u',
                       kJsonHex[(unit >> 12) & 0xf],
                       kJsonHex[(unit >> 8) & 0xf],
                       kJsonHex[(unit >> 4) & 0xf],
                       kJsonHex[unit & 0xf]};
  out.append(esc, sizeof esc);
}

}  // namespace

void AppendJsonAsciiEscape(std::string& out, unsigned char c) {
  switch (c) {
    case '"':
      out += "\\\"";
      break;
    case '\\':
      out += "\\\\";
      break;
    case '\b':
      out += "\\b";
      break;
    case '\f':
      out += "\\f";
      break;
    case '\n':
      out += "\\n";
      break;
    case '\r':
      out += "\\r";
      break;
    case '\t':
      out += "\\t";
      break;
    default:
      AppendU16(out, c);
  }
}

void AppendJsonUnicodeEscape(std::string& out, char32_t cp) {
  if (cp >= 0x10000) {
    const auto v = static_cast<unsigned>(cp - 0x10000);
    AppendU16(out, 0xd800 + (v >> 10));
    AppendU16(out, 0xdc00 + (v & 0x3ff));
  } else {
    AppendU16(out, static_cast<unsigned>(cp));
  }
}

void AppendAsciiJsonString(std::string& out, std::string_view s) {
  out.reserve(out.size() + s.size() + 2);
  out.push_back('"');
  std::size_t i = 0;
  while (i < s.size()) {
    // Runs of printable ASCII are copied at once: the common case.
    std::size_t run = i;
    while (run < s.size()) {
      const auto c = static_cast<unsigned char>(s[run]);
      if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') break;
      ++run;
    }
    out.append(s.data() + i, run - i);
    i = run;
    if (i == s.size()) break;
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if (c == 0x7f) {
        AppendJsonUnicodeEscape(out, c);
      } else {
        AppendJsonAsciiEscape(out, c);
      }
      ++i;
      continue;
    }
    char32_t cp = 0;
    const std::size_t n = DecodeUtf8At(s, i, &cp);
    if (n == 0) {
      AppendJsonUnicodeEscape(out, 0xfffd);
      ++i;
      continue;
    }
    AppendJsonUnicodeEscape(out, cp);
    i += n;
  }
  out.push_back('"');
}

}  // namespace dlsys::core
