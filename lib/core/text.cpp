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

}  // namespace dlsys::core
