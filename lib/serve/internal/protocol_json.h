// JSON text helpers shared by the protocol's parser (messages) and encoders. Pure functions;
// thread-safe.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "core/text.h"

namespace dlsys::serve::internal {

// JSON string literals in pure ASCII: the one implementation in lib/core.
inline void AppendJsonString(std::string& out, std::string_view text) {
  core::AppendAsciiJsonString(out, text);
}

// Appends "[2,-1,4]".
void AppendShape(std::string& out, std::span<const std::int64_t> shape);

}  // namespace dlsys::serve::internal
