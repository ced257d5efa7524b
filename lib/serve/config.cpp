#include "serve/config.h"

#include <cmath>
#include <nlohmann/json.hpp>
#include <optional>
#include <type_traits>
#include <variant>

#include "core/file.h"
#include "core/internal/json.h"
#include "core/text.h"
#include "manifest/internal/json_read.h"
#include "manifest/internal/yaml_json.h"

namespace dlsys::serve {
namespace {

using Json = nlohmann::json;
using manifest::internal::Brief;

constexpr std::size_t kMaxConfigBytes = 64 * 1024;
// The document is one mapping with one list (trust): three levels leave room for a clear
// "expected a string" message about a nested value instead of a depth error.
constexpr core::JsonLimits kConfigLimits{kMaxConfigBytes, 3, 10000};
constexpr std::size_t kMaxStringBytes = 4096;
constexpr std::size_t kMaxTrustEntries = 256;

using Member = std::variant<std::string ServeConfig::*, int ServeConfig::*,
                            std::uint64_t ServeConfig::*, double ServeConfig::*,
                            bool ServeConfig::*, std::vector<std::string> ServeConfig::*>;

// One setting: its key (in the file, and the name errors use), where it lives and its range.
// min/max bound integers, and log_sample_rate's number; non_empty applies to strings.
struct Setting {
  const char* key;
  Member member;
  std::int64_t min = 0;
  std::int64_t max = 0;
  bool non_empty = false;
};

constexpr std::int64_t kMaxTimeoutMs = 86'400'000;  // one day

// Keep in step with schemas/serve-config.schema.json (config_test checks they agree).
const Setting kSettings[] = {
    {"host", &ServeConfig::host, 0, 0, true},
    {"port", &ServeConfig::port, 0, 65535},
    {"http_threads", &ServeConfig::http_threads, 1, 64},
    {"max_connections", &ServeConfig::max_connections, 1, 100000},
    {"idle_timeout_ms", &ServeConfig::idle_timeout_ms, 1, kMaxTimeoutMs},
    {"body_timeout_ms", &ServeConfig::body_timeout_ms, 1, kMaxTimeoutMs},
    {"max_header_bytes", &ServeConfig::max_header_bytes, 1024, 1048576},
    {"max_request_bytes", &ServeConfig::max_request_bytes, 1, std::int64_t{1} << 34},
    {"instances", &ServeConfig::instances, 0, 64},
    {"intra_op_threads", &ServeConfig::intra_op_threads, 0, 256},
    {"max_batch_size", &ServeConfig::max_batch_size, 1, 4096},
    {"max_queue_delay_us", &ServeConfig::max_queue_delay_us, 0, 10'000'000},
    {"queue_capacity", &ServeConfig::queue_capacity, 1, 1'000'000},
    {"request_timeout_ms", &ServeConfig::request_timeout_ms, 1, kMaxTimeoutMs},
    {"grace_period_ms", &ServeConfig::grace_period_ms, 1, kMaxTimeoutMs},
    {"token_file", &ServeConfig::token_file},
    {"tls_cert", &ServeConfig::tls_cert},
    {"tls_key", &ServeConfig::tls_key},
    {"access_log", &ServeConfig::access_log},
    {"log_sample_rate", &ServeConfig::log_sample_rate, 0, 1},
    {"registry", &ServeConfig::registry},
    {"env", &ServeConfig::env},
    {"registry_poll_ms", &ServeConfig::registry_poll_ms, 10, kMaxTimeoutMs},
    {"trust", &ServeConfig::trust},
    {"allow_unsigned", &ServeConfig::allow_unsigned},
};

std::string KnownKeys() {
  std::string list;
  for (const Setting& s : kSettings) list += (list.empty() ? "" : ", ") + std::string(s.key);
  return list;
}

std::string IntRange(const Setting& s) {
  return "an integer from " + std::to_string(s.min) + " to " + std::to_string(s.max);
}

// The integer in `v` if it is one within [min, max]. nlohmann keeps non-negative integers
// unsigned: compare those as unsigned so nothing beyond INT64_MAX wraps into range.
std::optional<std::int64_t> IntIn(const Json& v, std::int64_t min, std::int64_t max) {
  if (v.is_number_unsigned()) {
    const auto u = v.get<std::uint64_t>();
    if (max < 0 || u > static_cast<std::uint64_t>(max)) return std::nullopt;
    const auto i = static_cast<std::int64_t>(u);
    if (i < min) return std::nullopt;
    return i;
  }
  if (v.is_number_integer()) {
    const auto i = v.get<std::int64_t>();
    if (i < min || i > max) return std::nullopt;
    return i;
  }
  return std::nullopt;
}

// Reads one value into config. kInvalid "<what> key '<key>': expected ..., found ...".
Result<void> Apply(const Setting& s, const Json& v, const std::string& what, ServeConfig& config) {
  auto bad = [&](const std::string& expected) {
    return Fail(Code::kInvalid, what + " key '" + s.key + "': expected " + expected + ", found " +
                                    (v.is_string() ? "the string " : "") + Brief(v));
  };
  return std::visit(
      [&](auto member) -> Result<void> {
        using T = std::remove_cvref_t<decltype(config.*member)>;
        if constexpr (std::is_same_v<T, std::string>) {
          const std::string expected =
              std::string(s.non_empty ? "a non-empty string" : "a string") + " of at most " +
              std::to_string(kMaxStringBytes) + " bytes";
          if (!v.is_string()) return bad(expected);
          const auto& str = v.get_ref<const std::string&>();
          if (str.size() > kMaxStringBytes || (s.non_empty && str.empty())) return bad(expected);
          config.*member = str;
        } else if constexpr (std::is_same_v<T, bool>) {
          if (!v.is_boolean()) return bad("true or false");
          config.*member = v.get<bool>();
        } else if constexpr (std::is_same_v<T, double>) {
          const std::string expected =
              "a number from " + std::to_string(s.min) + " to " + std::to_string(s.max);
          if (!v.is_number()) return bad(expected);
          const double d = v.get<double>();
          if (!(d >= static_cast<double>(s.min) && d <= static_cast<double>(s.max))) {
            return bad(expected);
          }
          config.*member = d;
        } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
          const std::string expected =
              "a list of at most " + std::to_string(kMaxTrustEntries) + " non-empty strings";
          if (!v.is_array() || v.size() > kMaxTrustEntries) return bad(expected);
          std::vector<std::string> items;
          for (std::size_t i = 0; i < v.size(); ++i) {
            const Json& e = v[i];
            if (!e.is_string() || e.get_ref<const std::string&>().empty() ||
                e.get_ref<const std::string&>().size() > kMaxStringBytes) {
              return Fail(Code::kInvalid, what + " key '" + s.key + "[" + std::to_string(i) +
                                              "]': expected a non-empty string of at most " +
                                              std::to_string(kMaxStringBytes) + " bytes, found " +
                                              Brief(e));
            }
            items.push_back(e.get<std::string>());
          }
          config.*member = std::move(items);
        } else {
          const auto i = IntIn(v, s.min, s.max);
          if (!i) return bad(IntRange(s));
          config.*member = static_cast<T>(*i);
        }
        return {};
      },
      s.member);
}

tl::unexpected<Error> Usage(const std::string& key, const std::string& problem) {
  return Fail(Code::kUsage, "serve setting '" + key + "' " + problem);
}

}  // namespace

Result<void> LoadConfigFile(const std::string& path, ServeConfig& config) {
  DLSYS_ASSIGN_OR_RETURN(std::string text, core::ReadFile(path, kMaxConfigBytes));
  const std::string what = "serve config '" + core::TerminalSafe(path) + "'";
  DLSYS_ASSIGN_OR_RETURN(Json root, manifest::internal::YamlToJsonValue(text, what, kConfigLimits));
  if (root.is_null()) return {};  // empty, or only comments: nothing to change
  if (!root.is_object()) {
    return Fail(Code::kInvalid,
                what + ": expected a mapping of settings (key: value), found " + Brief(root));
  }
  // Check every key before applying any, so a failed load leaves config unchanged.
  ServeConfig updated = config;
  for (const auto& [key, value] : root.items()) {
    const Setting* setting = nullptr;
    for (const Setting& s : kSettings) {
      if (key == s.key) setting = &s;
    }
    if (setting == nullptr) {
      return Fail(Code::kInvalid, what + " key '" + core::Truncate(core::TerminalSafe(key), 64) +
                                      "' is not a known setting (known: " + KnownKeys() + ")");
    }
    DLSYS_TRY(Apply(*setting, value, what, updated));
  }
  config = std::move(updated);
  return {};
}

Result<void> CheckConfig(const ServeConfig& config) {
  for (const Setting& s : kSettings) {
    auto check = [&](auto member) -> Result<void> {
      using T = std::remove_cvref_t<decltype(config.*member)>;
      const T& v = config.*member;
      if constexpr (std::is_same_v<T, std::string>) {
        if (s.non_empty && v.empty()) return Usage(s.key, "must not be empty");
      } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
        for (const auto& e : v) {
          if (e.empty()) return Usage(s.key, "has an empty entry; give a key file or directory");
        }
      } else if constexpr (std::is_same_v<T, double>) {
        if (!(v >= static_cast<double>(s.min) && v <= static_cast<double>(s.max))) {
          return Usage(s.key, "is " + core::EcmaScriptNumber(v) + "; expected a number from " +
                                  std::to_string(s.min) + " to " + std::to_string(s.max));
        }
      } else if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
        const bool in_range =
            std::is_unsigned_v<T>
                ? static_cast<std::uint64_t>(v) >= static_cast<std::uint64_t>(s.min) &&
                      static_cast<std::uint64_t>(v) <= static_cast<std::uint64_t>(s.max)
                : static_cast<std::int64_t>(v) >= s.min && static_cast<std::int64_t>(v) <= s.max;
        if (!in_range) {
          return Usage(s.key, "is " + std::to_string(v) + "; expected " + IntRange(s));
        }
      }
      return {};
    };
    DLSYS_TRY(std::visit(check, s.member));
  }
  if (config.registry.empty() != config.env.empty()) {
    return Fail(Code::kUsage,
                config.env.empty() ? "a registry is given without an environment to serve"
                                   : "an environment is given without a registry",
                {"give both: --registry DIR (or DLSYS_REGISTRY) and --env ENV"});
  }
  if (config.tls_cert.empty() != config.tls_key.empty()) {
    return config.tls_cert.empty()
               ? Usage("tls_key", "is set without tls_cert; give both for HTTPS, or neither")
               : Usage("tls_cert", "is set without tls_key; give both for HTTPS, or neither");
  }
  return {};
}

}  // namespace dlsys::serve
