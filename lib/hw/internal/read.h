// Reads shared by target profiles and requirements: sizes with units, compute capabilities and
// numeric version comparison. Private to lib/hw; implemented in profile.cpp.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/error.h"
#include "manifest/internal/json_read.h"

namespace dlsys::hw::internal {

using manifest::internal::Json;
using manifest::internal::Reader;

// obj[key] as a byte count: a non-negative integer or a string such as "4 GiB", at most
// 2^53 - 1 (what canonical JSON carries). nullopt when absent or null. kInvalid naming
// path.key otherwise.
[[nodiscard]] Result<std::optional<std::uint64_t>> ReadSize(const Reader& reader, const Json& obj,
                                                            const std::string& path,
                                                            const char* key);

// obj[key] as a CUDA compute capability "major.minor": a string "8.6" or a number 8.6 / 8,
// normalised to "8.6" / "8.0". nullopt when absent or null. kInvalid naming path.key otherwise.
[[nodiscard]] Result<std::optional<std::string>> ReadComputeCapability(const Reader& reader,
                                                                       const Json& obj,
                                                                       const std::string& path,
                                                                       const char* key);

// Numeric comparison of dotted versions ("1.13.0" vs "1.12.1", "8.0" vs "7.5"): the leading
// digits of each component are compared, suffixes such as "+cpu" ignored, missing components
// count as 0. Returns <0, 0 or >0.
int CompareVersions(std::string_view a, std::string_view b);

}  // namespace dlsys::hw::internal
