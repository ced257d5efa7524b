// YAML (1.2 core schema) to JSON, straight from the parser's events.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "core/error.h"
#include "core/internal/json.h"

namespace dlsys::manifest::internal {

// Parses one YAML document into JSON: plain scalars become null, booleans, integers or numbers
// per the YAML 1.2 core schema, quoted scalars stay strings. A text whose first non-blank
// character is '{' is JSON and read by core::ParseJson (strict I-JSON: integers within
// +-(2^53 - 1)); YAML integers keep their full 64-bit range.
//
// Refuses, with kInvalid "<display>: ...": text over limits.max_bytes, invalid UTF-8, control
// characters other than tab, LF and CR; aliases (no "billion laughs" expansion), non-scalar or
// duplicate map keys, nesting deeper than limits.max_depth levels (block or flow), more than
// limits.max_values values, numbers out of the range of a double, more than one document.
// YAML errors name "line L, column C". Parsing stops at the first error, so yaml-cpp's
// recursion never goes deeper than limits.max_depth + 1 levels.
[[nodiscard]] Result<nlohmann::json> YamlToJsonValue(std::string_view yaml,
                                                     const std::string& display,
                                                     const core::JsonLimits& limits);

}  // namespace dlsys::manifest::internal
