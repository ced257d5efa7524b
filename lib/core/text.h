// Text that is safe to show on a terminal.
//
// Strings from archives, specs, profiles, file names and error messages are attacker-chosen:
// an ESC sequence can erase a FAIL row, a bidi override can reorder what a reader sees. Every
// such string passes through TerminalSafe before it reaches a terminal. Pure functions;
// thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace dlsys::core {

// Returns s with every character that could move the cursor, change colours, reorder text or
// confuse a terminal replaced by a visible escape; everything else is copied unchanged
// (including a literal backslash):
//   C0 controls and DEL: \n \r \t, others as \xHH (ESC -> \x1b, DEL -> \x7f)
//   C1 controls U+0080..U+009F:                     \u{80} .. \u{9f}
//   bidi controls U+200E U+200F U+202A..U+202E U+2066..U+2069 U+061C: \u{202e}, ...
//   each byte that is not part of well-formed UTF-8 (overlong forms, surrogates, code points
//   above U+10FFFF, truncated or stray bytes):      \xHH, e.g. \xff
// The result is well-formed UTF-8 with no control characters. Linear time; at most 8 output
// bytes per input byte.
std::string TerminalSafe(std::string_view s);
// TerminalSafe(s) appended to `out`.
void AppendTerminalSafe(std::string& out, std::string_view s);

// Returns s cut to at most max_chars characters, the last of which is "…" when something was
// cut. A character is a well-formed UTF-8 sequence or a single byte that is not part of one,
// so a cut never splits a character. max_chars 0 gives "".
std::string Truncate(std::string_view s, std::size_t max_chars);

// Like Truncate, but cuts out the middle: keeps the first third and the last two thirds of
// max_chars with "…" between ("hyperparameters.optim…betas.0"), for dotted keys whose end
// tells rows apart. max_chars 0 gives "".
std::string TruncateMiddle(std::string_view s, std::size_t max_chars);

// The number of characters in s as Truncate counts them (for aligning columns).
std::size_t CharCount(std::string_view s);

// Appends s to out as a JSON string literal (with the quotes), ASCII-only: " \ and the
// controls \b \f \n \r \t escaped by name, other C0 controls and DEL as \u00XX, every
// well-formed non-ASCII UTF-8 sequence as \uXXXX (a surrogate pair above U+FFFF), and each
// byte that is not part of well-formed UTF-8 as \ufffd. For logs and protocol responses (not
// for RFC 8785 canonical JSON, which keeps UTF-8 as it is).
void AppendAsciiJsonString(std::string& out, std::string_view s);
// Appends the JSON escape of `c`, which must be '"', '\\' or a C0 control: \" \\ \b \f \n \r \t by
// name, the others as \u00xx (lower-case hex, as RFC 8785 requires).
void AppendJsonAsciiEscape(std::string& out, unsigned char c);
// Appends \uXXXX for a code point (a surrogate pair above U+FFFF).
void AppendJsonUnicodeEscape(std::string& out, char32_t cp);

}  // namespace dlsys::core
