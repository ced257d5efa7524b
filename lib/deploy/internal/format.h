// What registry.cpp and registry_format.cpp share: the validators of names, versions, digests,
// times and text that apply both to requests and to what is read from the registry's files.
// Internal to lib/deploy.
#pragma once

#include <limits.h>

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

#include "core/error.h"

namespace dlsys::deploy::internal {

inline constexpr std::string_view kDigestPrefix = "sha256:";
inline const std::string kZeroHash(64, '0');  // the "prev" of the first history line
inline constexpr std::size_t kMaxUserBytes = LOGIN_NAME_MAX;
inline constexpr std::size_t kMaxHostBytes = HOST_NAME_MAX;

bool IsLowerHex(std::string_view s, std::size_t n);
bool IsModelName(std::string_view s);  // the manifest's rule
bool IsVersion(std::string_view s);    // SemVer, at most manifest::kMaxVersionBytes
bool IsHeaderToken(std::string_view s);
// A user or host name: 1..max_bytes of printable text without '@' or control characters.
bool IsPrincipal(std::string_view s, std::size_t max_bytes);
std::string Lower(std::string_view s);
std::string Q(std::string_view s);  // 'quoted', cut at 80 characters, for messages
// RFC 3339 UTC: "YYYY-MM-DDTHH:MM:SSZ", or with 6 fraction digits.
std::string FormatUtc(std::chrono::system_clock::time_point t, bool micros);

// kUsage naming the argument when a request's model, version or --reason is not valid.
[[nodiscard]] Result<void> CheckModelArg(std::string_view model);
[[nodiscard]] Result<void> CheckVersionArg(std::string_view version);
[[nodiscard]] Result<void> CheckReason(std::string_view reason);

}  // namespace dlsys::deploy::internal
