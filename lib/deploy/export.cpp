// dlsys deploy export: Kubernetes, KServe and Dockerfile output for a route (export.h).
#include "deploy/export.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "core/encoding.h"
#include "core/file.h"
#include "core/utf8.h"
#include "hw/requirements.h"
#include "package/package.h"
#include "signing/digest.h"

namespace dlsys::deploy {
namespace {

// Insertion order is kept so the YAML reads in the order Kubernetes documents its fields.
using Yaml = nlohmann::ordered_json;

constexpr std::string_view kTrustDir = "/etc/dlsys/trust";
// The ConfigMap holding the trusted public keys (KEY.pub) mounted at kTrustDir.
constexpr std::string_view kTrustConfigMap = "dlsys-trust";
constexpr std::string_view kRuntimeName = "dlsys";  // ServingRuntime and modelFormat name
constexpr std::string_view kModelsDir = "/models";  // where the Dockerfile puts the archives
constexpr std::string_view kKServeModelsDir = "/mnt/models";
constexpr unsigned kMaxReplicas = 10000;

// ---------------------------------------------------------------------------------------------
// Escapers

void AppendHex(std::string& out, char32_t cp, int digits) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (int i = digits - 1; i >= 0; --i) out += kHex[(cp >> (4 * i)) & 0xF];
}

// Calls f(code point) for each character of s; a byte that is not part of well-formed UTF-8
// comes out as U+FFFD.
template <typename F>
void ForEachCodePoint(std::string_view s, F&& f) {
  for (std::size_t i = 0; i < s.size();) {
    char32_t cp = 0;
    std::size_t n = core::DecodeUtf8At(s, i, &cp);
    if (n == 0) {
      cp = 0xFFFD;
      n = 1;
    }
    f(cp);
    i += n;
  }
}

// Dockerfile double-quoted word (BuildKit's shell lexer): inside "...", \ escapes only " $ and
// \ itself, $ starts a variable, and no character can stand for a line break, so control
// characters (and the Unicode line separators) become spaces: a description can never end the
// instruction and start another.
std::string DockerQuote(std::string_view s) {
  std::string out = "\"";
  ForEachCodePoint(s, [&](char32_t cp) {
    if (cp == '"' || cp == '\\' || cp == '$') {
      out += '\\';
      out += static_cast<char>(cp);
    } else if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0x9F) || cp == 0x2028 ||
               cp == 0x2029) {
      out += ' ';
    } else {
      char buf[4];
      std::size_t n = 0;
      if (cp < 0x80) {
        buf[n++] = static_cast<char>(cp);
      } else if (cp < 0x800) {
        buf[n++] = static_cast<char>(0xC0 | (cp >> 6));
        buf[n++] = static_cast<char>(0x80 | (cp & 0x3F));
      } else if (cp < 0x10000) {
        buf[n++] = static_cast<char>(0xE0 | (cp >> 12));
        buf[n++] = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        buf[n++] = static_cast<char>(0x80 | (cp & 0x3F));
      } else {
        buf[n++] = static_cast<char>(0xF0 | (cp >> 18));
        buf[n++] = static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        buf[n++] = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        buf[n++] = static_cast<char>(0x80 | (cp & 0x3F));
      }
      out.append(buf, n);
    }
  });
  out += '"';
  return out;
}

// ---------------------------------------------------------------------------------------------
// A block-style YAML emitter for the JSON values built below. Every string value is a
// double-quoted scalar (YamlQuote), so no value is ever read back as a number, a boolean, a
// key or a new document; keys are written plain only when they are plain-safe.

bool PlainKey(std::string_view k) {
  // YAML 1.1 readers (PyYAML, go-yaml v2) turn these into booleans or null.
  static const std::set<std::string_view> kReserved = {
      "y",  "Y",    "yes",  "Yes",  "YES",   "n",     "N",     "no", "No",
      "NO", "true", "True", "TRUE", "false", "False", "FALSE", "on", "On",
      "ON", "off",  "Off",  "OFF",  "null",  "Null",  "NULL"};
  if (k.empty() || kReserved.count(k) != 0) return false;
  if (!std::isalpha(static_cast<unsigned char>(k[0]))) return false;
  return std::all_of(k.begin(), k.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '/' || c == '-' ||
           c == '_';
  });
}

std::string Scalar(const Yaml& v) {
  if (v.is_string()) return YamlQuote(v.get_ref<const std::string&>());
  if (v.is_object()) return "{}";  // only called for empty containers
  if (v.is_array()) return "[]";
  return v.dump();  // numbers, booleans, null: JSON and YAML agree
}

bool Inline(const Yaml& v) { return !v.is_structured() || v.empty(); }

void EmitBlock(const Yaml& v, std::size_t indent, std::string& out);

void EmitItem(const Yaml& item, std::size_t indent, std::string& out) {
  out.append(indent, ' ');
  out += '-';
  if (Inline(item)) {
    out += ' ' + Scalar(item) + '\n';
    return;
  }
  // The item's block, its first line moved up next to the dash.
  std::string sub;
  EmitBlock(item, indent + 2, sub);
  out += ' ';
  out.append(sub, indent + 2);
}

void EmitBlock(const Yaml& v, std::size_t indent, std::string& out) {
  if (v.is_array()) {
    for (const auto& item : v) EmitItem(item, indent, out);
    return;
  }
  for (const auto& [key, value] : v.items()) {
    out.append(indent, ' ');
    out += PlainKey(key) ? key : YamlQuote(key);
    out += ':';
    if (Inline(value)) {
      out += ' ' + Scalar(value) + '\n';
    } else {
      out += '\n';
      EmitBlock(value, indent + 2, out);
    }
  }
}

std::string ToYaml(const std::vector<Yaml>& documents) {
  std::string out;
  for (const auto& doc : documents) {
    out += "---\n";
    EmitBlock(doc, 0, out);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// What is exported: the arms of the route that take traffic.

struct Arm {
  std::string arm;  // "stable", "canary"
  const VersionRecord* record = nullptr;
  double weight = 100;             // percent of requests
  std::uint64_t memory_bytes = 0;  // request and limit of its container
  bool gpu = false;                // requirements.device == "cuda"
  std::string description;
};

Arm MakeArm(std::string arm, const VersionRecord* record, double weight) {
  Arm a;
  a.arm = std::move(arm);
  a.record = record;
  a.weight = weight;
  return a;
}

std::string ArchiveName(const VersionRecord& r) { return r.name + "-" + r.version + ".dlsys"; }

// What a container needs to know about a version: its memory need (hw::MemoryNeedBytes, the
// figure verify's `memory` row checks) plus the server's own, its device, its description.
Result<void> ReadArchiveFacts(const Registry& registry, const ExportOptions& o, Arm& arm) {
  const VersionRecord& r = *arm.record;
  const std::string path = registry.BlobPath(r.digest);
  auto head = package::Inspect(path);
  if (!head) {
    return tl::unexpected(std::move(head).error().Wrap("cannot read " + r.name + " " + r.version +
                                                       " from the registry (" + path + ")"));
  }
  if (head->manifest.name != r.name || head->manifest.version != r.version) {
    return Fail(Code::kInvalid, "registry blob " + path + " holds " + head->manifest.name + " " +
                                    head->manifest.version + ", the registry says " + r.name + " " +
                                    r.version + "; the registry is corrupt");
  }
  DLSYS_ASSIGN_OR_RETURN(hw::Requirements req,
                         hw::ParseRequirements(head->manifest.requirements_json,
                                               "manifest field 'requirements' of " + path));
  const std::uint64_t model = hw::MemoryNeedBytes(head->manifest, req);
  if (model > UINT64_MAX - o.server_memory_bytes) {
    return Fail(Code::kInvalid, r.name + " " + r.version + " records a memory need of " +
                                    std::to_string(model) + " bytes, beyond any machine");
  }
  arm.memory_bytes = model + o.server_memory_bytes;
  arm.gpu = req.device == "cuda";
  arm.description = head->manifest.description;
  return {};
}

Result<std::vector<Arm>> TrafficArms(const State& state, const Route& route,
                                     const ExportOptions& o) {
  auto record = [&](const std::string& version) -> Result<const VersionRecord*> {
    auto m = state.versions.find(o.model);
    if (m != state.versions.end()) {
      auto v = m->second.find(version);
      if (v != m->second.end()) return &v->second;
    }
    return Fail(Code::kInvalid, "registry state routes " + o.model + " to version " + version +
                                    ", which is not stored; the registry is corrupt");
  };
  std::vector<Arm> arms;
  DLSYS_ASSIGN_OR_RETURN(const VersionRecord* stable, record(route.stable));
  arms.push_back(MakeArm("stable", stable, 100));
  if (o.stable_only) return arms;
  switch (route.strategy) {
    case Strategy::kReplace:
    case Strategy::kBlueGreen:  // the standby is loaded but takes no traffic
      return arms;
    case Strategy::kCanary: {
      DLSYS_ASSIGN_OR_RETURN(const VersionRecord* candidate, record(route.candidate));
      arms[0].weight = 100 - route.weight;
      arms.push_back(MakeArm("canary", candidate, route.weight));
      return arms;
    }
    case Strategy::kAb:
    case Strategy::kShadow:
      break;
  }
  return Fail(Code::kUsage,
              std::string("the route of ") + o.model + " in " + o.env + " is " +
                  StrategyName(route.strategy) + ", which " + ExportFormatName(o.format) +
                  " cannot express (" +
                  (route.strategy == Strategy::kAb
                       ? "a split that keeps each value of a request header on one arm"
                       : "every request also run on the candidate, its answer only logged") +
                  "); finalize or roll back first, or pass --stable-only to export only the "
                  "stable version " +
                  route.stable);
}

// ---------------------------------------------------------------------------------------------
// Names and labels

bool IsDnsLabel(std::string_view s) {
  if (s.empty() || s.size() > 63) return false;
  if (!std::islower(static_cast<unsigned char>(s.front()))) return false;
  if (s.back() == '-') return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::islower(static_cast<unsigned char>(c)) ||
           std::isdigit(static_cast<unsigned char>(c)) || c == '-';
  });
}

// The longest suffix added to the object name ("-canary").
constexpr std::size_t kArmSuffixBytes = 7;

Result<std::string> ObjectName(const ExportOptions& o) {
  std::string name = o.object_name;
  if (name.empty()) {
    name = o.model;
    std::replace(name.begin(), name.end(), '.', '-');
    std::replace(name.begin(), name.end(), '_', '-');
  }
  if (!IsDnsLabel(name) || name.size() > 63 - kArmSuffixBytes) {
    return Fail(Code::kUsage,
                "'" + name + "' cannot name the Kubernetes objects of " + o.model +
                    ": a name needs 1-56 characters of [a-z0-9-], starting with a letter and "
                    "ending with a letter or digit (56 leaves room for '-canary'); give one "
                    "with --object-name");
  }
  return name;
}

// Label values: at most 63 characters of [A-Za-z0-9._-], beginning and ending with a letter or
// digit. SemVer's '+' (build metadata) is not allowed there: it becomes '_'. The exact version
// is in the dlsys.dev/version annotation.
Result<std::string> VersionLabel(std::string_view version) {
  std::string v(version);
  std::replace(v.begin(), v.end(), '+', '_');
  auto alnum = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; };
  bool ok = !v.empty() && v.size() <= 63 && alnum(v.front()) && alnum(v.back()) &&
            std::all_of(v.begin(), v.end(),
                        [&](char c) { return alnum(c) || c == '.' || c == '-' || c == '_'; });
  if (!ok) {
    return Fail(Code::kUsage, "version '" + v +
                                  "' cannot be a Kubernetes label value (at most 63 characters, "
                                  "beginning and ending with a letter or digit); export a "
                                  "version with a shorter name");
  }
  return v;
}

std::string WholePercent(double weight) {
  return std::to_string(static_cast<long long>(std::llround(weight)));
}

std::string PercentText(double weight) {
  if (weight == std::floor(weight)) return WholePercent(weight);
  Yaml j = weight;
  return j.dump();
}

struct Context {
  const ExportOptions* options;
  const Route* route;
  std::string object;  // Kubernetes object name
  std::vector<Arm> arms;
};

Yaml Metadata(const Context& c, const std::string& name, const Yaml& labels,
              const Yaml& annotations) {
  Yaml m = Yaml::object();
  m["name"] = name;
  if (!c.options->kubernetes_namespace.empty()) m["namespace"] = c.options->kubernetes_namespace;
  if (!labels.empty()) m["labels"] = labels;
  if (!annotations.empty()) m["annotations"] = annotations;
  return m;
}

// What the objects record about where they come from (annotations: any text is allowed).
Yaml Provenance(const Context& c, const Arm& arm) {
  Yaml a = Yaml::object();
  a["dlsys.dev/model"] = arm.record->name;
  a["dlsys.dev/version"] = arm.record->version;
  a["dlsys.dev/digest"] = arm.record->digest;
  a["dlsys.dev/environment"] = c.options->env;
  a["dlsys.dev/strategy"] = StrategyName(c.route->strategy);
  if (!arm.description.empty()) a["dlsys.dev/description"] = arm.description;
  return a;
}

std::vector<std::string> TrustArgs(const ExportOptions& o) {
  if (o.allow_unsigned) return {"--allow-unsigned"};
  return {"--trust", std::string(kTrustDir)};
}

Yaml HttpProbe(std::string_view path, const Yaml& port) {
  return Yaml{{"httpGet", Yaml{{"path", path}, {"port", port}}}};
}

Yaml Resources(const Arm& arm) {
  const std::string memory = std::to_string(arm.memory_bytes);
  Yaml r = {{"requests", Yaml{{"memory", memory}}}, {"limits", Yaml{{"memory", memory}}}};
  if (arm.gpu) r["limits"]["nvidia.com/gpu"] = "1";
  return r;
}

Yaml ContainerSecurity() {
  return Yaml{{"allowPrivilegeEscalation", false},
              {"readOnlyRootFilesystem", true},
              {"runAsNonRoot", true},
              {"runAsUser", kExportUid},
              {"runAsGroup", kExportUid},
              {"capabilities", Yaml{{"drop", Yaml::array({"ALL"})}}},
              {"seccompProfile", Yaml{{"type", "RuntimeDefault"}}}};
}

Yaml TrustMounts(const ExportOptions& o) {
  if (o.allow_unsigned) return Yaml::array();
  return Yaml::array(
      {Yaml{{"name", kTrustConfigMap}, {"mountPath", kTrustDir}, {"readOnly", true}}});
}

Yaml TrustVolumes(const ExportOptions& o) {
  if (o.allow_unsigned) return Yaml::array();
  return Yaml::array(
      {Yaml{{"name", kTrustConfigMap}, {"configMap", Yaml{{"name", kTrustConfigMap}}}}});
}

std::string Replace(std::string text, std::string_view from, std::string_view to) {
  for (std::size_t at = text.find(from); at != std::string::npos;
       at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  return text;
}

// ---------------------------------------------------------------------------------------------
// kserve

Yaml ServingRuntime(const Context& c) {
  const ExportOptions& o = *c.options;
  // --trust takes several values, so it comes first: the archive KServe appends after
  // "--port 8080" can only be the positional argument.
  Yaml args = Yaml::array({"serve"});
  for (auto& a : TrustArgs(o)) args.push_back(a);
  for (auto a : {"--host", "0.0.0.0", "--port"}) args.push_back(a);
  args.push_back(std::to_string(kExportPort));
  Yaml container = {
      {"name", "kserve-container"},
      {"image", o.image},
      {"command", Yaml::array({"dlsys"})},
      // KServe appends the InferenceService's model args (the archive) to these.
      {"args", args},
      {"ports", Yaml::array({Yaml{{"containerPort", kExportPort}, {"protocol", "TCP"}}})},
      {"readinessProbe", HttpProbe("/v2/health/ready", kExportPort)},
      {"livenessProbe", HttpProbe("/v2/health/live", kExportPort)},
      {"securityContext", ContainerSecurity()},
  };
  if (Yaml mounts = TrustMounts(o); !mounts.empty()) container["volumeMounts"] = mounts;
  Yaml spec = {
      // KServe copies these to the pods it makes and scrapes them when the InferenceService
      // has serving.kserve.io/enable-prometheus-scraping.
      {"annotations", Yaml{{"prometheus.kserve.io/port", std::to_string(kExportPort)},
                           {"prometheus.kserve.io/path", "/metrics"}}},
      {"supportedModelFormats",
       Yaml::array({Yaml{{"name", kRuntimeName}, {"version", "1"}, {"autoSelect", true}}})},
      {"protocolVersions", Yaml::array({"v2"})},
      {"containers", Yaml::array({container})},
  };
  if (Yaml volumes = TrustVolumes(o); !volumes.empty()) spec["volumes"] = volumes;
  return Yaml{{"apiVersion", "serving.kserve.io/v1alpha1"},
              {"kind", "ServingRuntime"},
              {"metadata", Metadata(c, std::string(kRuntimeName),
                                    Yaml{{"app.kubernetes.io/managed-by", "dlsys"}}, Yaml())},
              {"spec", spec}};
}

Result<Yaml> InferenceService(const Context& c) {
  const ExportOptions& o = *c.options;
  // KServe's spec describes the latest revision: the candidate during a canary.
  const Arm& latest = c.arms.back();
  const VersionRecord& r = *latest.record;
  DLSYS_ASSIGN_OR_RETURN(std::string version_label, VersionLabel(r.version));
  std::string uri = Replace(Replace(o.storage_uri, "{name}", r.name), "{version}", r.version);
  Yaml model = {
      {"modelFormat", Yaml{{"name", kRuntimeName}, {"version", "1"}}},
      {"runtime", kRuntimeName},
      {"protocolVersion", "v2"},
      {"storageUri", uri},
      {"args", Yaml::array({std::string(kKServeModelsDir) + "/" + ArchiveName(r)})},
      {"resources", Resources(latest)},
  };
  Yaml predictor = Yaml::object();
  if (c.arms.size() > 1) {
    if (latest.weight != std::floor(latest.weight)) {
      return Fail(Code::kUsage,
                  "KServe's canaryTrafficPercent is a whole percent and the canary "
                  "of " +
                      o.model + " in " + o.env + " takes " + PercentText(latest.weight) +
                      "%; promote it with a whole --weight, or export --format k8s");
    }
    predictor["canaryTrafficPercent"] = static_cast<int>(std::llround(latest.weight));
  }
  predictor["model"] = model;
  Yaml annotations = Provenance(c, latest);
  annotations["serving.kserve.io/enable-prometheus-scraping"] = "true";
  if (c.arms.size() > 1) annotations["dlsys.dev/stable-version"] = c.arms[0].record->version;
  Yaml labels = {{"app.kubernetes.io/name", c.object},
                 {"app.kubernetes.io/version", version_label},
                 {"app.kubernetes.io/managed-by", "dlsys"}};
  return Yaml{{"apiVersion", "serving.kserve.io/v1beta1"},
              {"kind", "InferenceService"},
              {"metadata", Metadata(c, c.object, labels, annotations)},
              {"spec", Yaml{{"predictor", predictor}}}};
}

// ---------------------------------------------------------------------------------------------
// k8s

// Replicas per arm: the Service spreads requests evenly over ready pods, so an arm's share is
// its share of the pods. Every arm with a non-zero weight gets at least one pod, so the split
// is only as fine as the replica count allows (1 replica, 10% canary: 1 + 1 pods, 50%).
std::vector<unsigned> SplitReplicas(const std::vector<Arm>& arms, unsigned total) {
  if (arms.size() == 1) return {total};
  const double w = arms[1].weight;
  auto canary = static_cast<unsigned>(std::llround(total * w / 100.0));
  if (w > 0 && canary == 0) canary = 1;
  canary = std::min(canary, total);
  unsigned stable = total - canary;
  if (w < 100 && stable == 0) stable = 1;
  return {stable, canary};
}

Result<Yaml> K8sDeployment(const Context& c, const Arm& arm, unsigned replicas,
                           const std::string& effective_percent) {
  const ExportOptions& o = *c.options;
  DLSYS_ASSIGN_OR_RETURN(std::string version_label, VersionLabel(arm.record->version));
  Yaml selector = {{"app.kubernetes.io/name", c.object}, {"dlsys.dev/arm", arm.arm}};
  Yaml labels = {{"app.kubernetes.io/name", c.object},
                 {"app.kubernetes.io/version", version_label},
                 {"app.kubernetes.io/managed-by", "dlsys"},
                 {"dlsys.dev/arm", arm.arm}};
  Yaml annotations = Provenance(c, arm);
  if (c.arms.size() > 1) {
    annotations["dlsys.dev/weight-percent"] = PercentText(arm.weight);
    annotations["dlsys.dev/effective-percent"] = effective_percent;
  }
  Yaml args = Yaml::array({"serve", std::string(kModelsDir) + "/" + ArchiveName(*arm.record)});
  for (auto& a : TrustArgs(o)) args.push_back(a);
  for (auto a : {"--host", "0.0.0.0", "--port"}) args.push_back(a);
  args.push_back(std::to_string(kExportPort));
  Yaml container = {
      {"name", "dlsys"},
      {"image", o.image},
      {"command", Yaml::array({"dlsys"})},
      {"args", args},
      {"ports",
       Yaml::array({Yaml{{"name", "http"}, {"containerPort", kExportPort}, {"protocol", "TCP"}}})},
      {"readinessProbe", HttpProbe("/v2/health/ready", "http")},
      {"livenessProbe", HttpProbe("/v2/health/live", "http")},
      {"resources", Resources(arm)},
      {"securityContext", ContainerSecurity()},
  };
  if (Yaml mounts = TrustMounts(o); !mounts.empty()) container["volumeMounts"] = mounts;
  Yaml pod_spec = {
      {"securityContext",
       Yaml{{"runAsNonRoot", true}, {"runAsUser", kExportUid}, {"runAsGroup", kExportUid}}},
      {"containers", Yaml::array({container})},
  };
  if (Yaml volumes = TrustVolumes(o); !volumes.empty()) pod_spec["volumes"] = volumes;
  Yaml pod_annotations = {{"prometheus.io/scrape", "true"},
                          {"prometheus.io/port", std::to_string(kExportPort)},
                          {"prometheus.io/path", "/metrics"}};
  Yaml spec = {
      {"replicas", replicas},
      {"selector", Yaml{{"matchLabels", selector}}},
      {"template", Yaml{{"metadata", Yaml{{"labels", labels}, {"annotations", pod_annotations}}},
                        {"spec", pod_spec}}}};
  return Yaml{{"apiVersion", "apps/v1"},
              {"kind", "Deployment"},
              {"metadata", Metadata(c, c.object + "-" + arm.arm, labels, annotations)},
              {"spec", spec}};
}

Yaml K8sService(const Context& c) {
  Yaml labels = {{"app.kubernetes.io/name", c.object}, {"app.kubernetes.io/managed-by", "dlsys"}};
  Yaml annotations = {{"dlsys.dev/model", c.options->model},
                      {"dlsys.dev/environment", c.options->env}};
  Yaml spec = {
      {"selector", Yaml{{"app.kubernetes.io/name", c.object}}},
      {"ports",
       Yaml::array({Yaml{
           {"name", "http"}, {"port", kExportPort}, {"targetPort", "http"}, {"protocol", "TCP"}}})},
  };
  return Yaml{{"apiVersion", "v1"},
              {"kind", "Service"},
              {"metadata", Metadata(c, c.object, labels, annotations)},
              {"spec", spec}};
}

// ---------------------------------------------------------------------------------------------
// dockerfile

// The Debian packages a dlsys binary and its runtime module need at run time on bookworm: the
// shared libraries they link (readelf -d NEEDED of bin/dlsys and libdlsys_runtime.so, mapped
// with dpkg -S), the optimised BLAS behind libtorch (docs/dependencies.md), and curl for the
// HEALTHCHECK.
constexpr std::array<std::string_view, 8> kRuntimePackages = {
    "libtorch1.13",   "libopenblas0-openmp",
    "libsimdjson14",  "libspdlog1.10",
    "libyaml-cpp0.7", "libssl3",
    "libzstd1",       "curl"};

std::string Dockerfile(const Context& c) {
  const ExportOptions& o = *c.options;
  const Arm& stable = c.arms[0];
  std::string packages;
  for (auto p : kRuntimePackages) packages += " " + std::string(p);
  std::string archives;
  for (const Arm& a : c.arms) archives += " " + ArchiveName(*a.record);
  const std::string uid = std::to_string(kExportUid);
  std::string d;
  d += "# Written by dlsys deploy export: dlsys serve with the archives of one route.\n";
  d += "# Build context: this directory plus the dlsys binary and libdlsys_runtime.so from the\n";
  d += "# same build (build/bin/), copied here (docs/deploy.md).\n";
  d += "FROM debian:bookworm-slim\n";
  d += "RUN apt-get update \\\n";
  d += " && apt-get install -y --no-install-recommends" + packages + " \\\n";
  d += " && rm -rf /var/lib/apt/lists/*\n";
  d += "RUN groupadd --system --gid " + uid + " dlsys \\\n";
  d += " && useradd --system --uid " + uid + " --gid " + uid +
       " --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin dlsys\n";
  // The runtime module is looked for next to the executable.
  d += "COPY dlsys libdlsys_runtime.so /usr/local/bin/\n";
  d += "COPY" + archives + " " + std::string(kModelsDir) + "/\n";
  d += "COPY entrypoint.sh /entrypoint.sh\n";
  d += "LABEL org.opencontainers.image.title=" + DockerQuote(stable.record->name) +
       " \\\n      org.opencontainers.image.version=" + DockerQuote(stable.record->version) +
       " \\\n      org.opencontainers.image.description=" + DockerQuote(stable.description) +
       " \\\n      dev.dlsys.environment=" + DockerQuote(o.env) +
       " \\\n      dev.dlsys.digest=" + DockerQuote(stable.record->digest) + "\n";
  d += "USER " + uid + ":" + uid + "\n";
  d += "EXPOSE " + std::to_string(kExportPort) + "\n";
  d += "HEALTHCHECK CMD [\"curl\", \"-fsS\", \"-o\", \"/dev/null\", \"http://127.0.0.1:" +
       std::to_string(kExportPort) + "/v2/health/ready\"]\n";
  d += "ENTRYPOINT [\"/entrypoint.sh\"]\n";
  return d;
}

std::string Entrypoint(const Context& c) {
  const Arm& stable = c.arms[0];
  std::string args;
  for (auto& a : TrustArgs(*c.options)) args += " " + ShellQuote(a);
  std::string e;
  e += "#!/bin/sh\n";
  e += "# Written by dlsys deploy export. Serves the route's stable version on port " +
       std::to_string(kExportPort) + ";\n";
  e += "# arguments are passed on to dlsys serve (e.g. --max-batch-size 8).\n";
  if (!c.options->allow_unsigned) {
    e += "# Mount the trusted public keys (KEY.pub) at " + std::string(kTrustDir) + ".\n";
  }
  e += "set -eu\n";
  e += "exec /usr/local/bin/dlsys serve " +
       ShellQuote(std::string(kModelsDir) + "/" + ArchiveName(*stable.record)) + args +
       " --host 0.0.0.0 --port " + std::to_string(kExportPort) + " \"$@\"\n";
  return e;
}

std::string DockerIgnore(const Context& c) {
  // Only what the Dockerfile copies enters the build context.
  std::string s = "*\n!Dockerfile\n!entrypoint.sh\n!dlsys\n!libdlsys_runtime.so\n";
  for (const Arm& a : c.arms) s += "!" + ArchiveName(*a.record) + "\n";
  return s;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

std::string YamlQuote(std::string_view s) {
  std::string out = "\"";
  ForEachCodePoint(s, [&](char32_t cp) {
    switch (cp) {
      case '"':
        out += "\\\"";
        return;
      case '\\':
        out += "\\\\";
        return;
      case '\n':
        out += "\\n";
        return;
      case '\t':
        out += "\\t";
        return;
      case '\r':
        out += "\\r";
        return;
      default:
        break;
    }
    if (cp >= 0x20 && cp < 0x7F) {
      out += static_cast<char>(cp);
    } else if (cp < 0x100) {
      out += "\\x";
      AppendHex(out, cp, 2);
    } else if (cp < 0x10000) {
      out += "\\u";
      AppendHex(out, cp, 4);
    } else {
      out += "\\U";  // one escape, not a surrogate pair: YAML has no pairs
      AppendHex(out, cp, 8);
    }
  });
  out += '"';
  return out;
}

std::string ShellQuote(std::string_view s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  out += '\'';
  return out;
}

const char* ExportFormatName(ExportFormat f) {
  switch (f) {
    case ExportFormat::kKServe:
      return "kserve";
    case ExportFormat::kK8s:
      return "k8s";
    case ExportFormat::kDockerfile:
      return "dockerfile";
  }
  return "?";
}

Result<ExportFormat> ParseExportFormat(std::string_view text) {
  for (auto f : {ExportFormat::kKServe, ExportFormat::kK8s, ExportFormat::kDockerfile}) {
    if (text == ExportFormatName(f)) return f;
  }
  return Fail(Code::kUsage,
              "unknown export format '" + std::string(text) + "'; use kserve, k8s or dockerfile");
}

Result<std::vector<ExportFile>> Export(const Registry& registry, const ExportOptions& o) {
  if (o.image.empty()) return Fail(Code::kUsage, "--image must name a container image");
  if (o.replicas < 1 || o.replicas > kMaxReplicas) {
    return Fail(Code::kUsage, "--replicas must be 1.." + std::to_string(kMaxReplicas));
  }
  DLSYS_TRY(CheckEnvironmentName(o.env));
  DLSYS_ASSIGN_OR_RETURN(State state, registry.Read());
  auto env = state.environments.find(o.env);
  const Route* route = nullptr;
  if (env != state.environments.end()) {
    auto m = env->second.models.find(o.model);
    if (m != env->second.models.end()) route = &m->second;
  }
  if (route == nullptr) {
    return Fail(Code::kNotFound, o.model + " is not deployed in environment '" + o.env +
                                     "'; see 'dlsys deploy status --env " + o.env + "'");
  }
  Context c{&o, route, "", {}};
  if (o.format != ExportFormat::kDockerfile) {
    DLSYS_ASSIGN_OR_RETURN(c.object, ObjectName(o));
  }
  DLSYS_ASSIGN_OR_RETURN(c.arms, TrafficArms(state, *route, o));
  for (Arm& arm : c.arms) {
    if (arm.record->signer.empty() && !o.allow_unsigned) {
      return Fail(Code::kUsage, arm.record->name + " " + arm.record->version +
                                    " was pushed unsigned, and the exported server verifies "
                                    "signatures (--trust " +
                                    std::string(kTrustDir) +
                                    "); push a signed archive, or pass --allow-unsigned");
    }
    DLSYS_TRY(ReadArchiveFacts(registry, o, arm));
  }

  std::vector<ExportFile> files;
  switch (o.format) {
    case ExportFormat::kKServe: {
      DLSYS_ASSIGN_OR_RETURN(Yaml isvc, InferenceService(c));
      files.push_back(ExportFile::Text("servingruntime.yaml", ToYaml({ServingRuntime(c)})));
      files.push_back(ExportFile::Text("inferenceservice.yaml", ToYaml({isvc})));
      break;
    }
    case ExportFormat::kK8s: {
      std::vector<unsigned> replicas = SplitReplicas(c.arms, o.replicas);
      unsigned pods = 0;
      for (unsigned r : replicas) pods += r;
      std::vector<Yaml> deployments;
      for (std::size_t i = 0; i < c.arms.size(); ++i) {
        const double share = pods == 0 ? 0 : 100.0 * replicas[i] / pods;
        DLSYS_ASSIGN_OR_RETURN(Yaml d, K8sDeployment(c, c.arms[i], replicas[i],
                                                     PercentText(std::round(share * 100) / 100)));
        deployments.push_back(std::move(d));
      }
      files.push_back(ExportFile::Text("deployment.yaml", ToYaml(deployments)));
      files.push_back(ExportFile::Text("service.yaml", ToYaml({K8sService(c)})));
      break;
    }
    case ExportFormat::kDockerfile: {
      files.push_back(ExportFile::Text("Dockerfile", Dockerfile(c)));
      files.push_back(ExportFile::Text("entrypoint.sh", Entrypoint(c), 0755));
      files.push_back(ExportFile::Text(".dockerignore", DockerIgnore(c)));
      for (const Arm& a : c.arms) {
        ExportFile f;
        f.name = ArchiveName(*a.record);
        f.source = registry.BlobPath(a.record->digest);
        f.source_digest = a.record->digest;
        f.size = a.record->size;
        files.push_back(std::move(f));
      }
      break;
    }
  }
  return files;
}

// ---------------------------------------------------------------------------------------------
// Writing

namespace {

std::string SysError(const std::string& what, const std::string& path, int err) {
  return "cannot " + what + " " + path + ": " + core::ErrnoMessage(err);
}

// Copies a registry blob into `out`, checking the recorded digest on the way.
Result<void> CopyBlob(const ExportFile& f, core::AtomicFile& out) {
  core::UniqueFd in(::open(f.source.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
  if (!in) {
    const int err = errno;
    return Fail(err == ENOENT ? Code::kNotFound : Code::kInvalid,
                SysError("read registry blob", f.source, err));
  }
  struct stat st {};
  if (::fstat(in.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return Fail(Code::kInvalid, "registry blob " + f.source + " is not a regular file");
  }
  signing::Sha256Hasher hasher;
  std::vector<std::byte> buf(std::size_t{1} << 20);
  std::uint64_t total = 0;
  for (;;) {
    ssize_t n = ::read(in.get(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Fail(Code::kInvalid, SysError("read registry blob", f.source, errno));
    if (n == 0) break;
    std::span<const std::byte> chunk(buf.data(), static_cast<std::size_t>(n));
    hasher.Update(chunk);
    DLSYS_TRY(out.Write(chunk));
    total += static_cast<std::uint64_t>(n);
  }
  const std::string digest = "sha256:" + hasher.FinishHex();
  if (digest != f.source_digest || total != f.size) {
    return Fail(Code::kInvalid, "registry blob " + f.source + " has " + digest + " (" +
                                    std::to_string(total) + " bytes), the registry records " +
                                    f.source_digest + " (" + std::to_string(f.size) +
                                    " bytes); the registry is corrupt");
  }
  return {};
}

Result<void> FsyncDir(const std::string& dir) {
  core::UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd || ::fsync(fd.get()) != 0) {
    return Fail(Code::kInternal, SysError("flush directory", dir, errno));
  }
  return {};
}

// The state of the output directory before anything is written.
enum class Target { kAbsent, kReplace };

Result<Target> CheckTarget(const std::string& dir, bool force) {
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) {
    if (errno == ENOENT) return Target::kAbsent;
    return Fail(Code::kInvalid, SysError("examine", dir, errno));
  }
  if (S_ISLNK(st.st_mode)) {
    return Fail(Code::kInvalid, dir + " is a symbolic link; give the directory itself");
  }
  if (!S_ISDIR(st.st_mode)) {
    return Fail(Code::kInvalid,
                dir + " exists and is " + core::FileKindName(st.st_mode) + ", not a directory");
  }
  std::error_code ec;
  bool empty = true;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    empty = false;
    if (entry.is_directory(ec) && !entry.is_symlink(ec)) {
      return Fail(Code::kUsage, dir + " holds a directory (" + entry.path().filename().string() +
                                    "), so it is not an earlier export; choose another -o");
    }
  }
  if (ec) return Fail(Code::kInvalid, "cannot list " + dir + ": " + ec.message());
  if (!empty && !force) {
    return Fail(Code::kExists, dir + " exists and is not empty; pass --force to replace it");
  }
  return Target::kReplace;
}

Result<void> CheckNames(const std::vector<ExportFile>& files) {
  std::set<std::string> seen;
  for (const auto& f : files) {
    if (f.name.empty() || f.name == "." || f.name == ".." ||
        f.name.find('/') != std::string::npos || !seen.insert(f.name).second) {
      return Fail(Code::kInternal, "export file name '" + f.name + "' is not one unique name");
    }
  }
  return {};
}

Result<void> WriteAll(const std::vector<ExportFile>& files, const std::string& dir) {
  for (const auto& f : files) {
    DLSYS_ASSIGN_OR_RETURN(core::AtomicFile out,
                           core::AtomicFile::Create(dir + "/" + f.name, false, f.mode));
    if (f.source.empty()) {
      DLSYS_TRY(out.Write(f.bytes));
    } else {
      DLSYS_TRY(CopyBlob(f, out));
    }
    DLSYS_TRY(out.Commit());
  }
  return FsyncDir(dir);
}

// Puts `temp` in the place of the existing `dir`, then removes the old content.
Result<void> SwapInto(const std::string& temp, const std::string& dir, const std::string& parent) {
  if (::renameat2(AT_FDCWD, temp.c_str(), AT_FDCWD, dir.c_str(), RENAME_EXCHANGE) == 0) {
    std::error_code ec;
    std::filesystem::remove_all(temp, ec);  // the old content; symlinks are removed, not followed
    return {};
  }
  if (errno != EINVAL && errno != ENOSYS) {
    return Fail(Code::kInternal, SysError("replace", dir, errno));
  }
  // A file system without RENAME_EXCHANGE: move the old one aside first (a crash in between
  // leaves it there, under a hidden name, and no `dir`).
  std::string aside = parent + "/.dlsys-export-old-XXXXXX";
  if (::mkdtemp(aside.data()) == nullptr) {
    return Fail(Code::kInternal, SysError("create a directory in", parent, errno));
  }
  if (::rename(dir.c_str(), aside.c_str()) != 0 || ::rename(temp.c_str(), dir.c_str()) != 0) {
    const int err = errno;
    std::error_code ec;
    std::filesystem::remove(aside, ec);
    return Fail(Code::kInternal, SysError("replace", dir, err));
  }
  std::error_code ec;
  std::filesystem::remove_all(aside, ec);
  return {};
}

}  // namespace

Result<std::vector<std::string>> WriteExport(const std::vector<ExportFile>& files,
                                             const std::string& dir_arg, bool force) {
  std::string dir = dir_arg;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  const std::string base = std::filesystem::path(dir).filename().string();
  if (dir.empty() || base.empty() || base == "." || base == "..") {
    return Fail(Code::kUsage, "-o must name a directory to create, not '" + dir_arg + "'");
  }
  DLSYS_TRY(CheckNames(files));
  DLSYS_ASSIGN_OR_RETURN(Target target, CheckTarget(dir, force));
  std::string parent = std::filesystem::path(dir).parent_path().string();
  if (parent.empty()) parent = ".";

  std::string temp = parent + "/." + base + ".dlsys-export-XXXXXX";
  if (::mkdtemp(temp.data()) == nullptr) {
    const int err = errno;
    return Fail(err == ENOENT ? Code::kNotFound : Code::kInvalid,
                SysError("create a directory in", parent, err));
  }
  ::chmod(temp.c_str(), 0755);  // mkdtemp makes it 0700; an export is meant to be shared
  auto written = [&]() -> Result<void> {
    DLSYS_TRY(WriteAll(files, temp));
    if (target == Target::kAbsent) {
      if (::rename(temp.c_str(), dir.c_str()) != 0) {
        const int err = errno;
        if (err == ENOTEMPTY || err == EEXIST) {
          return Fail(Code::kExists, dir + " appeared while the export was written");
        }
        return Fail(Code::kInternal, SysError("rename into", dir, err));
      }
    } else {
      DLSYS_TRY(SwapInto(temp, dir, parent));
    }
    return FsyncDir(parent);
  }();
  if (!written) {
    std::error_code ec;
    std::filesystem::remove_all(temp, ec);
    return tl::unexpected(std::move(written).error());
  }
  std::vector<std::string> paths;
  for (const auto& f : files) paths.push_back(dir + "/" + f.name);
  return paths;
}

}  // namespace dlsys::deploy
