// registry.json and history.jsonl: strict reading and canonical writing (docs/deploy.md), and
// the validators they share with the requests (internal/format.h).
#include "deploy/registry.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>


#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <memory>
#include <set>
#include <span>
#include <thread>
#include <utility>

#include "core/encoding.h"
#include "deploy/internal/format.h"
#include "core/file.h"
#include "core/internal/json.h"
#include "core/test_hook.h"
#include "core/text.h"
#include "core/utf8.h"
#include "manifest/internal/json_read.h"
#include "manifest/manifest.h"

namespace dlsys::deploy {
namespace internal {

using Json = nlohmann::json;
using manifest::internal::Find;
using manifest::internal::Join;
using manifest::internal::Reader;

// ---- Validation shared by requests and by what is read from the files ------------------

bool IsLowerHex(std::string_view s, std::size_t n) {
  return s.size() == n && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

bool IsDigest(std::string_view s) {
  return s.starts_with(kDigestPrefix) && IsLowerHex(s.substr(kDigestPrefix.size()), 64);
}

// manifest::CheckName runs a regex: never hand it an unbounded string.
bool IsModelName(std::string_view s) {
  return s.size() <= manifest::kMaxNameBytes && manifest::CheckName(s).has_value();
}

bool IsVersion(std::string_view s) {
  return !s.empty() && s.size() <= manifest::kMaxVersionBytes && core::IsSemver(s);
}

bool IsEnvironmentName(std::string_view s) { return CheckEnvironmentName(s).has_value(); }

// RFC 9110 token characters.
bool IsHeaderToken(std::string_view s) {
  if (s.empty() || s.size() > manifest::kMaxIdentifierBytes) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
  });
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// Valid UTF-8 of at most max_bytes without C0, DEL or C1 control characters.
bool IsPlainText(std::string_view s, std::size_t max_bytes) {
  if (s.size() > max_bytes || !core::IsValidUtf8(s)) return false;
  for (std::size_t i = 0; i < s.size();) {
    char32_t cp = 0;
    const std::size_t n = core::DecodeUtf8At(s, i, &cp);
    if (n == 0 || cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)) return false;
    i += n;
  }
  return true;
}

// A principal (user or host name) as recorded in the files: non-empty plain text.
bool IsPrincipal(std::string_view s, std::size_t max_bytes) {
  return !s.empty() && IsPlainText(s, max_bytes);
}

// "YYYY-MM-DDTHH:MM:SSZ", or with ".ffffff" before the Z, and a real UTC calendar time.
bool IsUtcTime(std::string_view s, bool micros) {
  const std::string_view shape = micros ? "dddd-dd-ddTdd:dd:dd.ddddddZ" : "dddd-dd-ddTdd:dd:ddZ";
  if (s.size() != shape.size()) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (shape[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != shape[i]) return false;
  }
  auto num = [&](std::size_t at, std::size_t n) {
    int v = 0;
    for (std::size_t i = at; i < at + n; ++i) v = v * 10 + (s[i] - '0');
    return v;
  };
  std::tm tm{};
  tm.tm_year = num(0, 4) - 1900;
  tm.tm_mon = num(5, 2) - 1;
  tm.tm_mday = num(8, 2);
  tm.tm_hour = num(11, 2);
  tm.tm_min = num(14, 2);
  tm.tm_sec = num(17, 2);
  std::tm back = tm;
  const time_t t = timegm(&back);
  std::tm check{};
  if (gmtime_r(&t, &check) == nullptr) return false;
  return check.tm_year == tm.tm_year && check.tm_mon == tm.tm_mon &&
         check.tm_mday == tm.tm_mday && check.tm_hour == tm.tm_hour &&
         check.tm_min == tm.tm_min && check.tm_sec == tm.tm_sec;
}

std::string FormatUtc(std::chrono::system_clock::time_point t, bool micros) {
  const auto us =
      std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
  const time_t secs = static_cast<time_t>(us / 1000000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  if (micros) {
    std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                  static_cast<int>(us % 1000000));
  } else {
    std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  }
  return buf;
}

std::string Q(std::string_view s) { return "'" + core::Truncate(s, 80) + "'"; }

Result<void> CheckModelArg(std::string_view model) {
  if (!IsModelName(model)) {
    return Fail(Code::kUsage, "model name " + Q(model) +
                                  " is not valid: use 1-128 characters of a-z 0-9 . _ -, "
                                  "starting with a letter or digit");
  }
  return {};
}

Result<void> CheckVersionArg(std::string_view version) {
  if (!IsVersion(version)) {
    return Fail(Code::kUsage, "version " + Q(version) +
                                  " is not a SemVer 2.0.0 version (e.g. 1.2.0) of at most " +
                                  std::to_string(manifest::kMaxVersionBytes) + " bytes");
  }
  return {};
}

Result<void> CheckReason(std::string_view reason) {
  if (!IsPlainText(reason, kMaxReasonBytes)) {
    return Fail(Code::kUsage, "--reason must be at most " + std::to_string(kMaxReasonBytes) +
                                  " bytes of UTF-8 text without control characters (one line)");
  }
  return {};
}

// ---- JSON forms --------------------------------------------------------------------------

Json RouteJson(const Route& r) {
  Json j = Json::object();
  j["strategy"] = StrategyName(r.strategy);
  j["stable"] = r.stable;
  j["previous"] = r.previous;
  switch (r.strategy) {
    case Strategy::kReplace:
      break;
    case Strategy::kCanary:
      j["candidate"] = r.candidate;
      j["weight"] = r.weight;
      break;
    case Strategy::kAb:
      j["candidate"] = r.candidate;
      j["weight"] = r.weight;
      j["key"] = r.key;
      break;
    case Strategy::kShadow:
      j["candidate"] = r.candidate;
      j["sample"] = r.sample;
      break;
    case Strategy::kBlueGreen:
      j["standby"] = r.standby;
      break;
  }
  return j;
}

Result<std::string> Version(const Reader& r, const Json& obj, const std::string& path,
                            const char* key) {
  DLSYS_ASSIGN_OR_RETURN(std::string v, r.String(obj, path, key, true, manifest::kMaxVersionBytes));
  if (!IsVersion(v)) return r.Bad(Join(path, key), "a SemVer version", Find(obj, key));
  return v;
}

// The keys each strategy's route has: exactly these.
Result<void> RouteKeys(const Reader& r, const Json& j, const std::string& path, Strategy s) {
  switch (s) {
    case Strategy::kReplace:
      return r.ExactKeys(j, path, {"previous", "stable", "strategy"});
    case Strategy::kCanary:
      return r.ExactKeys(j, path, {"candidate", "previous", "stable", "strategy", "weight"});
    case Strategy::kAb:
      return r.ExactKeys(j, path,
                         {"candidate", "key", "previous", "stable", "strategy", "weight"});
    case Strategy::kShadow:
      return r.ExactKeys(j, path, {"candidate", "previous", "sample", "stable", "strategy"});
    case Strategy::kBlueGreen:
      return r.ExactKeys(j, path, {"previous", "stable", "standby", "strategy"});
  }
  return {};
}

Result<Route> ParseRoute(const Reader& r, const Json& j, const std::string& path) {
  if (!j.is_object()) return r.Bad(path, "an object (a route)", &j);
  DLSYS_ASSIGN_OR_RETURN(std::string name, r.String(j, path, "strategy", true, 16));
  auto strategy = ParseStrategy(name);
  if (!strategy) {
    return r.Bad(Join(path, "strategy"), "replace, canary, ab, shadow or blue-green",
                 Find(j, "strategy"));
  }
  Route route;
  route.strategy = *strategy;
  DLSYS_TRY(RouteKeys(r, j, path, route.strategy));
  DLSYS_ASSIGN_OR_RETURN(route.stable, Version(r, j, path, "stable"));
  DLSYS_ASSIGN_OR_RETURN(route.previous, r.Strings(j, path, "previous", true,
                                                   manifest::kMaxVersionBytes, kMaxPrevious));
  for (const auto& v : route.previous) {
    if (!IsVersion(v)) return r.Problem(Join(path, "previous"), Q(v) + " is not a SemVer version");
  }
  if (Find(j, "candidate") != nullptr) {
    DLSYS_ASSIGN_OR_RETURN(route.candidate, Version(r, j, path, "candidate"));
    if (route.candidate == route.stable) {
      return r.Problem(Join(path, "candidate"), "the candidate is the stable version");
    }
  }
  if (Find(j, "weight") != nullptr) {
    DLSYS_ASSIGN_OR_RETURN(route.weight, r.Number(j, path, "weight", true, 0));
    if (!(route.weight > 0 && route.weight <= 100)) {
      return r.Bad(Join(path, "weight"), "a percentage in (0, 100]", Find(j, "weight"));
    }
  }
  if (Find(j, "sample") != nullptr) {
    DLSYS_ASSIGN_OR_RETURN(route.sample, r.Number(j, path, "sample", true, 1));
    if (!(route.sample > 0 && route.sample <= 1)) {
      return r.Bad(Join(path, "sample"), "a fraction in (0, 1]", Find(j, "sample"));
    }
  }
  if (Find(j, "key") != nullptr) {
    DLSYS_ASSIGN_OR_RETURN(route.key,
                           r.String(j, path, "key", true, manifest::kMaxIdentifierBytes));
    if (!IsHeaderToken(route.key) || Lower(route.key) != route.key) {
      return r.Bad(Join(path, "key"), "a lower-case HTTP header name", Find(j, "key"));
    }
  }
  if (Find(j, "standby") != nullptr) {
    DLSYS_ASSIGN_OR_RETURN(route.standby, Version(r, j, path, "standby"));
    // Blue-green keeps the old stable as the newest rollback target: rollback pops it.
    if (route.standby == route.stable || route.previous.empty() ||
        route.previous.back() != route.standby) {
      return r.Problem(Join(path, "standby"),
                       "the standby must be the newest of 'previous' and differ from 'stable'");
    }
  }
  return route;
}

Result<VersionRecord> ParseRecord(const Reader& r, const Json& j, const std::string& path) {
  if (!j.is_object()) return r.Bad(path, "an object (a stored version)", &j);
  DLSYS_TRY(r.ExactKeys(j, path, {"compression", "created", "digest", "pushed_at", "pushed_by",
                                  "signer", "size"}));
  VersionRecord v;
  DLSYS_ASSIGN_OR_RETURN(v.digest, r.String(j, path, "digest", true, 80));
  if (!IsDigest(v.digest)) {
    return r.Bad(Join(path, "digest"), "\"sha256:\" and 64 lower-case hex digits",
                 Find(j, "digest"));
  }
  DLSYS_ASSIGN_OR_RETURN(const std::int64_t size,
                         r.Int(j, path, "size", true, 0, core::kMaxSafeInteger));
  v.size = static_cast<std::uint64_t>(size);
  DLSYS_ASSIGN_OR_RETURN(v.compression, r.String(j, path, "compression", true, 16));
  if (v.compression != "none" && v.compression != "gzip" && v.compression != "zstd") {
    return r.Bad(Join(path, "compression"), "none, gzip or zstd", Find(j, "compression"));
  }
  DLSYS_ASSIGN_OR_RETURN(v.signer, r.String(j, path, "signer", true, 64));
  if (!v.signer.empty() && !IsLowerHex(v.signer, 64)) {
    return r.Bad(Join(path, "signer"), "a key id (64 lower-case hex digits) or \"\"",
                 Find(j, "signer"));
  }
  DLSYS_ASSIGN_OR_RETURN(v.created, r.String(j, path, "created", true, 64));
  if (!IsUtcTime(v.created, false)) {
    return r.Bad(Join(path, "created"), "a UTC time YYYY-MM-DDTHH:MM:SSZ", Find(j, "created"));
  }
  DLSYS_ASSIGN_OR_RETURN(v.pushed_at, r.String(j, path, "pushed_at", true, 64));
  if (!IsUtcTime(v.pushed_at, false)) {
    return r.Bad(Join(path, "pushed_at"), "a UTC time YYYY-MM-DDTHH:MM:SSZ",
                 Find(j, "pushed_at"));
  }
  DLSYS_ASSIGN_OR_RETURN(v.pushed_by,
                         r.String(j, path, "pushed_by", true, kMaxUserBytes + 1 + kMaxHostBytes));
  const auto at = v.pushed_by.rfind('@');
  if (at == std::string::npos ||
      !IsPrincipal(std::string_view(v.pushed_by).substr(0, at), kMaxUserBytes) ||
      !IsPrincipal(std::string_view(v.pushed_by).substr(at + 1), kMaxHostBytes)) {
    return r.Bad(Join(path, "pushed_by"), "user@host", Find(j, "pushed_by"));
  }
  return v;
}

Json RecordJson(const VersionRecord& v) {
  return Json{{"compression", v.compression}, {"created", v.created},   {"digest", v.digest},
              {"pushed_at", v.pushed_at},     {"pushed_by", v.pushed_by}, {"signer", v.signer},
              {"size", v.size}};
}

Result<void> RequireCanonical(const Reader& r, const Json& root, std::string_view text) {
  auto canonical = core::CanonicalJson(root);
  if (!canonical) return r.Problem("", canonical.error().message);
  if (*canonical != text) {
    std::size_t at = 0;
    while (at < text.size() && at < canonical->size() && text[at] == (*canonical)[at]) ++at;
    return Fail(Code::kInvalid, r.what() + ": not in canonical form (RFC 8785) at byte " +
                                    std::to_string(at) + "; it is written only by dlsys deploy");
  }
  return {};
}

Result<void> ParseVersions(const Reader& r, const Json& root, State& state) {
  DLSYS_ASSIGN_OR_RETURN(const Json* versions, r.Get(root, "", "versions", true));
  if (!versions->is_object()) return r.Bad("versions", "an object of models", versions);
  std::set<std::string> digests;
  for (const auto& [model, by_version] : versions->items()) {
    const std::string path = Join("versions", model);
    if (!IsModelName(model)) return r.Problem("versions", Q(model) + " is not a valid model name");
    if (!by_version.is_object() || by_version.empty() ||
        by_version.size() > kMaxVersionsPerModel) {
      return r.Bad(path,
                   "an object of 1 to " + std::to_string(kMaxVersionsPerModel) + " versions",
                   &by_version);
    }
    auto& out = state.versions[model];
    for (const auto& [version, record] : by_version.items()) {
      if (!IsVersion(version)) return r.Problem(path, Q(version) + " is not a SemVer version");
      DLSYS_ASSIGN_OR_RETURN(VersionRecord v, ParseRecord(r, record, Join(path, version)));
      if (!digests.insert(v.digest).second) {
        return r.Problem(Join(path, version), "digest " + v.digest + " is stored twice");
      }
      v.name = model;
      v.version = version;
      out.emplace(version, std::move(v));
    }
  }
  return {};
}

Result<void> ParseEnvironments(const Reader& r, const Json& root, State& state) {
  DLSYS_ASSIGN_OR_RETURN(const Json* envs, r.Get(root, "", "environments", true));
  if (!envs->is_object() || envs->size() > kMaxEnvironments) {
    return r.Bad("environments",
                 "an object of at most " + std::to_string(kMaxEnvironments) + " environments",
                 envs);
  }
  for (const auto& [env, body] : envs->items()) {
    const std::string path = Join("environments", env);
    if (!IsEnvironmentName(env)) {
      return r.Problem("environments", Q(env) + " is not a valid environment name");
    }
    if (!body.is_object()) return r.Bad(path, "an object", &body);
    DLSYS_TRY(r.ExactKeys(body, path, {"models"}));
    const Json& models = body.at("models");
    if (!models.is_object()) return r.Bad(Join(path, "models"), "an object of routes", &models);
    auto& out = state.environments[env];
    for (const auto& [model, route_json] : models.items()) {
      const std::string route_path = Join(Join(path, "models"), model);
      if (!IsModelName(model)) {
        return r.Problem(Join(path, "models"), Q(model) + " is not a valid model name");
      }
      DLSYS_ASSIGN_OR_RETURN(Route route, ParseRoute(r, route_json, route_path));
      // A route only ever names stored versions: promote checks, remove refuses or prunes.
      const auto stored = state.versions.find(model);
      std::vector<std::string> named = LoadedVersions(route);
      named.insert(named.end(), route.previous.begin(), route.previous.end());
      for (const auto& v : named) {
        if (stored == state.versions.end() || !stored->second.contains(v)) {
          return r.Problem(route_path, "version " + Q(v) + " is not stored");
        }
      }
      out.models.emplace(model, std::move(route));
    }
  }
  return {};
}

// ---- History lines -----------------------------------------------------------------------

bool IsRouteAction(std::string_view a) {
  return a == "promote" || a == "finalize" || a == "rollback";
}

Result<HistoryEntry> ParseHistoryJson(const Reader& r, const Json& root) {
  if (!root.is_object()) return r.Bad("", "an object", &root);
  DLSYS_TRY(r.OnlyKeys(root, "", {"action", "digest", "env", "from", "host", "model", "prev",
                                  "reason", "seq", "strategy", "time", "to", "user", "version"}));
  HistoryEntry e;
  DLSYS_ASSIGN_OR_RETURN(const std::int64_t seq, r.Int(root, "", "seq", true, 1,
                                                       core::kMaxSafeInteger));
  e.seq = static_cast<std::uint64_t>(seq);
  DLSYS_ASSIGN_OR_RETURN(e.time, r.String(root, "", "time", true, 64));
  if (!IsUtcTime(e.time, true)) {
    return r.Bad("time", "a UTC time YYYY-MM-DDTHH:MM:SS.ffffffZ", Find(root, "time"));
  }
  DLSYS_ASSIGN_OR_RETURN(e.user, r.String(root, "", "user", true, kMaxUserBytes));
  if (!IsPrincipal(e.user, kMaxUserBytes)) return r.Bad("user", "a user name", Find(root, "user"));
  DLSYS_ASSIGN_OR_RETURN(e.host, r.String(root, "", "host", true, kMaxHostBytes));
  if (!IsPrincipal(e.host, kMaxHostBytes)) return r.Bad("host", "a host name", Find(root, "host"));
  DLSYS_ASSIGN_OR_RETURN(e.action, r.String(root, "", "action", true, 16));
  const bool route_action = IsRouteAction(e.action);
  if (!route_action && e.action != "push" && e.action != "remove") {
    return r.Bad("action", "push, remove, promote, finalize or rollback", Find(root, "action"));
  }
  DLSYS_ASSIGN_OR_RETURN(e.model, r.String(root, "", "model", true, manifest::kMaxNameBytes));
  if (!IsModelName(e.model)) return r.Bad("model", "a model name", Find(root, "model"));
  DLSYS_ASSIGN_OR_RETURN(e.version, Version(r, root, "", "version"));
  DLSYS_ASSIGN_OR_RETURN(e.env, r.String(root, "", "env", true, 63));
  DLSYS_ASSIGN_OR_RETURN(e.strategy, r.String(root, "", "strategy", true, 16));
  DLSYS_ASSIGN_OR_RETURN(e.reason, r.String(root, "", "reason", true, kMaxReasonBytes));
  if (!IsPlainText(e.reason, kMaxReasonBytes)) {
    return r.Bad("reason", "text without control characters", Find(root, "reason"));
  }
  DLSYS_ASSIGN_OR_RETURN(e.digest, r.String(root, "", "digest", true, 80));
  DLSYS_ASSIGN_OR_RETURN(e.prev, r.String(root, "", "prev", true, 64));
  if (!IsLowerHex(e.prev, 64)) {
    return r.Bad("prev", "64 lower-case hex digits", Find(root, "prev"));
  }
  if (route_action) {
    if (!IsEnvironmentName(e.env)) return r.Bad("env", "an environment name", Find(root, "env"));
    if (!e.digest.empty()) return r.Bad("digest", "\"\" for " + e.action, Find(root, "digest"));
    if (const Json* from = Find(root, "from")) {
      DLSYS_ASSIGN_OR_RETURN(e.from, ParseRoute(r, *from, "from"));
    }
    const Json* to = Find(root, "to");
    if (to == nullptr) return r.Bad("to", "the route after the change", to);
    DLSYS_ASSIGN_OR_RETURN(e.to, ParseRoute(r, *to, "to"));
    if (e.strategy != StrategyName(e.to->strategy)) {
      return r.Bad("strategy", std::string("\"") + StrategyName(e.to->strategy) + "\" as in 'to'",
                   Find(root, "strategy"));
    }
  } else {
    if (!e.env.empty()) return r.Bad("env", "\"\" for " + e.action, Find(root, "env"));
    if (!e.strategy.empty()) {
      return r.Bad("strategy", "\"\" for " + e.action, Find(root, "strategy"));
    }
    if (Find(root, "from") != nullptr || Find(root, "to") != nullptr) {
      return r.Problem("", "'from' and 'to' are only for promote, finalize and rollback");
    }
    if (!IsDigest(e.digest)) {
      return r.Bad("digest", "\"sha256:\" and 64 lower-case hex digits", Find(root, "digest"));
    }
  }
  return e;
}

}  // namespace internal

using namespace internal;  // NOLINT: this file is the home of internal's definitions

// ---- Public helpers ----------------------------------------------------------------------

Result<std::string> DefaultRegistryDir() {
  if (const char* env = std::getenv("DLSYS_REGISTRY"); env != nullptr && *env != '\0') {
    return std::string(env);
  }
  // The XDG spec ignores a relative XDG_DATA_HOME.
  if (const char* xdg = std::getenv("XDG_DATA_HOME"); xdg != nullptr && xdg[0] == '/') {
    return std::string(xdg) + "/dlsys/registry";
  }
  if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
    return std::string(home) + "/.local/share/dlsys/registry";
  }
  return Fail(Code::kUsage,
              "no registry directory: pass --registry DIR or set DLSYS_REGISTRY (HOME is not set)");
}

const char* StrategyName(Strategy s) {
  switch (s) {
    case Strategy::kReplace:
      return "replace";
    case Strategy::kCanary:
      return "canary";
    case Strategy::kAb:
      return "ab";
    case Strategy::kShadow:
      return "shadow";
    case Strategy::kBlueGreen:
      return "blue-green";
  }
  return "replace";
}

Result<Strategy> ParseStrategy(std::string_view text) {
  for (Strategy s : {Strategy::kReplace, Strategy::kCanary, Strategy::kAb, Strategy::kShadow,
                     Strategy::kBlueGreen}) {
    if (text == StrategyName(s)) return s;
  }
  return Fail(Code::kUsage, "unknown strategy " + Q(text) +
                                ": use replace, canary, ab, shadow or blue-green");
}

std::vector<std::string> LoadedVersions(const Route& r) {
  std::vector<std::string> out{r.stable};
  if (!r.candidate.empty()) out.push_back(r.candidate);
  if (!r.standby.empty()) out.push_back(r.standby);
  return out;
}

Result<void> CheckEnvironmentName(std::string_view env) {
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  const bool ok = !env.empty() && env.size() <= 63 && alnum(env.front()) && alnum(env.back()) &&
                  std::all_of(env.begin(), env.end(), [&](char c) { return alnum(c) || c == '-'; });
  if (!ok) {
    return Fail(Code::kUsage, "environment name " + Q(env) +
                                  " is not valid: use 1-63 characters of a-z 0-9 -, starting "
                                  "and ending with a letter or digit");
  }
  return {};
}

Result<State> ParseState(std::string_view json, const std::string& display) {
  if (json.size() > kMaxStateBytes) {
    return Fail(Code::kInvalid, display + ": larger than the limit of " +
                                    std::to_string(kMaxStateBytes) + " bytes");
  }
  // Every JSON value takes at least one byte and a separator.
  DLSYS_ASSIGN_OR_RETURN(Json root,
                         core::ParseJson(json, {kMaxStateBytes, 16, kMaxStateBytes / 2}, display));
  const Reader r(display);
  if (!root.is_object()) return r.Bad("", "an object", &root);
  DLSYS_TRY(r.ExactKeys(root, "", {"environments", "format_version", "generation",
                                   "history_bytes", "history_entries", "versions"}));
  DLSYS_TRY(r.Int(root, "", "format_version", true, 1, 1));
  State state;
  DLSYS_ASSIGN_OR_RETURN(const auto generation,
                         r.Int(root, "", "generation", true, 0, core::kMaxSafeInteger));
  DLSYS_ASSIGN_OR_RETURN(const auto entries,
                         r.Int(root, "", "history_entries", true, 0, core::kMaxSafeInteger));
  DLSYS_ASSIGN_OR_RETURN(const auto bytes,
                         r.Int(root, "", "history_bytes", true, 0, core::kMaxSafeInteger));
  state.generation = static_cast<std::uint64_t>(generation);
  state.history_entries = static_cast<std::uint64_t>(entries);
  state.history_bytes = static_cast<std::uint64_t>(bytes);
  if ((state.history_entries == 0) != (state.history_bytes == 0) ||
      state.history_bytes > state.history_entries * (kMaxHistoryLineBytes + 1)) {
    return r.Problem("history_bytes", "does not fit history_entries");
  }
  DLSYS_TRY(ParseVersions(r, root, state));
  DLSYS_TRY(ParseEnvironments(r, root, state));
  DLSYS_TRY(RequireCanonical(r, root, json));
  return state;
}

std::string SerializeState(const State& state) {
  Json versions = Json::object();
  for (const auto& [model, by_version] : state.versions) {
    Json m = Json::object();
    for (const auto& [version, record] : by_version) m[version] = RecordJson(record);
    versions[model] = std::move(m);
  }
  Json envs = Json::object();
  for (const auto& [env, body] : state.environments) {
    Json models = Json::object();
    for (const auto& [model, route] : body.models) models[model] = RouteJson(route);
    envs[env] = Json{{"models", std::move(models)}};
  }
  const Json root{{"environments", std::move(envs)},
                  {"format_version", 1},
                  {"generation", state.generation},
                  {"history_bytes", state.history_bytes},
                  {"history_entries", state.history_entries},
                  {"versions", std::move(versions)}};
  auto text = core::CanonicalJson(root);
  // Only strings that are not UTF-8 fail, and every string was validated before it got here.
  return text ? *std::move(text) : std::string();
}

Result<HistoryEntry> ParseHistoryLine(std::string_view line, const std::string& display) {
  if (line.size() > kMaxHistoryLineBytes) {
    return Fail(Code::kInvalid, display + ": longer than the limit of " +
                                    std::to_string(kMaxHistoryLineBytes) + " bytes");
  }
  DLSYS_ASSIGN_OR_RETURN(Json root, core::ParseJson(line, {kMaxHistoryLineBytes, 16, 10000},
                                                    display));
  const Reader r(display);
  DLSYS_ASSIGN_OR_RETURN(HistoryEntry e, ParseHistoryJson(r, root));
  DLSYS_TRY(RequireCanonical(r, root, line));
  return e;
}

std::string SerializeHistoryEntry(const HistoryEntry& e) {
  Json j{{"action", e.action}, {"digest", e.digest},     {"env", e.env},
         {"host", e.host},     {"model", e.model},       {"prev", e.prev},
         {"reason", e.reason}, {"seq", e.seq},           {"strategy", e.strategy},
         {"time", e.time},     {"user", e.user},         {"version", e.version}};
  if (e.from) j["from"] = RouteJson(*e.from);
  if (e.to) j["to"] = RouteJson(*e.to);
  auto text = core::CanonicalJson(j);
  return text ? *std::move(text) : std::string();
}

}  // namespace dlsys::deploy
