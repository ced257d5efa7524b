// JSON text helpers shared by the protocol's parser (messages) and encoders. Pure functions;
// thread-safe.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace dlsys::serve::internal {

// Appends `text` as a JSON string literal (with the quotes) in pure ASCII: ", \ and control
// characters escaped, non-ASCII as \uXXXX (surrogate pairs above U+FFFF), each byte that is not
// part of well-formed UTF-8 as \ufffd.
void AppendJsonString(std::string& out, std::string_view text);

// Appends "[2,-1,4]".
void AppendShape(std::string& out, std::span<const std::int64_t> shape);

}  // namespace dlsys::serve::internal
