// Typed, path-aware reads from nlohmann::json for validating documents. Each failure names
// the field ("files[2].sha256"), what was expected and what was found.
//
// Reads never use operator[] on a const json (undefined behaviour for a missing key): they
// look members up with find().
#pragma once

#include <cstdint>
#include <initializer_list>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"

namespace dlsys::manifest::internal {

using Json = nlohmann::json;

std::string TypeName(const Json& j);
std::string Brief(const Json& j);  // a short, terminal-safe rendering of a value for messages

// obj[key], or nullptr when obj is not an object or has no such member.
const Json* Find(const Json& obj, const char* key);

// `what` names the document ("manifest", "dlsys.yaml").
class Reader {
 public:
  explicit Reader(std::string what) : what_(std::move(what)) {}

  const std::string& what() const { return what_; }

  // kInvalid "<what> field '<field>': expected <expected>, found <found>" (or "but it is
  // missing" when found is nullptr).
  tl::unexpected<Error> Bad(const std::string& field, const std::string& expected,
                            const Json* found) const;
  // kInvalid "<what> field '<field>': <problem>".
  tl::unexpected<Error> Problem(const std::string& field, const std::string& problem) const;

  // The member, or nullptr when it is absent or null and not required. A required member that
  // is absent or null is an error ("... but it is missing" / "found null").
  [[nodiscard]] Result<const Json*> Get(const Json& obj, const std::string& path, const char* key,
                                        bool required) const;
  // A string of at most max_len bytes (and at least one when non_empty); "" when absent.
  [[nodiscard]] Result<std::string> String(const Json& obj, const std::string& path,
                                           const char* key, bool required,
                                           std::size_t max_len = 4096,
                                           bool non_empty = false) const;
  // An integer in [min, max] (a number with a fraction, even 1.0, is not an integer); `min`
  // when absent.
  [[nodiscard]] Result<std::int64_t> Int(const Json& obj, const std::string& path, const char* key,
                                         bool required, std::int64_t min, std::int64_t max) const;
  // A finite number >= min; `fallback` when absent.
  [[nodiscard]] Result<double> Number(const Json& obj, const std::string& path, const char* key,
                                      bool required, double fallback,
                                      double min = -std::numeric_limits<double>::max()) const;
  // An object, re-serialised as canonical JSON (RFC 8785); "{}" when absent. kInvalid, naming
  // the field, for values canonical JSON cannot carry (integers beyond +-(2^53 - 1), ...).
  [[nodiscard]] Result<std::string> Object(const Json& obj, const std::string& path,
                                           const char* key) const;
  // An array of at most max_items strings of 1..max_len bytes; empty when absent.
  [[nodiscard]] Result<std::vector<std::string>> Strings(
      const Json& obj, const std::string& path, const char* key, bool required,
      std::size_t max_len = 4096,
      std::size_t max_items = std::numeric_limits<std::size_t>::max()) const;
  // A tensor shape: an array of at most max_rank integers, each >= 0 and <= 2^53 - 1, or -1
  // (a dynamic dimension) when allow_dynamic.
  [[nodiscard]] Result<std::vector<std::int64_t>> Shape(const Json& obj, const std::string& path,
                                                        const char* key, bool allow_dynamic,
                                                        std::size_t max_rank) const;
  // Rejects keys other than `allowed` (catches typos like "hyperparameter").
  [[nodiscard]] Result<void> OnlyKeys(const Json& obj, const std::string& path,
                                      std::initializer_list<const char*> allowed) const;
  // The object's keys are exactly `keys`: none unknown, none missing, none null.
  [[nodiscard]] Result<void> ExactKeys(const Json& obj, const std::string& path,
                                       std::initializer_list<const char*> keys) const;

 private:
  std::string what_;
};

inline std::string Join(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}
inline std::string Index(const std::string& path, std::size_t i) {
  return path + "[" + std::to_string(i) + "]";
}

}  // namespace dlsys::manifest::internal
