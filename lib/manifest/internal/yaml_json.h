// YAML (1.2 core schema) to JSON, straight from the parser's events.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace dlsys::manifest::internal {

// Parses one YAML document into JSON: plain scalars become null, booleans, integers or numbers
// per the YAML 1.2 core schema, quoted scalars stay strings. Refuses aliases (no "billion
// laughs" expansion), non-scalar or duplicate map keys, and nesting deeper than 64 levels.
// kInvalid with "<display>: line L, column C: ...".
[[nodiscard]] Result<nlohmann::json> YamlToJsonValue(std::string_view yaml,
                                                     const std::string& display);

}  // namespace dlsys::manifest::internal
