// Strict, bounded JSON parsing and RFC 8785 canonical serialisation over nlohmann::json.
//
// Everything dlsys reads before a signature is trusted (manifests, signature envelopes,
// requirements, the JSON form of specs and target profiles) goes through ParseJson, and
// everything whose bytes are signed is written by CanonicalJson.
//
// Internal to lib/: this header exposes nlohmann::json, so only .cpp files include it.
// All functions are thread-safe (no shared state) and never throw.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "core/error.h"

namespace dlsys::core {

// The largest integer I-JSON (RFC 7493 section 2.2) and ECMAScript represent exactly:
// 2^53 - 1. Integers beyond +-kMaxSafeInteger are refused on input and on output.
inline constexpr std::int64_t kMaxSafeInteger = (std::int64_t{1} << 53) - 1;

struct JsonLimits {
  std::size_t max_bytes;            // size of the text
  std::size_t max_depth = 64;       // nested arrays/objects; the root container is level 1
  std::size_t max_values = 100000;  // every value counts: containers, scalars (not keys)
};

// Parses one JSON text strictly (RFC 8259 plus I-JSON, RFC 7493):
//  - the text is at most limits.max_bytes, valid UTF-8 throughout, with no byte order mark;
//  - no duplicate member names in any object (nlohmann alone would keep the last one);
//  - nesting at most limits.max_depth levels, at most limits.max_values values;
//  - integers (number literals without fraction or exponent) within +-(2^53 - 1); other
//    numbers finite (1e400 is refused);
//  - nothing but white space after the value.
// Integers come out as number_unsigned (>= 0) or number_integer (< 0), other numbers as
// number_float. Parsing is iterative (no recursion per nesting level) and the DOM is bounded
// by the limits. kInvalid with a message naming `what` and the byte offset, e.g.
// "manifest: duplicate key 'name' at byte 1234"; kInternal only if memory runs out.
[[nodiscard]] Result<nlohmann::json> ParseJson(std::string_view text, const JsonLimits& limits,
                                               const std::string& what);

// Serialises `value` in the JSON Canonicalization Scheme (RFC 8785): object members sorted by
// their names as UTF-16 code-unit sequences, no white space, strings with only the required
// escapes (\" \\ \b \f \n \r \t, other control characters as \u00xx, everything else as raw
// UTF-8), numbers as ECMAScript's Number.prototype.toString writes them (-0 as 0).
// kInvalid, naming the JSON pointer of the value, for: strings or names that are not valid
// UTF-8; integers outside +-(2^53 - 1); non-finite numbers; numbers whose canonical text would
// be an integer outside +-(2^53 - 1) (doubles from 2^53 up to 1e21, which ParseJson would
// refuse to read back); binary or discarded values. Iterative, so any depth is fine.
[[nodiscard]] Result<std::string> CanonicalJson(const nlohmann::json& value);

// ECMAScript Number::toString(v) (ECMA-262, section 6.1.6.1.20) with the shortest round-trip
// digits: "333333333.3333333", "1e+30", "0.000001", "1e-7", "5e-324"; -0 gives "0", NaN and
// infinities give "NaN", "Infinity", "-Infinity" (CanonicalJson refuses those).
std::string EcmaScriptNumber(double v);

}  // namespace dlsys::core
