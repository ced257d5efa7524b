// dlsys deploy: a registry of verified archives (push, list, show, remove), their routes per
// environment (promote, finalize, rollback, status) and the audit history. The bookkeeping is
// lib/deploy/registry.h; this file parses options and renders. It never loads libtorch.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string_view>

#include "cli.h"
#include "core/encoding.h"
#include "core/text.h"
#include "deploy/registry.h"
#include "deploy_export.h"
#include "monitor_view.h"
#include "oci/oci.h"
#include "oci_cmd.h"
#include "package/package.h"

namespace dlsys::cli {
namespace deploy_cmd {

// Field order as written, so --json reads like the text output.
using Json = nlohmann::ordered_json;

// The deploy App's own option, shared by every subcommand.
struct Common {
  std::string registry;
};

struct PushOptions {
  std::vector<std::string> archives;
  std::vector<std::string> trust;
  bool allow_unsigned = false;
  std::string reason;
  bool json = false;
  oci_cmd::RemoteOptions remote;  // push ARCHIVE oci://...
};

struct ListOptions {
  std::string name;
  bool json = false;
};

struct ShowOptions {
  std::string ref;  // NAME or NAME@VERSION
  bool json = false;
};

struct RemoveOptions {
  std::string ref;  // NAME@VERSION
  bool force = false;
  std::string reason;
  bool json = false;
};

struct PromoteOptions {
  std::string model;
  std::string version;
  std::string env;
  std::string strategy = "replace";
  std::optional<double> weight;
  std::optional<double> step;
  std::string key;
  std::optional<double> sample;
  std::string reason;
  bool json = false;
};

// finalize and rollback.
struct EndOptions {
  std::string model;
  std::string env;
  std::string reason;
  bool json = false;
};

struct StatusOptions {
  std::string env;
  bool json = false;
};

struct HistoryOptions {
  std::string model;
  std::string env;
  unsigned limit = 0;  // 0: all
  bool json = false;
};

// ---- helpers -------------------------------------------------------------------------------

// Every --json output: ASCII only, malformed UTF-8 replaced, never throws.
std::string Dump(const Json& j) {
  return j.dump(2, ' ', /*ensure_ascii=*/true, Json::error_handler_t::replace) + "\n";
}

int Print(const std::string& out) {
  std::fwrite(out.data(), 1, out.size(), stdout);
  return kExitOk;
}

// A string from the registry as shown on a terminal: cut, then made terminal-safe.
std::string Shown(std::string_view s, std::size_t max_chars = 120) {
  return core::TerminalSafe(core::Truncate(s, max_chars));
}

// "sha256:" + 64 hex -> the first 12 hex digits.
std::string ShortDigest(std::string_view digest) {
  constexpr std::string_view kPrefix = "sha256:";
  if (digest.substr(0, kPrefix.size()) == kPrefix) digest.remove_prefix(kPrefix.size());
  return Shown(digest.substr(0, 12));
}

std::string ShortKey(std::string_view key_id) {
  return key_id.empty() ? "unsigned" : Shown(key_id.substr(0, 12));
}

// A percentage or fraction as people write it: 10, 12.5, 0.25.
std::string Number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

Result<deploy::Registry> OpenRegistry(const Common& common, bool create) {
  std::string dir = common.registry;
  if (dir.empty()) {
    DLSYS_ASSIGN_OR_RETURN(dir, deploy::DefaultRegistryDir());
  }
  return deploy::Registry::Open(dir, create);
}

// NAME@VERSION (version_required) or NAME[@VERSION].
Result<std::pair<std::string, std::string>> ParseRef(const std::string& ref,
                                                     bool version_required) {
  const auto at = ref.find('@');
  std::string name = ref.substr(0, at);
  std::string version = at == std::string::npos ? "" : ref.substr(at + 1);
  if (name.empty() || (at != std::string::npos && version.empty()) ||
      (version_required && version.empty())) {
    return Fail(Code::kUsage,
                "'" + ref + "' is not " + (version_required ? "NAME@VERSION" : "NAME[@VERSION]"),
                {"e.g. iris@1.2.0 (dlsys deploy list shows what is stored)"});
  }
  return std::make_pair(std::move(name), std::move(version));
}

// Versions of one model, lowest first in SemVer order (1.9.0 before 1.10.0).
std::vector<const deploy::VersionRecord*> SortedVersions(
    const std::map<std::string, deploy::VersionRecord>& versions) {
  std::vector<const deploy::VersionRecord*> out;
  for (const auto& [v, record] : versions) out.push_back(&record);
  std::sort(out.begin(), out.end(), [](const auto* a, const auto* b) {
    const int c = core::CompareSemver(a->version, b->version);
    return c != 0 ? c < 0 : a->version < b->version;
  });
  return out;
}

// The arm a route's candidate serves: canary and A/B candidates take a share of live traffic
// (the "canary" arm that monitor --compare reads), a shadow only sees copies.
const char* CandidateArm(deploy::Strategy s) {
  return s == deploy::Strategy::kShadow ? "shadow" : "canary";
}

// What stable would be after `deploy rollback`: during a rollout the candidate is dropped
// (stable stays); otherwise the newest earlier stable. "" when there is nothing to go back to.
std::string RollbackTo(const deploy::Route& r) {
  if (!r.candidate.empty()) return r.stable;
  return r.previous.empty() ? "" : r.previous.back();
}

// Where a stored version is used: (environment, arm) with arm stable, canary, shadow, standby,
// or rollback (kept as a rollback target, which also blocks `deploy remove`).
std::vector<std::pair<std::string, std::string>> Uses(const deploy::State& state,
                                                      const std::string& model,
                                                      const std::string& version) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [env, environment] : state.environments) {
    auto it = environment.models.find(model);
    if (it == environment.models.end()) continue;
    const deploy::Route& r = it->second;
    if (r.stable == version) out.emplace_back(env, "stable");
    if (r.candidate == version) out.emplace_back(env, CandidateArm(r.strategy));
    if (r.standby == version) out.emplace_back(env, "standby");
    const bool routed = r.stable == version || r.candidate == version || r.standby == version;
    if (!routed && std::find(r.previous.begin(), r.previous.end(), version) != r.previous.end()) {
      out.emplace_back(env, "rollback");
    }
  }
  return out;
}

std::string UsesText(const std::vector<std::pair<std::string, std::string>>& uses) {
  std::string out;
  for (const auto& [env, arm] : uses) out += (out.empty() ? "" : ",") + Shown(env) + ":" + arm;
  return out.empty() ? "-" : out;
}

Json UsesJson(const std::vector<std::pair<std::string, std::string>>& uses) {
  Json out = Json::array();
  for (const auto& [env, arm] : uses) out.push_back({{"env", env}, {"arm", arm}});
  return out;
}

Json RecordJson(const deploy::VersionRecord& r) {
  return {{"name", r.name},       {"version", r.version},         {"digest", r.digest},
          {"size", r.size},       {"compression", r.compression}, {"signer", r.signer},
          {"created", r.created}, {"pushed_at", r.pushed_at},     {"pushed_by", r.pushed_by}};
}

Json RouteJson(const deploy::Route& r) {
  return {{"strategy", deploy::StrategyName(r.strategy)},
          {"stable", r.stable},
          {"candidate", r.candidate},
          {"standby", r.standby},
          {"weight", r.weight},
          {"key", r.key},
          {"sample", r.sample},
          {"previous", r.previous},
          {"rollback_to", RollbackTo(r)}};
}

// "iris 1.0.0 (stable, 90%) + 1.1.0 (canary, 10%)": who gets which share of the traffic.
std::string RouteText(const std::string& model, const deploy::Route& r) {
  using deploy::Strategy;
  std::string out = Shown(model) + " " + Shown(r.stable);
  switch (r.strategy) {
    case Strategy::kReplace:
      return out + " (stable, 100%)";
    case Strategy::kCanary:
      return out + " (stable, " + Number(100 - r.weight) + "%) + " + Shown(r.candidate) +
             " (canary, " + Number(r.weight) + "%)";
    case Strategy::kAb:
      return out + " (stable, " + Number(100 - r.weight) + "%) + " + Shown(r.candidate) +
             " (canary, " + Number(r.weight) + "%), sticky by header '" + Shown(r.key) + "'";
    case Strategy::kShadow:
      return out + " (stable, 100%) + " + Shown(r.candidate) + " (shadow, " +
             Number(100 * r.sample) + "% of requests mirrored, answers only logged)";
    case Strategy::kBlueGreen:
      return out + " (stable, 100%)" +
             (r.standby.empty() ? "" : " + " + Shown(r.standby) + " (standby, warm)");
  }
  return out;
}

// A route in one short phrase for the history table: "1.0.0", "1.0.0 + 1.1.0 10%".
std::string RouteShort(const std::optional<deploy::Route>& route) {
  if (!route) return "none";
  const deploy::Route& r = *route;
  std::string out = Shown(r.stable, 40);
  if (!r.candidate.empty()) {
    out += " + " + Shown(r.candidate, 40) + " " +
           (r.strategy == deploy::Strategy::kShadow ? "shadow" : Number(r.weight) + "%");
  }
  if (!r.standby.empty()) out += " (standby " + Shown(r.standby, 40) + ")";
  return out;
}

// The output of promote, finalize and rollback: the route after the change.
int PrintRoute(const char* action, const std::string& env, const std::string& model,
               const std::string& version, const deploy::Route& route, bool json) {
  if (json) {
    return Print(Dump({{"action", action},
                       {"env", env},
                       {"model", model},
                       {"version", version},
                       {"route", RouteJson(route)}}));
  }
  std::string out = Shown(env) + ": " + RouteText(model, route) + "\n";
  if (const std::string back = RollbackTo(route); !back.empty() && route.candidate.empty()) {
    out += "  rollback target: " + Shown(back) + " (dlsys deploy rollback " + Shown(model) +
           " --env " + Shown(env) + ")\n";
  }
  return Print(out);
}

// ---- push ----------------------------------------------------------------------------------

int RunPush(const Common& common, const PushOptions& o) {
  // deploy push ARCHIVE oci://HOST/REPO[:TAG] goes to an OCI registry (tools/oci_cmd.cpp).
  if (std::any_of(o.archives.begin(), o.archives.end(), oci::IsOciReference)) {
    if (o.archives.size() != 2 || !oci::IsOciReference(o.archives[1])) {
      return ReportError(Error{Code::kUsage, "push to an OCI registry takes one archive: "
                                             "dlsys deploy push ARCHIVE oci://HOST/REPO[:TAG]", {}},
                         o.json);
    }
    return oci_cmd::Push(
        {o.archives[0], o.archives[1], o.trust, o.allow_unsigned, o.json, o.remote});
  }
  auto verify = package::TrustOptions(o.trust, o.allow_unsigned, "deploy push stores", "store");
  if (!verify) return ReportError(verify.error(), o.json);
  auto registry = OpenRegistry(common, /*create=*/true);
  if (!registry) return ReportError(registry.error(), o.json);
  Json pushed = Json::array();
  std::string text;
  for (const auto& archive : o.archives) {
    Result<deploy::PushResult> r;
    {
      ProgressLine progress("pushing " + archive);
      r = registry->Push(archive, *verify, o.reason, [&progress](const package::Progress& p) {
        progress.Update(p.phase, p.done_bytes, p.total_bytes);
      });
    }
    if (!r) {
      // The archives before this one are stored; say so, as the exit code cannot.
      if (!o.json) Print(text);
      // The library's messages name the archive and, for a conflict (kExists, exit 2), both
      // digests and what to do.
      return ReportError(r.error(), o.json);
    }
    const deploy::VersionRecord& v = r->record;
    const std::string digest = "sha256:" + ShortDigest(v.digest) + "\u2026";
    text += r->stored
                ? "pushed " + Shown(v.name) + " " + Shown(v.version) + " " + digest + " (" +
                      core::HumanBytes(v.size) + ")\n"
                : Shown(v.name) + " " + Shown(v.version) + " already stored (" + digest + ")\n";
    Json j = RecordJson(v);
    j["stored"] = r->stored;
    pushed.push_back(std::move(j));
  }
  return Print(o.json ? Dump({{"registry", registry->dir()}, {"pushed", pushed}}) : text);
}

// ---- list / show ---------------------------------------------------------------------------

int RunList(const Common& common, const ListOptions& o) {
  auto registry = OpenRegistry(common, false);
  if (!registry) return ReportError(registry.error(), o.json);
  auto state = registry->Read();
  if (!state) return ReportError(state.error(), o.json);
  if (!o.name.empty() && !state->versions.count(o.name)) {
    return ReportError(
        Error{Code::kNotFound,
              "no version of '" + o.name + "' is stored in '" + registry->dir() + "'",
              {"dlsys deploy list shows every stored model"}},
        o.json);
  }
  Json versions = Json::array();
  std::vector<std::vector<std::string>> rows = {
      {"NAME", "VERSION", "DIGEST", "SIZE", "PUSHED", "SIGNER", "ENVIRONMENTS"}};
  for (const auto& [name, by_version] : state->versions) {
    if (!o.name.empty() && name != o.name) continue;
    for (const auto* v : SortedVersions(by_version)) {
      const auto uses = Uses(*state, name, v->version);
      Json j = RecordJson(*v);
      j["environments"] = UsesJson(uses);
      versions.push_back(std::move(j));
      rows.push_back({Shown(name, 40), Shown(v->version, 40), ShortDigest(v->digest),
                      core::HumanBytes(v->size), Shown(v->pushed_at, 40), ShortKey(v->signer),
                      UsesText(uses)});
    }
  }
  if (o.json) return Print(Dump({{"registry", registry->dir()}, {"versions", versions}}));
  if (rows.size() == 1) {
    return Print("no archive is stored in '" + Shown(registry->dir()) +
                 "' yet: dlsys deploy push ARCHIVE --trust KEY.pub\n");
  }
  return Print(monitor_view::Table(rows, rows[0].size()));
}

Json TensorsJson(const std::vector<manifest::TensorSpec>& tensors) {
  Json out = Json::array();
  for (const auto& t : tensors)
    out.push_back({{"name", t.name}, {"dtype", t.dtype}, {"shape", t.shape}});
  return out;
}

void TensorRows(std::string& out, const char* label, const std::vector<manifest::TensorSpec>& ts) {
  for (std::size_t i = 0; i < ts.size(); ++i) {
    char head[16];
    std::snprintf(head, sizeof head, "  %-13s", i == 0 ? label : "");
    out += head + Shown(ts[i].name, 60) + " " + Shown(ts[i].dtype, 20) + " " +
           manifest::ShapeText(ts[i].shape) + "\n";
  }
  if (ts.empty())
    out += std::string("  ") + label + std::string(13 - std::strlen(label), ' ') + "-\n";
}

std::string Row(const char* label, const std::string& shown) {
  char head[16];
  std::snprintf(head, sizeof head, "  %-13s", label);
  return head + shown + "\n";
}

// One row per requirement ("min_memory_bytes 67108864"); objects such as `measured` compact.
void RequirementRows(std::string& out, const Json& requirements) {
  if (requirements.empty()) out += Row("requirements", "none declared");
  const char* label = "requirements";
  for (const auto& [key, value] : requirements.items()) {
    const std::string shown = value.is_string() ? value.get<std::string>()
                                                : value.dump(-1, ' ', /*ensure_ascii=*/false,
                                                             Json::error_handler_t::replace);
    out += Row(label, Shown(key, 40) + " " + Shown(shown, 100));
    label = "";
  }
}

int RunShow(const Common& common, const ShowOptions& o) {
  auto ref = ParseRef(o.ref, /*version_required=*/false);
  if (!ref) return ReportError(ref.error(), o.json);
  const auto& [name, version] = *ref;
  auto registry = OpenRegistry(common, false);
  if (!registry) return ReportError(registry.error(), o.json);
  auto state = registry->Read();
  if (!state) return ReportError(state.error(), o.json);
  auto model = state->versions.find(name);
  if (model == state->versions.end() || (!version.empty() && !model->second.count(version))) {
    return ReportError(Error{Code::kNotFound,
                             "'" + o.ref + "' is not stored in '" + registry->dir() + "'",
                             {"dlsys deploy list shows every stored version"}},
                       o.json);
  }
  Json versions = Json::array();
  std::string text;
  for (const auto* v : SortedVersions(model->second)) {
    if (!version.empty() && v->version != version) continue;
    const std::string blob = registry->BlobPath(v->digest);
    auto inspected = package::Inspect(blob);
    if (!inspected) {
      return ReportError(std::move(inspected.error())
                             .Wrap("cannot read the stored archive of " + name + " " + v->version +
                                   " ('" + blob + "')"),
                         o.json);
    }
    const manifest::Manifest& m = inspected->manifest;
    const auto uses = Uses(*state, name, v->version);
    Json requirements = Json::parse(m.requirements_json, nullptr, /*allow_exceptions=*/false);
    if (!requirements.is_object()) requirements = Json::object();
    Json j = RecordJson(*v);
    j["manifest"] = {{"description", m.description},
                     {"owner", m.owner},
                     {"license", m.license},
                     {"inputs", TensorsJson(m.inputs)},
                     {"outputs", TensorsJson(m.outputs)},
                     {"requirements", requirements}};
    j["environments"] = UsesJson(uses);
    versions.push_back(std::move(j));

    text += Shown(name) + " " + Shown(v->version) + "\n";
    text += Row("digest", Shown(v->digest));
    text += Row("size", core::HumanBytes(v->size) + " (" + Shown(v->compression, 20) + ")");
    text += Row("signer", v->signer.empty() ? "unsigned" : Shown(v->signer));
    text += Row("created", Shown(v->created, 40));
    text += Row("pushed", Shown(v->pushed_at, 40) + " by " + Shown(v->pushed_by));
    if (!m.description.empty()) text += Row("description", Shown(m.description));
    if (!m.owner.empty()) text += Row("owner", Shown(m.owner));
    if (!m.license.empty()) text += Row("license", Shown(m.license));
    TensorRows(text, "inputs", m.inputs);
    TensorRows(text, "outputs", m.outputs);
    RequirementRows(text, requirements);
    text += Row("routed", uses.empty() ? "nowhere" : UsesText(uses));
  }
  if (o.json)
    return Print(Dump({{"registry", registry->dir()}, {"model", name}, {"versions", versions}}));
  return Print(text);
}

// ---- remove / promote / finalize / rollback ------------------------------------------------

int RunRemove(const Common& common, const RemoveOptions& o) {
  auto ref = ParseRef(o.ref, /*version_required=*/true);
  if (!ref) return ReportError(ref.error(), o.json);
  auto registry = OpenRegistry(common, false);
  if (!registry) return ReportError(registry.error(), o.json);
  auto removed = registry->Remove(ref->first, ref->second, o.force, o.reason);
  if (!removed) return ReportError(removed.error(), o.json);
  if (o.json) {
    return Print(Dump({{"action", "remove"},
                       {"model", removed->name},
                       {"version", removed->version},
                       {"digest", removed->digest}}));
  }
  return Print("removed " + Shown(removed->name) + " " + Shown(removed->version) +
               " (sha256:" + ShortDigest(removed->digest) + "\u2026)\n");
}

// Flags that mean something only for some strategies: refused elsewhere rather than ignored.
Result<void> CheckStrategyFlags(const PromoteOptions& o, deploy::Strategy s) {
  using deploy::Strategy;
  auto refuse = [&o](const char* flag, const char* which) -> Result<void> {
    return Fail(Code::kUsage, std::string(flag) + " does not apply to --strategy " + o.strategy,
                {std::string(flag) + " is for " + which});
  };
  if ((o.weight) && s != Strategy::kCanary && s != Strategy::kAb) {
    return refuse("--weight", "canary and ab");
  }
  if (o.step && s != Strategy::kCanary) return refuse("--step", "canary");
  if (!o.key.empty() && s != Strategy::kAb) return refuse("--key", "ab");
  if (o.sample && s != Strategy::kShadow) return refuse("--sample", "shadow");
  return {};
}

int RunPromote(const Common& common, const PromoteOptions& o) {
  auto strategy = deploy::ParseStrategy(o.strategy);
  if (!strategy) return ReportError(strategy.error(), o.json);
  if (auto flags = CheckStrategyFlags(o, *strategy); !flags) {
    return ReportError(flags.error(), o.json);
  }
  if (auto env = deploy::CheckEnvironmentName(o.env); !env) return ReportError(env.error(), o.json);
  auto registry = OpenRegistry(common, false);
  if (!registry) return ReportError(registry.error(), o.json);
  deploy::PromoteRequest request;
  request.model = o.model;
  request.version = o.version;
  request.env = o.env;
  request.strategy = *strategy;
  request.weight = o.weight;
  request.step = o.step;
  request.key = o.key;
  request.sample = o.sample;
  request.reason = o.reason;
  auto route = registry->Promote(request);
  if (!route) return ReportError(route.error(), o.json);
  return PrintRoute("promote", o.env, o.model, o.version, *route, o.json);
}

int RunEnd(const Common& common, const EndOptions& o, bool finalize) {
  if (auto env = deploy::CheckEnvironmentName(o.env); !env) return ReportError(env.error(), o.json);
  auto registry = OpenRegistry(common, false);
  if (!registry) return ReportError(registry.error(), o.json);
  auto route = finalize ? registry->Finalize(o.model, o.env, o.reason)
                        : registry->Rollback(o.model, o.env, o.reason);
  if (!route) return ReportError(route.error(), o.json);
  return PrintRoute(finalize ? "finalize" : "rollback", o.env, o.model, route->stable, *route,
                    o.json);
}

// ---- status / history ----------------------------------------------------------------------

int RunStatus(const Common& common, const StatusOptions& o) {
  if (!o.env.empty()) {
    if (auto env = deploy::CheckEnvironmentName(o.env); !env) {
      return ReportError(env.error(), o.json);
    }
  }
  auto registry = OpenRegistry(common, false);
  if (!registry) return ReportError(registry.error(), o.json);
  auto state = registry->Read();
  if (!state) return ReportError(state.error(), o.json);
  Json envs = Json::array();
  std::vector<std::vector<std::string>> rows = {{"ENV", "MODEL", "STRATEGY", "STABLE",
                                                 "CANDIDATE/STANDBY", "WEIGHT", "KEY", "SAMPLE",
                                                 "ROLLBACK TO"}};
  for (const auto& [env, environment] : state->environments) {
    if (!o.env.empty() && env != o.env) continue;
    Json models = Json::array();
    for (const auto& [model, r] : environment.models) {
      models.push_back({{"model", model}, {"route", RouteJson(r)}});
      using deploy::Strategy;
      const bool weighted = r.strategy == Strategy::kCanary || r.strategy == Strategy::kAb;
      const std::string back = RollbackTo(r);
      rows.push_back({Shown(env, 40), Shown(model, 40), deploy::StrategyName(r.strategy),
                      Shown(r.stable, 40),
                      !r.candidate.empty() ? Shown(r.candidate, 40)
                      : !r.standby.empty() ? Shown(r.standby, 40) + " (standby)"
                                           : "-",
                      weighted ? Number(r.weight) + "%" : "-",
                      r.strategy == Strategy::kAb ? Shown(r.key, 40) : "-",
                      r.strategy == Strategy::kShadow ? Number(r.sample) : "-",
                      back.empty() ? "-" : Shown(back, 40)});
    }
    envs.push_back({{"env", env}, {"models", models}});
  }
  if (o.json) {
    return Print(Dump({{"registry", registry->dir()},
                       {"generation", state->generation},
                       {"environments", envs}}));
  }
  if (rows.size() == 1) {
    return Print((o.env.empty() ? std::string("no environment routes anything yet")
                                : "environment '" + Shown(o.env) + "' routes nothing yet") +
                 ": dlsys deploy promote NAME VERSION --env ENV\n");
  }
  return Print(monitor_view::Table(rows, rows[0].size()));
}

// "2026-12-01T10:00:00.123456Z" -> "2026-12-01T10:00:00Z" for the table (--json keeps all).
std::string Seconds(const std::string& time) {
  if (time.size() > 20 && time[19] == '.') return Shown(time.substr(0, 19)) + "Z";
  return Shown(time, 40);
}

Json HistoryJson(const deploy::HistoryEntry& e) {
  auto route = [](const std::optional<deploy::Route>& r) {
    return r ? RouteJson(*r) : Json(nullptr);
  };
  return {{"seq", e.seq},          {"time", e.time},     {"user", e.user},
          {"host", e.host},        {"action", e.action}, {"model", e.model},
          {"version", e.version},  {"env", e.env},       {"strategy", e.strategy},
          {"from", route(e.from)}, {"to", route(e.to)},  {"reason", e.reason},
          {"digest", e.digest}};
}

int RunHistory(const Common& common, const HistoryOptions& o) {
  if (!o.env.empty()) {
    if (auto env = deploy::CheckEnvironmentName(o.env); !env) {
      return ReportError(env.error(), o.json);
    }
  }
  auto registry = OpenRegistry(common, false);
  if (!registry) return ReportError(registry.error(), o.json);
  auto history = registry->History(o.model, o.env);
  if (!history) return ReportError(history.error(), o.json);
  std::size_t first = 0;
  if (o.limit > 0 && history->size() > o.limit) first = history->size() - o.limit;
  Json entries = Json::array();
  std::vector<std::vector<std::string>> rows = {
      {"TIME", "USER@HOST", "ACTION", "MODEL", "ENV", "VERSIONS", "STRATEGY", "REASON"}};
  for (std::size_t i = first; i < history->size(); ++i) {
    const deploy::HistoryEntry& e = (*history)[i];
    entries.push_back(HistoryJson(e));
    const bool routing = e.from || e.to;
    rows.push_back({Seconds(e.time), Shown(e.user, 32) + "@" + Shown(e.host, 40),
                    Shown(e.action, 20), Shown(e.model, 40), e.env.empty() ? "-" : Shown(e.env, 40),
                    routing ? RouteShort(e.from) + " -> " + RouteShort(e.to) : Shown(e.version, 40),
                    e.strategy.empty() ? "-" : Shown(e.strategy, 20),
                    e.reason.empty() ? "-" : Shown(e.reason, 80)});
  }
  if (o.json) return Print(Dump({{"registry", registry->dir()}, {"entries", entries}}));
  if (rows.size() == 1) return Print("no history yet\n");
  return Print(monitor_view::Table(rows, rows[0].size()));
}

// ---- registration --------------------------------------------------------------------------

CLI::App* Sub(CLI::App& deploy, const char* name, const char* what, const char* footer) {
  auto* sub = deploy.add_subcommand(name, what);
  sub->fallthrough();  // --registry and the logging flags may follow the subcommand's name
  sub->footer(footer);
  return sub;
}

void AddJson(CLI::App* sub, bool& json) {
  sub->add_flag("--json", json,
                "print JSON (schemas/deploy-output.schema.json), also on failure "
                "(schemas/error.schema.json)");
}

void AddReason(CLI::App* sub, std::string& reason) {
  sub->add_option("--reason", reason,
                  "why, recorded in the audit history (at most 1024 bytes, no control characters)")
      ->check(NonEmpty("a reason, or leave the flag out"));
}

void AddEnv(CLI::App* sub, std::string& env, bool required) {
  auto* opt = sub->add_option("--env", env,
                              "environment: 1-63 characters of a-z, 0-9 and '-' (e.g. production)")
                  ->check(NonEmpty("an environment name such as production"));
  if (required) opt->required();
}

void RegisterPush(CLI::App& deploy, const std::shared_ptr<Common>& common, RunFn& run) {
  auto o = std::make_shared<PushOptions>();
  auto* sub =
      Sub(deploy, "push", "Verify archives and store them in the registry, immutable",
          "Each archive is copied into the registry, verified there (integrity, canonical form,\n"
          "signature by a --trust'ed key) and stored under its SHA-256. Pushing the same bytes\n"
          "again does nothing; the same version with other bytes is refused (exit 2).\n"
          "Exit codes: 0 stored or already stored, 2 usage (no --trust, version conflict),\n"
          "3 archive or key not found, 4 archive broken or unsafe, 5 does not verify. Several\n"
          "archives: stops at the first failure (the ones before it stay stored).\n"
          "With ARCHIVE oci://HOST[:PORT]/REPO[:TAG] instead: verifies the archive and pushes it\n"
          "to that OCI registry as an artifact (tag default: its version; docs/oci.md); prints\n"
          "the manifest digest. Blobs the registry has are not sent again.\n\n"
          "Examples:\n"
          "  dlsys deploy push iris-1.0.0.dlsys --trust release.key.pub\n"
          "  dlsys deploy push iris-1.0.0.dlsys oci://ghcr.io/team/iris --trust release.key.pub\n"
          "  dlsys deploy push iris-*.dlsys --trust keys/ --reason 'nightly build 812'\n"
          "  dlsys deploy --registry /srv/dlsys push iris-1.1.0.dlsys --trust keys/ --json");
  sub->add_option("archives", o->archives,
                  "the .dlsys archives to store; or ARCHIVE oci://HOST/REPO[:TAG] to push one to an "
                  "OCI registry")
      ->required();
  AddTrustOptions(sub, o->trust, o->allow_unsigned, "",
                  "store archives that are unsigned or not signed by a trusted key (development)");
  AddReason(sub, o->reason);
  AddJson(sub, o->json);
  oci_cmd::AddRemoteOptions(sub, o->remote);
  sub->callback([common, o, &run] { run = [common, o] { return RunPush(*common, *o); }; });
}

void RegisterList(CLI::App& deploy, const std::shared_ptr<Common>& common, RunFn& run) {
  auto o = std::make_shared<ListOptions>();
  auto* sub = Sub(deploy, "list", "List stored versions and where they are routed",
                  "ENVIRONMENTS shows ENV:ARM, ARM one of stable, canary (a canary or A/B\n"
                  "candidate), shadow, standby (blue-green) or rollback (a rollback target).\n"
                  "Exit codes: 0, 3 registry or NAME not found, 4 registry files corrupt.\n\n"
                  "Examples:\n"
                  "  dlsys deploy list\n"
                  "  dlsys deploy list iris --json | jq -r '.versions[].version'");
  sub->add_option("name", o->name, "only this model");
  AddJson(sub, o->json);
  sub->callback([common, o, &run] { run = [common, o] { return RunList(*common, *o); }; });
}

void RegisterShow(CLI::App& deploy, const std::shared_ptr<Common>& common, RunFn& run) {
  auto o = std::make_shared<ShowOptions>();
  auto* sub = Sub(deploy, "show", "Show stored versions: record, manifest summary, routes",
                  "Without @VERSION every stored version of NAME is shown.\n"
                  "Exit codes: 0, 2 usage, 3 not stored, 4 registry or stored archive corrupt.\n\n"
                  "Examples:\n"
                  "  dlsys deploy show iris@1.1.0\n"
                  "  dlsys deploy show iris --json");
  sub->add_option("ref", o->ref, "NAME or NAME@VERSION")->required();
  AddJson(sub, o->json);
  sub->callback([common, o, &run] { run = [common, o] { return RunShow(*common, *o); }; });
}

void RegisterRemove(CLI::App& deploy, const std::shared_ptr<Common>& common, RunFn& run) {
  auto o = std::make_shared<RemoveOptions>();
  auto* sub =
      Sub(deploy, "remove", "Delete a stored version no environment routes to",
          "Refused (exit 2) while an environment routes to the version (stable, candidate,\n"
          "standby) or keeps it as a rollback target; --force drops it from rollback\n"
          "targets, never from a live route.\n"
          "Exit codes: 0 removed, 2 routed or usage, 3 not stored.\n\n"
          "Examples:\n"
          "  dlsys deploy remove iris@0.9.0\n"
          "  dlsys deploy remove iris@0.9.0 --force --reason 'license withdrawn'");
  sub->add_option("ref", o->ref, "NAME@VERSION")->required();
  sub->add_flag("--force", o->force, "also drop the version from every rollback list");
  AddReason(sub, o->reason);
  AddJson(sub, o->json);
  sub->callback([common, o, &run] { run = [common, o] { return RunRemove(*common, *o); }; });
}

void RegisterPromote(CLI::App& deploy, const std::shared_ptr<Common>& common, RunFn& run) {
  auto o = std::make_shared<PromoteOptions>();
  auto* sub = Sub(
      deploy, "promote", "Route a stored version in an environment with a rollout strategy",
      "Strategies:\n"
      "  replace     the version takes all traffic; the old stable becomes the rollback target\n"
      "  canary      --weight P percent of requests (at random) go to it; --step P raises it\n"
      "  ab          --weight P percent of the values of header --key go to it, sticky per value\n"
      "  shadow      stable answers; a --sample fraction (default 1) also runs on it, logged only\n"
      "  blue-green  it takes all traffic at once; the old stable stays warm until finalize\n"
      "One rollout per model and environment: finalize or roll back before the next one.\n"
      "Exit codes: 0 routed, 2 a request that does not fit the current route (the message says\n"
      "what to do), 3 version or registry not found.\n\n"
      "Examples:\n"
      "  dlsys deploy promote iris 1.0.0 --env production\n"
      "  dlsys deploy promote iris 1.1.0 --env production --strategy canary --weight 10\n"
      "  dlsys deploy promote iris 1.1.0 --env production --strategy canary --step 40\n"
      "  dlsys deploy promote iris 1.1.0 --env staging --strategy ab --weight 50 --key x-user-id\n"
      "  dlsys deploy promote iris 1.1.0 --env production --strategy shadow --sample 0.1\n"
      "  dlsys deploy promote iris 1.1.0 --env production --strategy blue-green "
      "--reason 'CHG-42'");
  sub->add_option("name", o->model, "the model")->required();
  sub->add_option("version", o->version, "a stored version of it")->required();
  AddEnv(sub, o->env, /*required=*/true);
  sub->add_option("--strategy", o->strategy, "replace (default), canary, ab, shadow, blue-green")
      ->check(CLI::IsMember({"replace", "canary", "ab", "shadow", "blue-green"}));
  sub->add_option("--weight", o->weight, "canary, ab: percent of traffic for the version, 0-100")
      ->check(CLI::Range(0.0, 100.0));
  sub->add_option("--step", o->step,
                  "canary: raise the current canary's weight by this many percent")
      ->check(CLI::Range(0.0, 100.0));
  sub->add_option("--key", o->key, "ab: the request header whose value picks the arm")
      ->check(NonEmpty("a header name such as x-user-id"));
  sub->add_option("--sample", o->sample,
                  "shadow: fraction of requests also run on the version, over 0 up to 1")
      ->check(CLI::Range(0.0, 1.0));
  AddReason(sub, o->reason);
  AddJson(sub, o->json);
  sub->callback([common, o, &run] { run = [common, o] { return RunPromote(*common, *o); }; });
}

void RegisterEnd(CLI::App& deploy, const std::shared_ptr<Common>& common, RunFn& run,
                 bool finalize) {
  auto o = std::make_shared<EndOptions>();
  auto* sub =
      finalize
          ? Sub(deploy, "finalize", "End a rollout: the candidate becomes stable",
                "canary, ab, shadow: the candidate becomes stable (replace) and the old stable\n"
                "the rollback target; blue-green: the warm standby is released.\n"
                "Exit codes: 0, 2 nothing to finalize, 3 not found.\n\n"
                "Examples:\n"
                "  dlsys deploy finalize iris --env production\n"
                "  dlsys deploy finalize iris --env production --reason 'canary clean for 24h'")
          : Sub(deploy, "rollback", "One step back: drop the candidate or restore the previous",
                "During a rollout the candidate is dropped and stable keeps all traffic;\n"
                "blue-green switches back to the standby; otherwise the previous stable version\n"
                "takes all traffic again (deploy status shows it as ROLLBACK TO).\n"
                "Exit codes: 0, 2 nothing to roll back to, 3 not found.\n\n"
                "Examples:\n"
                "  dlsys deploy rollback iris --env production\n"
                "  dlsys deploy rollback iris --env production --reason 'p99 doubled'");
  sub->add_option("name", o->model, "the model")->required();
  AddEnv(sub, o->env, /*required=*/true);
  AddReason(sub, o->reason);
  AddJson(sub, o->json);
  sub->callback([common, o, &run, finalize] {
    run = [common, o, finalize] { return RunEnd(*common, *o, finalize); };
  });
}

void RegisterStatus(CLI::App& deploy, const std::shared_ptr<Common>& common, RunFn& run) {
  auto o = std::make_shared<StatusOptions>();
  auto* sub = Sub(deploy, "status", "Show every environment's routes",
                  "Per environment and model: strategy, stable, candidate or standby, weight,\n"
                  "A/B header, shadow sample, and what a rollback would make stable.\n"
                  "Exit codes: 0, 2 bad --env, 3 registry not found, 4 registry corrupt.\n\n"
                  "Examples:\n"
                  "  dlsys deploy status\n"
                  "  dlsys deploy status --env production --json");
  AddEnv(sub, o->env, /*required=*/false);
  AddJson(sub, o->json);
  sub->callback([common, o, &run] { run = [common, o] { return RunStatus(*common, *o); }; });
}

void RegisterHistory(CLI::App& deploy, const std::shared_ptr<Common>& common, RunFn& run) {
  auto o = std::make_shared<HistoryOptions>();
  auto* sub = Sub(deploy, "history", "Show the audit history, oldest first",
                  "Every push, remove, promote, finalize and rollback: time (UTC), user@host,\n"
                  "model, environment, versions before -> after, strategy and --reason.\n"
                  "Exit codes: 0, 2 usage, 3 registry not found, 4 history corrupt or edited.\n\n"
                  "Examples:\n"
                  "  dlsys deploy history\n"
                  "  dlsys deploy history iris --env production --limit 20\n"
                  "  dlsys deploy history --json | jq -c '.entries[] | [.time, .action, .reason]'");
  sub->add_option("name", o->model, "only this model");
  AddEnv(sub, o->env, /*required=*/false);
  sub->add_option("--limit", o->limit, "only the newest N entries")
      ->check(WholeNumberIn(1, 1000000000, "the number of entries to show"));
  AddJson(sub, o->json);
  sub->callback([common, o, &run] { run = [common, o] { return RunHistory(*common, *o); }; });
}

}  // namespace deploy_cmd

void RegisterDeploy(CLI::App& app, RunFn& run) {
  auto common = std::make_shared<deploy_cmd::Common>();
  auto* deploy = app.add_subcommand(
      "deploy",
      "Store verified archives in a registry, roll them out per environment (replace, canary, "
      "A/B, shadow, blue-green), roll back, and keep an audit history");
  deploy->require_subcommand(1);
  deploy
      ->add_option("--registry", common->registry,
                   "the registry directory (default: $DLSYS_REGISTRY, else "
                   "$XDG_DATA_HOME/dlsys/registry, else ~/.local/share/dlsys/registry)")
      ->check(NonEmpty("a directory, or leave the flag out for the default"));
  deploy->footer(
      "The registry is a directory: archives stored by digest, the routes of every environment\n"
      "and an append-only history (docs/deploy.md). Every change is atomic and serialized under\n"
      "a lock; dlsys serve --registry DIR --env ENV follows an environment's routes live.\n"
      "OCI registries (docs/oci.md): push ARCHIVE oci://HOST/REPO[:TAG], pull oci://..., tags.\n\n"
      "Examples:\n"
      "  dlsys deploy push iris-1.0.0.dlsys iris-1.1.0.dlsys --trust release.key.pub\n"
      "  dlsys deploy promote iris 1.0.0 --env production\n"
      "  dlsys deploy promote iris 1.1.0 --env production --strategy canary --weight 10\n"
      "  dlsys deploy status\n"
      "  dlsys deploy finalize iris --env production     # or: dlsys deploy rollback ...\n"
      "  dlsys deploy history iris --env production\n"
      "  dlsys deploy pull oci://registry.example.com/team/iris:1.1.0 --trust release.key.pub\n"
      "Run 'dlsys deploy COMMAND --help' for a command's options and exit codes.");
  deploy_cmd::RegisterPush(*deploy, common, run);
  deploy_cmd::RegisterList(*deploy, common, run);
  deploy_cmd::RegisterShow(*deploy, common, run);
  deploy_cmd::RegisterRemove(*deploy, common, run);
  deploy_cmd::RegisterPromote(*deploy, common, run);
  deploy_cmd::RegisterEnd(*deploy, common, run, /*finalize=*/true);
  deploy_cmd::RegisterEnd(*deploy, common, run, /*finalize=*/false);
  deploy_cmd::RegisterStatus(*deploy, common, run);
  deploy_cmd::RegisterHistory(*deploy, common, run);
  deploy_export::Register(*deploy, run);
  oci_cmd::RegisterDeploy(*deploy, [common] { return common->registry; }, run);
}

}  // namespace dlsys::cli
