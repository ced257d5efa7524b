// Typed, path-aware reads from nlohmann::json for validating documents. Each failure names
// the field ("files[2].sha256"), what was expected and what was found.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace dlsys::manifest::internal {

using Json = nlohmann::json;

std::string TypeName(const Json& j);
std::string Brief(const Json& j);  // a short rendering of a value for error messages

// `what` names the document ("manifest", "dlsys.yaml").
class Reader {
 public:
  explicit Reader(std::string what) : what_(std::move(what)) {}

  tl::unexpected<Error> Bad(const std::string& field, const std::string& expected,
                            const Json* found) const;

  [[nodiscard]] Result<const Json*> Get(const Json& obj, const std::string& path,
                                        const char* key, bool required) const;
  [[nodiscard]] Result<std::string> String(const Json& obj, const std::string& path,
                                           const char* key, bool required,
                                           std::size_t max_len = 4096) const;
  [[nodiscard]] Result<std::int64_t> Int(const Json& obj, const std::string& path,
                                         const char* key, bool required, std::int64_t min,
                                         std::int64_t max) const;
  [[nodiscard]] Result<double> Number(const Json& obj, const std::string& path, const char* key,
                                      bool required, double fallback) const;
  // An object, re-serialised canonically; "{}" when absent.
  [[nodiscard]] Result<std::string> Object(const Json& obj, const std::string& path,
                                           const char* key) const;
  [[nodiscard]] Result<std::vector<std::string>> Strings(const Json& obj, const std::string& path,
                                                         const char* key, bool required) const;
  // Rejects keys other than `allowed` (catches typos like "hyperparameter").
  [[nodiscard]] Result<void> OnlyKeys(const Json& obj, const std::string& path,
                                      std::initializer_list<const char*> allowed) const;

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
