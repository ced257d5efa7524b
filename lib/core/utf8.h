// UTF-8 validation (RFC 3629). Pure functions; thread-safe.
#pragma once

#include <cstddef>
#include <string_view>

namespace dlsys::core {

// True iff `text` is well-formed UTF-8 per RFC 3629: shortest forms only (no overlong
// encodings), no surrogates (U+D800..U+DFFF), nothing above U+10FFFF, no truncated sequences.
bool IsValidUtf8(std::string_view text);

// Byte offset of the first byte of the first ill-formed sequence, or std::string_view::npos
// when the whole text is valid UTF-8.
std::size_t FindInvalidUtf8(std::string_view text);

// Length (1-4) of the well-formed UTF-8 sequence starting at text[i], storing its code point
// in *cp; 0 if the bytes at i do not start one (then *cp is unchanged). Requires i < size.
std::size_t DecodeUtf8At(std::string_view text, std::size_t i, char32_t* cp);

}  // namespace dlsys::core
