// Hex and base64 (RFC 4648, standard alphabet, padded) encodings.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "core/error.h"

namespace dlsys::core {

std::string HexEncode(std::span<const std::byte> bytes);
std::string Base64Encode(std::span<const std::byte> bytes);
// nullopt if the text is not padded standard base64.
std::optional<std::string> Base64Decode(std::string_view text);

inline std::span<const std::byte> AsBytes(std::string_view s) {
  return std::as_bytes(std::span(s.data(), s.size()));
}
inline std::string_view AsChars(std::span<const std::byte> b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

// True for SemVer 2.0.0 versions such as 1.2.3, 1.0.0-rc.1+build.5.
bool IsSemver(std::string_view version);
// SemVer 2.0.0 precedence of two valid versions: <0, 0 or >0 (build metadata ignored; a
// pre-release sorts before its release; numeric identifiers compare as numbers).
int CompareSemver(std::string_view a, std::string_view b);

// Formats a byte count for people: "812 B", "1.4 KiB", "1.00 GiB".
std::string HumanBytes(std::uint64_t bytes);

// Parses a byte count: a plain integer ("1073741824") or a number with a unit, with or without
// a space ("4 GiB", "4GiB", "1.5 GB"). Units: B; SI kB/KB, MB, GB, TB (powers of 1000); IEC
// KiB, MiB, GiB, TiB (powers of 1024). Fractions round to the nearest byte. kInvalid for
// anything else, negative numbers, or values beyond 2^64 - 1.
[[nodiscard]] Result<std::uint64_t> ParseByteSize(std::string_view text);

}  // namespace dlsys::core
