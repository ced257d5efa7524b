#include "core/text.h"

namespace dlsys::core {
namespace {

// Length of the well-formed UTF-8 sequence starting at s[i] (Unicode 15, table 3-7), storing
// its code point in *cp; 0 if the byte at i does not start one.
std::size_t DecodeAt(std::string_view s, std::size_t i, char32_t* cp) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const unsigned char c = b(0);
  if (c < 0x80) {
    *cp = c;
    return 1;
  }
  std::size_t len;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;  // no overlong forms
    if (c == 0xED) hi = 0x9F;  // no surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;  // no overlong forms
    if (c == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
  } else {
    return 0;  // continuation byte, C0, C1 or F5..FF
  }
  if (s.size() - i < len) return 0;
  if (b(1) < lo || b(1) > hi) return 0;
  for (std::size_t k = 2; k < len; ++k) {
    if (b(k) < 0x80 || b(k) > 0xBF) return 0;
  }
  char32_t v = c & (len == 2 ? 0x1F : len == 3 ? 0x0F : 0x07);
  for (std::size_t k = 1; k < len; ++k) v = (v << 6) | (b(k) & 0x3F);
  *cp = v;
  return len;
}

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

std::string TerminalSafe(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7F) {
      out += static_cast<char>(c);
      ++i;
      continue;
    }
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
    const std::size_t len = DecodeAt(s, i, &cp);
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
    const std::size_t len = DecodeAt(s, i, &cp);
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
    const std::size_t len = DecodeAt(s, i, &cp);
    i += len == 0 ? 1 : len;
  }
  return std::string(s.substr(0, head_end)) + "…" + std::string(s.substr(tail_start));
}

std::size_t CharCount(std::string_view s) {
  std::size_t chars = 0;
  for (std::size_t i = 0; i < s.size(); ++chars) {
    char32_t cp;
    const std::size_t len = DecodeAt(s, i, &cp);
    i += len == 0 ? 1 : len;
  }
  return chars;
}

}  // namespace dlsys::core
