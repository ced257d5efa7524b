#include "deploy/registry.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

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
#include "core/file.h"
#include "core/internal/json.h"
#include "core/test_hook.h"
#include "core/text.h"
#include "core/utf8.h"
#include "manifest/internal/json_read.h"
#include "manifest/manifest.h"

namespace dlsys::deploy {
namespace {

using Json = nlohmann::json;
using manifest::internal::Find;
using manifest::internal::Join;
using manifest::internal::Reader;

constexpr const char* kStateName = "registry.json";
constexpr const char* kHistoryName = "history.jsonl";
constexpr const char* kLockName = "lock";
constexpr const char* kBlobSubdir = "blobs/sha256";
constexpr std::string_view kDigestPrefix = "sha256:";
constexpr std::string_view kTempBlobPrefix = ".tmp-";
constexpr std::size_t kCopyChunkBytes = std::size_t{1} << 20;
const std::string kZeroHash(64, '0');

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
constexpr std::size_t kMaxUserBytes = LOGIN_NAME_MAX;
constexpr std::size_t kMaxHostBytes = HOST_NAME_MAX;

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

// ---- SHA-256 -----------------------------------------------------------------------------

struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
using MdCtx = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;

Result<MdCtx> NewSha256() {
  MdCtx ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    return Fail(Code::kInternal, "cannot start a SHA-256 digest (OpenSSL)");
  }
  return ctx;
}

Result<std::string> FinishHex(EVP_MD_CTX* ctx) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx, md, &len) != 1) {
    return Fail(Code::kInternal, "cannot finish a SHA-256 digest (OpenSSL)");
  }
  return core::HexEncode(std::as_bytes(std::span(md, len)));
}

Result<std::string> Sha256Hex(std::string_view data) {
  DLSYS_ASSIGN_OR_RETURN(MdCtx ctx, NewSha256());
  if (EVP_DigestUpdate(ctx.get(), data.data(), data.size()) != 1) {
    return Fail(Code::kInternal, "cannot update a SHA-256 digest (OpenSSL)");
  }
  return FinishHex(ctx.get());
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

// ---- Files and the lock ------------------------------------------------------------------

std::string ErrnoText() { return core::ErrnoMessage(errno); }

Result<void> SyncDir(const std::string& dir) {
  core::UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd || ::fsync(fd.get()) != 0) {
    return Fail(Code::kInternal, "cannot flush directory '" + dir + "': " + ErrnoText());
  }
  return {};
}

Result<void> MakeDirs(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Fail(Code::kInternal, "cannot create '" + dir + "': " + ec.message());
  return {};
}

// An exclusive flock(2) on DIR/lock, released when this is destroyed (or the process dies).
class DirLock {
 public:
  static Result<DirLock> Acquire(const std::string& dir) {
    const std::string path = dir + "/" + kLockName;
    // O_NONBLOCK|O_NOFOLLOW: a FIFO or symbolic link planted at the path neither blocks nor
    // redirects the open.
    core::UniqueFd fd(
        ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0644));
    if (!fd) return Fail(Code::kInternal, "cannot open the lock '" + path + "': " + ErrnoText());
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
      return Fail(Code::kInvalid, "the lock '" + path + "' is not a regular file");
    }
    // Waiting is right: another deploy command holds the lock for one short change.
    while (::flock(fd.get(), LOCK_EX) != 0) {
      if (errno != EINTR) {
        return Fail(Code::kInternal, "cannot lock '" + path + "': " + ErrnoText());
      }
    }
    return DirLock(std::move(fd));
  }

 private:
  explicit DirLock(core::UniqueFd fd) : fd_(std::move(fd)) {}
  core::UniqueFd fd_;
};

// The temporary copy of an archive being pushed: DIR/blobs/sha256/.tmp-XXXXXX, flock'ed by
// its owner for its whole life (so a sweep never removes a live push's copy) and unlinked on
// destruction unless it was renamed to its blob name.
class TempBlob {
 public:
  static Result<TempBlob> Create(const std::string& blob_dir) {
    std::string path = blob_dir + "/" + std::string(kTempBlobPrefix) + "XXXXXX";
    const int fd = ::mkostemp(path.data(), O_CLOEXEC);
    if (fd < 0) {
      return Fail(Code::kInternal, "cannot create a file in '" + blob_dir + "': " + ErrnoText());
    }
    TempBlob t(core::UniqueFd(fd), std::move(path));
    if (::flock(t.fd_.get(), LOCK_EX) != 0) {
      return Fail(Code::kInternal, "cannot lock '" + t.path_ + "': " + ErrnoText());
    }
    return t;
  }
  TempBlob(TempBlob&& o) noexcept : fd_(std::move(o.fd_)), path_(std::exchange(o.path_, "")) {}
  TempBlob& operator=(TempBlob&&) = delete;
  ~TempBlob() {
    if (!path_.empty()) ::unlink(path_.c_str());
  }
  int fd() const { return fd_.get(); }
  const std::string& path() const { return path_; }
  // Renames the file to `target` and forgets it.
  [[nodiscard]] Result<void> RenameTo(const std::string& target) {
    if (::rename(path_.c_str(), target.c_str()) != 0) {
      return Fail(Code::kInternal, "cannot store '" + target + "': " + ErrnoText());
    }
    path_.clear();
    return {};
  }

 private:
  TempBlob(core::UniqueFd fd, std::string path) : fd_(std::move(fd)), path_(std::move(path)) {}
  core::UniqueFd fd_;
  std::string path_;
};

std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> names;
  std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir.c_str()), ::closedir);
  if (!d) return names;
  while (const dirent* e = ::readdir(d.get())) {
    const std::string_view name(e->d_name);
    if (name != "." && name != "..") names.emplace_back(name);
  }
  return names;
}

// A temporary blob is made and flock'ed under the registry lock (Push) and keeps its flock
// until its owner ends, so under the lock a copy whose flock can be taken is a dead push's.
bool IsDeadTemp(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
  core::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  // A live push holds its copy's flock: only a dead one's can be taken.
  return fd && ::flock(fd.get(), LOCK_EX | LOCK_NB) == 0;
}

// Under the lock: removes what a change that died left behind. Only changes make these files
// and they hold the lock, so any found now is dead, except a temporary blob being copied and
// verified by a live push outside the lock (kept: its owner holds its flock).
void SweepJunk(const std::string& dir, const State& state) {
  const std::string state_temp_prefix = std::string(".") + kStateName + ".";
  for (const auto& name : ListDir(dir)) {
    if (name.starts_with(state_temp_prefix)) ::unlink((dir + "/" + name).c_str());
  }
  std::set<std::string> referenced;
  for (const auto& [model, versions] : state.versions) {
    for (const auto& [version, record] : versions) {
      referenced.insert(record.digest.substr(kDigestPrefix.size()));
    }
  }
  const std::string blob_dir = dir + "/" + kBlobSubdir;
  for (const auto& name : ListDir(blob_dir)) {
    const std::string path = blob_dir + "/" + name;
    if (name.starts_with(kTempBlobPrefix)) {
      if (IsDeadTemp(path)) ::unlink(path.c_str());
    } else if (IsLowerHex(name, 64) && !referenced.contains(name)) {
      ::unlink(path.c_str());  // stored by a push that died before its commit, or removed
    }
  }
}

struct Principal {
  std::string user;
  std::string host;
};

Principal CurrentPrincipal() {
  Principal p;
  if (const passwd* pw = ::getpwuid(::geteuid()); pw != nullptr && pw->pw_name != nullptr) {
    p.user = pw->pw_name;
  }
  if (!IsPrincipal(p.user, kMaxUserBytes)) p.user = std::to_string(::geteuid());
  char host[HOST_NAME_MAX + 1] = {};
  if (::gethostname(host, sizeof(host) - 1) == 0) p.host = host;
  if (!IsPrincipal(p.host, kMaxHostBytes)) p.host = "localhost";
  return p;
}

std::string RouteWhere(std::string_view model, std::string_view env) {
  return "model " + Q(model) + " in environment " + Q(env);
}

// ---- Route transitions (pure) ------------------------------------------------------------

void PushPrevious(Route& r, const std::string& version) {
  r.previous.push_back(version);
  if (r.previous.size() > kMaxPrevious) {
    r.previous.erase(r.previous.begin(), r.previous.end() - kMaxPrevious);
  }
}

Route Settled(std::string stable, std::vector<std::string> previous) {
  Route out;
  out.strategy = Strategy::kReplace;
  out.stable = std::move(stable);
  out.previous = std::move(previous);
  return out;
}

tl::unexpected<Error> InFlight(const Route& r, const std::string& where) {
  if (!r.standby.empty()) {
    return Fail(Code::kUsage, where + " keeps " + Q(r.standby) +
                                  " on standby (blue-green): run dlsys deploy finalize to "
                                  "release it or dlsys deploy rollback to return to it first");
  }
  return Fail(Code::kUsage, where + " is rolling out " + Q(r.candidate) + " (" +
                                StrategyName(r.strategy) +
                                "): run dlsys deploy finalize to make it stable or dlsys deploy "
                                "rollback to drop it first");
}

Result<void> CheckPromoteFlags(const PromoteRequest& q) {
  auto bad = [](const char* flag, const char* applies) {
    return Fail(Code::kUsage, std::string(flag) + " applies to " + applies + " only");
  };
  const Strategy s = q.strategy;
  if (q.weight && s != Strategy::kCanary && s != Strategy::kAb) {
    return bad("--weight", "--strategy canary and ab");
  }
  if (q.step && s != Strategy::kCanary) return bad("--step", "--strategy canary");
  if (!q.key.empty() && s != Strategy::kAb) return bad("--key", "--strategy ab");
  if (q.sample && s != Strategy::kShadow) return bad("--sample", "--strategy shadow");
  if (q.weight && !(std::isfinite(*q.weight) && *q.weight > 0 && *q.weight <= 100)) {
    return Fail(Code::kUsage, "--weight must be a percentage greater than 0 and at most 100");
  }
  if (q.step && !(std::isfinite(*q.step) && *q.step > 0 && *q.step <= 100)) {
    return Fail(Code::kUsage, "--step must be a percentage greater than 0 and at most 100");
  }
  if (q.sample && !(std::isfinite(*q.sample) && *q.sample > 0 && *q.sample <= 1)) {
    return Fail(Code::kUsage, "--sample must be a fraction greater than 0 and at most 1");
  }
  if (s == Strategy::kCanary && q.weight.has_value() == q.step.has_value()) {
    return Fail(Code::kUsage,
                "--strategy canary needs either --weight PERCENT (start or set the canary) or "
                "--step PERCENT (raise the current canary's weight)");
  }
  if (s == Strategy::kAb && (!q.weight || q.key.empty())) {
    return Fail(Code::kUsage,
                "--strategy ab needs --key HEADER (the request header whose value picks the "
                "arm) and --weight PERCENT");
  }
  if (!q.key.empty() && !IsHeaderToken(q.key)) {
    return Fail(Code::kUsage, "--key " + Q(q.key) + " is not an HTTP header name");
  }
  return {};
}

Result<Route> PromotedRoute(const std::optional<Route>& current, const PromoteRequest& q) {
  const std::string where = RouteWhere(q.model, q.env);
  const std::string& v = q.version;
  if (!current) {
    if (q.strategy == Strategy::kReplace || q.strategy == Strategy::kBlueGreen) {
      return Settled(v, {});
    }
    return Fail(Code::kUsage, where + " has nothing to compare with: promote a first version "
                                      "with --strategy replace");
  }
  Route r = *current;
  const bool in_flight = !r.candidate.empty() || !r.standby.empty();
  if (r.stable == v) {
    return Fail(Code::kUsage, "version " + Q(v) + " is already stable for " + where);
  }
  // Re-promoting the candidate under its own strategy adjusts its parameters.
  const bool same_rollout = r.strategy == q.strategy && r.candidate == v;
  switch (q.strategy) {
    case Strategy::kReplace:
      if (in_flight) return InFlight(r, where);
      PushPrevious(r, r.stable);
      return Settled(v, r.previous);
    case Strategy::kBlueGreen: {
      if (in_flight) return InFlight(r, where);
      Route out = Settled(v, r.previous);
      PushPrevious(out, r.stable);
      out.strategy = Strategy::kBlueGreen;
      out.standby = r.stable;
      return out;
    }
    case Strategy::kCanary:
      if (q.step) {
        if (!same_rollout) {
          return Fail(Code::kUsage, "--step raises the weight of the current canary, and " +
                                        Q(v) + " is not the canary of " + where +
                                        (r.candidate.empty() ? std::string(" (none)")
                                                             : " (it is " + Q(r.candidate) + ")") +
                                        ": start one with --weight");
        }
        r.weight = std::min(100.0, r.weight + *q.step);
        return r;
      }
      if (in_flight && !same_rollout) return InFlight(r, where);
      r.strategy = Strategy::kCanary;
      r.candidate = v;
      r.weight = *q.weight;
      return r;
    case Strategy::kAb:
      if (in_flight && !same_rollout) return InFlight(r, where);
      r.strategy = Strategy::kAb;
      r.candidate = v;
      r.weight = *q.weight;
      r.key = Lower(q.key);
      return r;
    case Strategy::kShadow:
      if (in_flight && !same_rollout) return InFlight(r, where);
      r.strategy = Strategy::kShadow;
      r.candidate = v;
      r.sample = q.sample.value_or(1.0);
      return r;
  }
  return Fail(Code::kInternal, "unknown strategy");
}

Result<Route> FinalizedRoute(const Route& r, const std::string& where) {
  switch (r.strategy) {
    case Strategy::kCanary:
    case Strategy::kAb:
    case Strategy::kShadow: {
      Route out = Settled(r.candidate, r.previous);
      PushPrevious(out, r.stable);
      return out;
    }
    case Strategy::kBlueGreen:
      return Settled(r.stable, r.previous);
    case Strategy::kReplace:
      break;
  }
  return Fail(Code::kUsage, "nothing to finalize: " + where + " has no rollout in flight (" +
                                Q(r.stable) + " takes all traffic)");
}

Result<Route> RolledBackRoute(const Route& r, const std::string& where) {
  if (!r.candidate.empty()) return Settled(r.stable, r.previous);
  if (r.previous.empty()) {
    return Fail(Code::kUsage, "nothing to roll back to: " + where + " has only " + Q(r.stable) +
                                  " and no earlier stable version");
  }
  // Blue-green: the standby is the newest previous version, so both cases pop it.
  std::vector<std::string> previous = r.previous;
  std::string target = previous.back();
  previous.pop_back();
  return Settled(std::move(target), std::move(previous));
}

}  // namespace

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

// ---- Registry ----------------------------------------------------------------------------

namespace {

// One change in progress: the lock, the committed state it starts from, and the history
// file cut back to that state's committed bytes.
struct Change {
  DirLock lock;
  State state;
  core::UniqueFd history;
  std::string last_line_hash;  // of the last committed line, or 64 zeros
};

std::string HistoryPath(const std::string& dir) { return dir + "/" + kHistoryName; }

// The hash of the last committed line, read from the tail (a line is at most
// kMaxHistoryLineBytes, so the tail window holds it and the newline before it).
Result<std::string> LastLineHash(int fd, std::uint64_t committed, const std::string& display) {
  if (committed == 0) return kZeroHash;
  const std::uint64_t window = std::min<std::uint64_t>(committed, kMaxHistoryLineBytes + 2);
  std::string tail(window, '\0');
  DLSYS_TRY(core::ReadAt(fd, committed - window, std::as_writable_bytes(std::span(tail)), display));
  if (tail.back() != '\n') {
    return Fail(Code::kInvalid, display + ": the committed history does not end with a newline");
  }
  const auto start = tail.rfind('\n', tail.size() - 2);
  if (start == std::string::npos && window < committed) {
    return Fail(Code::kInvalid, display + ": the last committed line is longer than " +
                                    std::to_string(kMaxHistoryLineBytes) + " bytes");
  }
  const std::size_t from = start == std::string::npos ? 0 : start + 1;
  return Sha256Hex(std::string_view(tail).substr(from, tail.size() - 1 - from));
}

Result<Change> BeginChange(const Registry& reg) {
  DLSYS_ASSIGN_OR_RETURN(DirLock lock, DirLock::Acquire(reg.dir()));
  DLSYS_ASSIGN_OR_RETURN(State state, reg.Read());
  const std::string path = HistoryPath(reg.dir());
  core::UniqueFd fd(::open(path.c_str(),
                           O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK,
                           0644));
  if (!fd) return Fail(Code::kInternal, "cannot open '" + path + "': " + ErrnoText());
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return Fail(Code::kInvalid, "'" + path + "' is not a regular file");
  }
  const auto size = static_cast<std::uint64_t>(st.st_size);
  if (size < state.history_bytes) {
    return Fail(Code::kInvalid, "'" + path + "' has " + std::to_string(size) +
                                    " bytes but registry.json records " +
                                    std::to_string(state.history_bytes) +
                                    " committed bytes: the history was cut");
  }
  // A line past the committed bytes belongs to a change that died before its commit.
  if (size > state.history_bytes) {
    if (::ftruncate(fd.get(), static_cast<off_t>(state.history_bytes)) != 0 ||
        ::fdatasync(fd.get()) != 0) {
      return Fail(Code::kInternal, "cannot cut '" + path + "' back: " + ErrnoText());
    }
  }
  DLSYS_ASSIGN_OR_RETURN(std::string last, LastLineHash(fd.get(), state.history_bytes, path));
  SweepJunk(reg.dir(), state);
  return Change{std::move(lock), std::move(state), std::move(fd), std::move(last)};
}

// Appends the change's history line, then commits `next` as registry.json (the commit point).
Result<void> CommitChange(const Registry& reg, Change& change, HistoryEntry entry, State next) {
  const Principal who = CurrentPrincipal();
  entry.seq = change.state.history_entries + 1;
  entry.time = FormatUtc(std::chrono::system_clock::now(), true);
  entry.user = who.user;
  entry.host = who.host;
  entry.prev = change.last_line_hash;
  const std::string line = SerializeHistoryEntry(entry);
  const std::string history_path = HistoryPath(reg.dir());
  // What is written must read back: never commit a line History() would refuse.
  DLSYS_TRY(ParseHistoryLine(line, history_path + " (new line)"));
  const std::string record = line + "\n";

  // The new state is built and checked before anything is written.
  next.generation = change.state.generation + 1;
  next.history_entries = change.state.history_entries + 1;
  next.history_bytes = change.state.history_bytes + record.size();
  const std::string text = SerializeState(next);
  if (text.size() > kMaxStateBytes) {
    return Fail(Code::kUsage, "registry.json would exceed " + std::to_string(kMaxStateBytes) +
                                  " bytes: remove old versions first");
  }
  DLSYS_TRY(ParseState(text, reg.StatePath() + " (new state)"));

  // One write(2) of the whole line, so the file never holds part of a line of a live change.
  const ssize_t n = ::write(change.history.get(), record.data(), record.size());
  if (n != static_cast<ssize_t>(record.size()) || ::fdatasync(change.history.get()) != 0) {
    const std::string why = n < 0 ? ErrnoText() : "short write";
    [[maybe_unused]] const int ignored =
        ::ftruncate(change.history.get(), static_cast<off_t>(change.state.history_bytes));
    return Fail(Code::kInternal, "cannot append to '" + history_path + "': " + why);
  }
  core::CrashPoint("deploy-history-appended");

  DLSYS_ASSIGN_OR_RETURN(core::AtomicFile file, core::AtomicFile::Create(reg.StatePath(), true));
  DLSYS_TRY(file.Write(text));
  core::CrashPoint("deploy-state-written");
  DLSYS_TRY(file.Commit());
  core::CrashPoint("deploy-committed");
  change.state = std::move(next);
  return {};
}

Result<Route*> FindRoute(State& state, const std::string& model, const std::string& env) {
  const auto e = state.environments.find(env);
  if (e != state.environments.end()) {
    const auto m = e->second.models.find(model);
    if (m != e->second.models.end()) return &m->second;
  }
  return Fail(Code::kNotFound, RouteWhere(model, env) +
                                   " has no route: promote a version there first");
}

// Copies the archive into `temp` (in the kernel with copy_file_range where the file systems
// allow, else read/write); returns the number of bytes copied.
Result<std::uint64_t> CopyInto(const core::UniqueFd& in, const std::string& source,
                               const TempBlob& temp, const package::ProgressFn& progress) {
  struct stat st {};
  const std::uint64_t total =
      ::fstat(in.get(), &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
  std::uint64_t done = 0;
  bool in_kernel = true;
  std::vector<char> buf;
  for (;;) {
    ssize_t n = -1;
    if (in_kernel) {
      n = ::copy_file_range(in.get(), nullptr, temp.fd(), nullptr, kCopyChunkBytes * 8, 0);
      if (n < 0 && done == 0 &&
          (errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP)) {
        in_kernel = false;
        continue;
      }
    } else {
      if (buf.empty()) buf.resize(kCopyChunkBytes);
      n = ::read(in.get(), buf.data(), buf.size());
      for (ssize_t off = 0; n > 0 && off < n;) {
        const ssize_t w = ::write(temp.fd(), buf.data() + off, static_cast<std::size_t>(n - off));
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) {
          return Fail(Code::kInternal, "cannot write '" + temp.path() + "': " + ErrnoText());
        }
        off += w;
      }
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      return Fail(Code::kInvalid, "cannot read '" + source + "': " + ErrnoText());
    }
    if (n == 0) break;
    done += static_cast<std::uint64_t>(n);
    if (progress) progress({"copying", done, std::max(done, total)});
  }
  return done;
}

// The SHA-256 (hex) of the first `size` bytes of the copy, which is then flushed to disk.
Result<std::string> HashAndFlush(const TempBlob& temp, std::uint64_t size) {
  // Start writing the copy back to disk now, so the flush at the end finds most of it done.
  [[maybe_unused]] const int started = ::sync_file_range(temp.fd(), 0, 0, SYNC_FILE_RANGE_WRITE);
  DLSYS_ASSIGN_OR_RETURN(MdCtx ctx, NewSha256());
  std::vector<std::byte> buf(kCopyChunkBytes);
  for (std::uint64_t offset = 0; offset < size;) {
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), size - offset));
    DLSYS_TRY(core::ReadAt(temp.fd(), offset, std::span(buf.data(), n), temp.path()));
    if (EVP_DigestUpdate(ctx.get(), buf.data(), n) != 1) {
      return Fail(Code::kInternal, "cannot update a SHA-256 digest (OpenSSL)");
    }
    offset += n;
  }
  if (::fdatasync(temp.fd()) != 0) {
    return Fail(Code::kInternal, "cannot flush '" + temp.path() + "': " + ErrnoText());
  }
  return FinishHex(ctx.get());
}

// The checks ran on the registry's private copy: messages name the user's file instead.
tl::unexpected<Error> VerifyFailure(const std::string& source, const std::string& copy,
                                    const package::VerifyReport& report) {
  auto as_source = [&](std::string text) {
    for (std::size_t at = text.find(copy); at != std::string::npos;
         at = text.find(copy, at + source.size())) {
      text.replace(at, copy.size(), source);
    }
    return text;
  };
  std::vector<std::string> details;
  for (const auto& c : report.checks) {
    if (c.status != Status::kFail) continue;
    details.push_back(as_source(c.check + (c.subject.empty() ? "" : " " + c.subject) + ": " +
                                c.message));
  }
  const std::size_t failed = details.size();
  return Fail(report.container_broken ? Code::kInvalid : Code::kVerifyFailed,
              "cannot push '" + source + "': it does not verify (" + std::to_string(failed) +
                  (failed == 1 ? " failed check" : " failed checks") +
                  "); run 'dlsys verify' on it for the full report",
              std::move(details));
}

}  // namespace

Result<Registry> Registry::Open(const std::string& dir, bool create) {
  if (dir.empty()) return Fail(Code::kUsage, "the registry directory is empty");
  if (create) {
    DLSYS_TRY(MakeDirs(dir + "/" + kBlobSubdir));
  }
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    return Fail(Code::kNotFound, "no registry at '" + dir +
                                     "': push an archive first, or name the registry with "
                                     "--registry DIR or DLSYS_REGISTRY");
  }
  if (!S_ISDIR(st.st_mode)) {
    return Fail(Code::kInvalid, "the registry '" + dir + "' is " + core::FileKindName(st.st_mode) +
                                    ", not a directory");
  }
  return Registry(dir);
}

std::string Registry::StatePath() const { return dir_ + "/" + kStateName; }

std::string Registry::BlobPath(std::string_view digest) const {
  if (digest.starts_with(kDigestPrefix)) digest.remove_prefix(kDigestPrefix.size());
  return dir_ + "/" + kBlobSubdir + "/" + std::string(digest);
}

Result<State> Registry::Read() const {
  auto text = core::ReadFile(StatePath(), kMaxStateBytes);
  if (!text) {
    if (text.error().code == Code::kNotFound) return State{};
    return tl::unexpected(std::move(text).error());
  }
  return ParseState(*text, StatePath());
}

Result<std::vector<HistoryEntry>> Registry::History(std::string_view model,
                                                    std::string_view env) const {
  DLSYS_ASSIGN_OR_RETURN(const State state, Read());
  std::vector<HistoryEntry> out;
  if (state.history_bytes == 0) return out;
  const std::string path = HistoryPath(dir_);
  auto fd = core::OpenRegularFile(path);
  if (!fd) {
    return Fail(Code::kInvalid, "'" + path + "' cannot be read (" + fd.error().message +
                                    ") but registry.json records " +
                                    std::to_string(state.history_entries) + " entries");
  }
  std::string prev_hash = kZeroHash;
  std::uint64_t seq = 0;
  std::string pending;  // the start of a line whose end is in the next chunk
  std::string chunk;
  for (std::uint64_t offset = 0; offset < state.history_bytes;) {
    const std::uint64_t n = std::min<std::uint64_t>(kCopyChunkBytes, state.history_bytes - offset);
    chunk.resize(n);
    DLSYS_TRY(core::ReadAt(fd->get(), offset, std::as_writable_bytes(std::span(chunk)), path));
    offset += n;
    std::size_t start = 0;
    for (std::size_t nl; (nl = chunk.find('\n', start)) != std::string::npos; start = nl + 1) {
      pending.append(chunk, start, nl - start);
      ++seq;
      const std::string display = path + " line " + std::to_string(seq);
      DLSYS_ASSIGN_OR_RETURN(HistoryEntry e, ParseHistoryLine(pending, display));
      if (e.seq != seq) {
        return Fail(Code::kInvalid, display + ": seq is " + std::to_string(e.seq) +
                                        ", expected " + std::to_string(seq) +
                                        " (the history was edited)");
      }
      if (e.prev != prev_hash) {
        return Fail(Code::kInvalid, display + ": the hash chain is broken (prev " + e.prev +
                                        ", the line before hashes to " + prev_hash +
                                        "): the history was edited");
      }
      DLSYS_ASSIGN_OR_RETURN(prev_hash, Sha256Hex(pending));
      pending.clear();
      if ((model.empty() || e.model == model) && (env.empty() || e.env == env)) {
        out.push_back(std::move(e));
      }
    }
    pending.append(chunk, start);
    if (pending.size() > kMaxHistoryLineBytes) {
      return Fail(Code::kInvalid, path + " line " + std::to_string(seq + 1) +
                                      ": longer than the limit of " +
                                      std::to_string(kMaxHistoryLineBytes) + " bytes");
    }
  }
  if (!pending.empty() || seq != state.history_entries) {
    return Fail(Code::kInvalid, "'" + path + "' holds " + std::to_string(seq) +
                                    " committed lines but registry.json records " +
                                    std::to_string(state.history_entries));
  }
  return out;
}

Result<PushResult> Registry::Push(const std::string& archive_path,
                                  const package::VerifyOptions& verify, const std::string& reason,
                                  const package::ProgressFn& progress) {
  DLSYS_TRY(CheckReason(reason));
  const std::string blob_dir = dir_ + "/" + kBlobSubdir;
  DLSYS_TRY(MakeDirs(blob_dir));
  // The source is opened once (a FIFO or directory is refused at once) and read once.
  DLSYS_ASSIGN_OR_RETURN(const core::UniqueFd source, core::OpenRegularFile(archive_path));
  // Copy and verify before taking the lock: both take as long as the archive is big, and
  // other changes need not wait for them.
  std::optional<TempBlob> temp_slot;
  {
    // Made and flock'ed under the registry lock, so a sweep (also under it) never finds a
    // live push's copy before its owner has locked it.
    DLSYS_ASSIGN_OR_RETURN(DirLock lock, DirLock::Acquire(dir_));
    DLSYS_ASSIGN_OR_RETURN(TempBlob made, TempBlob::Create(blob_dir));
    temp_slot.emplace(std::move(made));
  }
  TempBlob& temp = *temp_slot;
  std::optional<package::VerifyReport> report_slot;
  DLSYS_ASSIGN_OR_RETURN(const std::uint64_t size, CopyInto(source, archive_path, temp, progress));
  // The copy is what gets stored, so the copy is what is hashed and verified: both at once
  // (verify reads it through its own descriptor; both are served from the page cache).
  Result<std::string> digest = Fail(Code::kInternal, "not hashed");
  {
    std::jthread hasher([&] { digest = HashAndFlush(temp, size); });
    auto verified = package::Verify(temp.path(), verify);
    hasher.join();
    if (!verified) return tl::unexpected(std::move(verified.error()));
    DLSYS_TRY(digest);
    if (!verified->ok) return VerifyFailure(archive_path, temp.path(), *verified);
    report_slot.emplace(std::move(*verified));
  }
  core::CrashPoint("deploy-blob-written");
  const package::VerifyReport& report = *report_slot;
  const std::pair<std::string, std::uint64_t> copied{*digest, size};
  DLSYS_ASSIGN_OR_RETURN(const package::InspectResult head, package::Inspect(temp.path()));

  VersionRecord record;
  record.name = report.name;
  record.version = report.version;
  record.digest = std::string(kDigestPrefix) + copied.first;
  record.size = copied.second;
  record.compression = archive::CompressionName(head.compression);
  record.signer = report.key_id;
  record.created = head.manifest.created;
  record.pushed_at = FormatUtc(std::chrono::system_clock::now(), false);
  const Principal who = CurrentPrincipal();
  record.pushed_by = who.user + "@" + who.host;
  if (!IsModelName(record.name) || !IsVersion(record.version)) {
    return Fail(Code::kInvalid, "cannot push '" + archive_path + "': its manifest has no valid "
                                                                 "name and version");
  }

  DLSYS_ASSIGN_OR_RETURN(Change change, BeginChange(*this));
  const auto model = change.state.versions.find(record.name);
  if (model != change.state.versions.end()) {
    if (const auto it = model->second.find(record.version); it != model->second.end()) {
      if (it->second.digest == record.digest) return PushResult{it->second, false};
      return Fail(Code::kExists,
                  "model " + Q(record.name) + " version " + Q(record.version) +
                      " is already stored with digest " + it->second.digest +
                      "; this archive has digest " + record.digest +
                      ": stored versions never change, so pack this one as a new version");
    }
    if (model->second.size() >= kMaxVersionsPerModel) {
      return Fail(Code::kUsage, "model " + Q(record.name) + " already has " +
                                    std::to_string(kMaxVersionsPerModel) +
                                    " versions: remove old ones first");
    }
  }

  const std::string blob = BlobPath(record.digest);
  if (::fchmod(temp.fd(), 0444) != 0) {
    return Fail(Code::kInternal, "cannot set the mode of '" + temp.path() + "': " + ErrnoText());
  }
  struct stat st {};
  if (::lstat(blob.c_str(), &st) != 0) {
    DLSYS_TRY(temp.RenameTo(blob));
  }  // else the same bytes are already there: the temporary copy is dropped
  DLSYS_TRY(SyncDir(blob_dir));
  core::CrashPoint("deploy-blob-stored");

  State next = change.state;
  next.versions[record.name][record.version] = record;
  HistoryEntry entry;
  entry.action = "push";
  entry.model = record.name;
  entry.version = record.version;
  entry.reason = reason;
  entry.digest = record.digest;
  DLSYS_TRY(CommitChange(*this, change, std::move(entry), std::move(next)));
  return PushResult{record, true};
}

Result<VersionRecord> Registry::Remove(const std::string& model, const std::string& version,
                                       bool force, const std::string& reason) {
  DLSYS_TRY(CheckModelArg(model));
  DLSYS_TRY(CheckVersionArg(version));
  DLSYS_TRY(CheckReason(reason));
  DLSYS_ASSIGN_OR_RETURN(Change change, BeginChange(*this));
  State next = change.state;
  const auto by_model = next.versions.find(model);
  if (by_model == next.versions.end() || !by_model->second.contains(version)) {
    return Fail(Code::kNotFound,
                "model " + Q(model) + " version " + Q(version) + " is not in the registry");
  }
  const VersionRecord record = by_model->second.at(version);
  std::string routed, kept;
  for (auto& [env, body] : next.environments) {
    const auto it = body.models.find(model);
    if (it == body.models.end()) continue;
    const auto loaded = LoadedVersions(it->second);
    if (std::find(loaded.begin(), loaded.end(), version) != loaded.end()) {
      routed += (routed.empty() ? "" : ", ") + env;
    } else if (std::find(it->second.previous.begin(), it->second.previous.end(), version) !=
               it->second.previous.end()) {
      kept += (kept.empty() ? "" : ", ") + env;
      std::erase(it->second.previous, version);
    }
  }
  const std::string what = "model " + Q(model) + " version " + Q(version);
  if (!routed.empty()) {
    return Fail(Code::kUsage, "cannot remove " + what + ": environment(s) " + routed +
                                  " route traffic to it; promote another version or roll back "
                                  "there first");
  }
  if (!kept.empty() && !force) {
    return Fail(Code::kUsage, "cannot remove " + what + ": environment(s) " + kept +
                                  " keep it as a rollback target; pass --force to drop it from "
                                  "their rollback lists");
  }
  by_model->second.erase(version);
  if (by_model->second.empty()) next.versions.erase(by_model);
  HistoryEntry entry;
  entry.action = "remove";
  entry.model = model;
  entry.version = version;
  entry.reason = reason;
  entry.digest = record.digest;
  DLSYS_TRY(CommitChange(*this, change, std::move(entry), std::move(next)));
  // After the commit: a crash before this leaves an unreferenced blob the next change sweeps.
  const std::string blob = BlobPath(record.digest);
  if (::unlink(blob.c_str()) != 0 && errno != ENOENT) {
    return Fail(Code::kInternal, "removed " + what + " but cannot delete '" + blob +
                                     "': " + ErrnoText() + " (the next change retries)");
  }
  DLSYS_TRY(SyncDir(dir_ + "/" + kBlobSubdir));
  core::CrashPoint("deploy-blob-unlinked");
  return record;
}

Result<Route> Registry::Promote(const PromoteRequest& request) {
  DLSYS_TRY(CheckModelArg(request.model));
  DLSYS_TRY(CheckVersionArg(request.version));
  DLSYS_TRY(CheckEnvironmentName(request.env));
  DLSYS_TRY(CheckReason(request.reason));
  DLSYS_TRY(CheckPromoteFlags(request));
  DLSYS_ASSIGN_OR_RETURN(Change change, BeginChange(*this));
  const auto stored = change.state.versions.find(request.model);
  if (stored == change.state.versions.end() || !stored->second.contains(request.version)) {
    return Fail(Code::kNotFound, "model " + Q(request.model) + " version " + Q(request.version) +
                                     " is not in the registry: push it first");
  }
  State next = change.state;
  std::optional<Route> current;
  if (auto found = FindRoute(next, request.model, request.env)) current = **found;
  if (!next.environments.contains(request.env) &&
      next.environments.size() >= kMaxEnvironments) {
    return Fail(Code::kUsage, "the registry already has " + std::to_string(kMaxEnvironments) +
                                  " environments");
  }
  DLSYS_ASSIGN_OR_RETURN(Route route, PromotedRoute(current, request));
  next.environments[request.env].models[request.model] = route;
  HistoryEntry entry;
  entry.action = "promote";
  entry.model = request.model;
  entry.version = request.version;
  entry.env = request.env;
  entry.strategy = StrategyName(route.strategy);
  entry.from = current;
  entry.to = route;
  entry.reason = request.reason;
  DLSYS_TRY(CommitChange(*this, change, std::move(entry), std::move(next)));
  return route;
}

namespace {

// Finalize and Rollback: the same change around a different transition.
template <typename Transition>
Result<Route> ChangeRoute(Registry& reg, const char* action, const std::string& model,
                          const std::string& env, const std::string& reason,
                          Transition transition) {
  DLSYS_TRY(CheckModelArg(model));
  DLSYS_TRY(CheckEnvironmentName(env));
  DLSYS_TRY(CheckReason(reason));
  DLSYS_ASSIGN_OR_RETURN(Change change, BeginChange(reg));
  State next = change.state;
  DLSYS_ASSIGN_OR_RETURN(Route * slot, FindRoute(next, model, env));
  const Route before = *slot;
  DLSYS_ASSIGN_OR_RETURN(Route after, transition(before, RouteWhere(model, env)));
  *slot = after;
  HistoryEntry entry;
  entry.action = action;
  entry.model = model;
  entry.version = after.stable;
  entry.env = env;
  entry.strategy = StrategyName(after.strategy);
  entry.from = before;
  entry.to = after;
  entry.reason = reason;
  DLSYS_TRY(CommitChange(reg, change, std::move(entry), std::move(next)));
  return after;
}

}  // namespace

Result<Route> Registry::Finalize(const std::string& model, const std::string& env,
                                 const std::string& reason) {
  return ChangeRoute(*this, "finalize", model, env, reason, FinalizedRoute);
}

Result<Route> Registry::Rollback(const std::string& model, const std::string& env,
                                 const std::string& reason) {
  return ChangeRoute(*this, "rollback", model, env, reason, RolledBackRoute);
}

}  // namespace dlsys::deploy
