#include "hw/profile.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <regex>

#include "core/encoding.h"
#include "core/file.h"
#include "core/internal/json.h"
#include "hw/internal/read.h"
#include "manifest/internal/yaml_json.h"
#include "manifest/spec.h"

namespace dlsys::hw {
namespace internal {

Result<std::optional<std::uint64_t>> ReadSize(const Reader& reader, const Json& obj,
                                              const std::string& path, const char* key) {
  DLSYS_ASSIGN_OR_RETURN(const Json* v, reader.Get(obj, path, key, false));
  if (v == nullptr) return std::optional<std::uint64_t>();
  const char* expected =
      "a size: bytes as an integer, or a string with a unit such as \"4 GiB\", at most "
      "9007199254740991 bytes (8 PiB)";
  std::optional<std::uint64_t> bytes;
  if (v->is_number_unsigned()) {
    bytes = v->get<std::uint64_t>();
  } else if (v->is_string()) {
    if (auto parsed = core::ParseByteSize(v->get_ref<const std::string&>())) bytes = *parsed;
  }
  // Sizes end up in canonical JSON (manifest requirements), which carries 2^53 - 1 at most.
  if (!bytes || *bytes > static_cast<std::uint64_t>(core::kMaxSafeInteger)) {
    return reader.Bad(manifest::internal::Join(path, key), expected, v);
  }
  return bytes;
}

Result<std::optional<std::string>> ReadComputeCapability(const Reader& reader, const Json& obj,
                                                         const std::string& path, const char* key) {
  DLSYS_ASSIGN_OR_RETURN(const Json* v, reader.Get(obj, path, key, false));
  if (v == nullptr) return std::optional<std::string>();
  const std::string field = manifest::internal::Join(path, key);
  const char* expected = "a compute capability \"major.minor\" such as \"8.0\"";
  if (v->is_number_integer()) {
    // Compared in its own signedness: a huge unsigned value must not wrap into range.
    const bool in_range = v->is_number_unsigned()
                              ? v->get<std::uint64_t>() >= 1 && v->get<std::uint64_t>() <= 99
                              : v->get<std::int64_t>() >= 1 && v->get<std::int64_t>() <= 99;
    if (!in_range) return reader.Bad(field, expected, v);
    return std::optional<std::string>(std::to_string(v->get<std::int64_t>()) + ".0");
  }
  if (v->is_number_float()) {
    // YAML reads an unquoted 8.6 as a number; minor versions are single digits.
    double d = v->get<double>();
    if (!std::isfinite(d) || d < 1 || d >= 100) return reader.Bad(field, expected, v);
    auto major = static_cast<int>(std::floor(d));
    double minor = (d - major) * 10;
    if (std::fabs(minor - std::round(minor)) > 1e-6) return reader.Bad(field, expected, v);
    return std::optional<std::string>(std::to_string(major) + "." +
                                      std::to_string(static_cast<int>(std::round(minor))));
  }
  if (v->is_string()) {
    static const std::regex kCc(R"(^[1-9][0-9]?\.[0-9]$)");
    const auto& s = v->get_ref<const std::string&>();
    if (std::regex_match(s, kCc)) return std::optional<std::string>(s);
  }
  return reader.Bad(field, expected, v);
}

int CompareVersions(std::string_view a, std::string_view b) {
  auto next = [](std::string_view& s) -> std::uint64_t {
    std::uint64_t n = 0;
    std::size_t i = 0;
    for (; i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])); ++i) {
      n = std::min<std::uint64_t>(n * 10 + static_cast<unsigned>(s[i] - '0'), 1u << 30);
    }
    // Skip a suffix ("+cpu", "-rc1", "a0") up to the next dot.
    while (i < s.size() && s[i] != '.') ++i;
    s.remove_prefix(i < s.size() ? i + 1 : i);
    return n;
  };
  while (!a.empty() || !b.empty()) {
    std::uint64_t x = next(a);
    std::uint64_t y = next(b);
    if (x != y) return x < y ? -1 : 1;
  }
  return 0;
}

}  // namespace internal

namespace {

using internal::Json;
using internal::Reader;
using manifest::internal::Index;
using manifest::internal::Join;
using OJson = nlohmann::ordered_json;

constexpr core::JsonLimits kProfileLimits{kMaxProfileBytes, kMaxProfileDepth, kMaxProfileValues};

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

void SortUnique(std::vector<std::string>& v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
}

Result<const Json*> Section(const Reader& r, const Json& obj, const std::string& path,
                            const char* key) {
  DLSYS_ASSIGN_OR_RETURN(const Json* v, r.Get(obj, path, key, false));
  if (v != nullptr && !v->is_object()) return r.Bad(Join(path, key), "an object", v);
  return v;
}

Result<std::optional<std::int64_t>> OptionalInt(const Reader& r, const Json& obj,
                                                const std::string& path, const char* key,
                                                std::int64_t min, std::int64_t max) {
  DLSYS_ASSIGN_OR_RETURN(const Json* v, r.Get(obj, path, key, false));
  if (v == nullptr) return std::optional<std::int64_t>();
  DLSYS_ASSIGN_OR_RETURN(std::int64_t i, r.Int(obj, path, key, true, min, max));
  // Reader::Int checks only the maximum for non-negative JSON integers.
  if (i < min) {
    return r.Bad(Join(path, key),
                 "an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "]", v);
  }
  return std::optional<std::int64_t>(i);
}

Result<Gpu> ParseGpu(const Reader& r, const Json& g, const std::string& path) {
  if (!g.is_object()) return r.Bad(path, "an object describing one GPU", &g);
  DLSYS_TRY(r.OnlyKeys(g, path,
                       {"name", "memory", "compute_capability", "driver_version", "cuda_version"}));
  Gpu gpu;
  DLSYS_ASSIGN_OR_RETURN(gpu.name, r.String(g, path, "name", false));
  DLSYS_ASSIGN_OR_RETURN(gpu.memory_bytes, internal::ReadSize(r, g, path, "memory"));
  DLSYS_ASSIGN_OR_RETURN(gpu.compute_capability,
                         internal::ReadComputeCapability(r, g, path, "compute_capability"));
  DLSYS_ASSIGN_OR_RETURN(gpu.driver_version, r.String(g, path, "driver_version", false));
  DLSYS_ASSIGN_OR_RETURN(gpu.cuda_version, r.String(g, path, "cuda_version", false));
  return gpu;
}

Result<TargetProfile> FromJson(const Json& root, const std::string& display) {
  Reader r(display);
  if (!root.is_object()) {
    return Fail(Code::kInvalid, display +
                                    ": expected a map of profile fields (name, os, arch, "
                                    "cpu, memory, gpus, runtime), found " +
                                    manifest::internal::TypeName(root));
  }
  DLSYS_TRY(r.OnlyKeys(root, "", {"name", "os", "arch", "cpu", "memory", "gpus", "runtime"}));
  TargetProfile p;
  DLSYS_ASSIGN_OR_RETURN(p.name, r.String(root, "", "name", false));
  DLSYS_ASSIGN_OR_RETURN(p.os, r.String(root, "", "os", false));
  DLSYS_ASSIGN_OR_RETURN(p.arch, r.String(root, "", "arch", false));

  DLSYS_ASSIGN_OR_RETURN(const Json* cpu, Section(r, root, "", "cpu"));
  if (cpu != nullptr) {
    DLSYS_TRY(r.OnlyKeys(*cpu, "cpu", {"model", "cores", "features"}));
    DLSYS_ASSIGN_OR_RETURN(p.cpu_model, r.String(*cpu, "cpu", "model", false));
    DLSYS_ASSIGN_OR_RETURN(auto cores, OptionalInt(r, *cpu, "cpu", "cores", 1, 1 << 20));
    if (cores) p.cores = static_cast<int>(*cores);
    DLSYS_ASSIGN_OR_RETURN(const Json* features, r.Get(*cpu, "cpu", "features", false));
    if (features != nullptr) {
      DLSYS_ASSIGN_OR_RETURN(auto list, r.Strings(*cpu, "cpu", "features", true));
      for (auto& f : list) f = Lower(std::move(f));
      SortUnique(list);
      p.cpu_features = std::move(list);
    }
  }

  DLSYS_ASSIGN_OR_RETURN(const Json* memory, Section(r, root, "", "memory"));
  if (memory != nullptr) {
    DLSYS_TRY(r.OnlyKeys(*memory, "memory", {"total", "available"}));
    DLSYS_ASSIGN_OR_RETURN(p.memory_total_bytes, internal::ReadSize(r, *memory, "memory", "total"));
    DLSYS_ASSIGN_OR_RETURN(p.memory_available_bytes,
                           internal::ReadSize(r, *memory, "memory", "available"));
  }

  DLSYS_ASSIGN_OR_RETURN(const Json* gpus, r.Get(root, "", "gpus", false));
  if (gpus != nullptr) {
    if (!gpus->is_array()) {
      return r.Bad("gpus", "a list of GPUs ([] for a machine without one)", gpus);
    }
    std::vector<Gpu> list;
    for (std::size_t i = 0; i < gpus->size(); ++i) {
      DLSYS_ASSIGN_OR_RETURN(Gpu g, ParseGpu(r, (*gpus)[i], Index("gpus", i)));
      list.push_back(std::move(g));
    }
    p.gpus = std::move(list);
  }

  DLSYS_ASSIGN_OR_RETURN(const Json* rt, Section(r, root, "", "runtime"));
  if (rt != nullptr) {
    DLSYS_TRY(r.OnlyKeys(*rt, "runtime",
                         {"libtorch_version", "max_file_format_version", "operators", "blas"}));
    RuntimeInfo info;
    DLSYS_ASSIGN_OR_RETURN(info.libtorch_version,
                           r.String(*rt, "runtime", "libtorch_version", false));
    DLSYS_ASSIGN_OR_RETURN(info.max_file_format_version,
                           OptionalInt(r, *rt, "runtime", "max_file_format_version", 0, 1 << 20));
    DLSYS_ASSIGN_OR_RETURN(info.operators, r.Strings(*rt, "runtime", "operators", false));
    SortUnique(info.operators);
    DLSYS_ASSIGN_OR_RETURN(const Json* blas, Section(r, *rt, "runtime", "blas"));
    if (blas != nullptr) {
      DLSYS_TRY(r.OnlyKeys(*blas, "runtime.blas", {"name", "library", "detail"}));
      RuntimeBlas b;
      DLSYS_ASSIGN_OR_RETURN(b.name, r.String(*blas, "runtime.blas", "name", false));
      b.name = Lower(std::move(b.name));
      DLSYS_ASSIGN_OR_RETURN(b.library, r.String(*blas, "runtime.blas", "library", false));
      DLSYS_ASSIGN_OR_RETURN(b.detail, r.String(*blas, "runtime.blas", "detail", false));
      info.blas = std::move(b);
    }
    p.runtime = std::move(info);
  }
  return p;
}

OJson ToOrderedJson(const TargetProfile& p) {
  OJson j = OJson::object();
  if (!p.name.empty()) j["name"] = p.name;
  if (!p.os.empty()) j["os"] = p.os;
  if (!p.arch.empty()) j["arch"] = p.arch;
  OJson cpu = OJson::object();
  if (!p.cpu_model.empty()) cpu["model"] = p.cpu_model;
  if (p.cores) cpu["cores"] = *p.cores;
  if (p.cpu_features) cpu["features"] = *p.cpu_features;
  if (!cpu.empty()) j["cpu"] = std::move(cpu);
  OJson memory = OJson::object();
  if (p.memory_total_bytes) memory["total"] = *p.memory_total_bytes;
  if (p.memory_available_bytes) memory["available"] = *p.memory_available_bytes;
  if (!memory.empty()) j["memory"] = std::move(memory);
  if (p.gpus) {
    OJson gpus = OJson::array();
    for (const Gpu& g : *p.gpus) {
      OJson o = OJson::object();
      if (!g.name.empty()) o["name"] = g.name;
      if (g.memory_bytes) o["memory"] = *g.memory_bytes;
      if (g.compute_capability) o["compute_capability"] = *g.compute_capability;
      if (!g.driver_version.empty()) o["driver_version"] = g.driver_version;
      if (!g.cuda_version.empty()) o["cuda_version"] = g.cuda_version;
      gpus.push_back(std::move(o));
    }
    j["gpus"] = std::move(gpus);
  }
  if (p.runtime) {
    OJson rt = OJson::object();
    if (!p.runtime->libtorch_version.empty()) rt["libtorch_version"] = p.runtime->libtorch_version;
    if (p.runtime->max_file_format_version) {
      rt["max_file_format_version"] = *p.runtime->max_file_format_version;
    }
    if (p.runtime->blas) {
      // Before operators: a probed profile lists ~2000 of them, and this reads better first.
      OJson blas = OJson::object();
      if (!p.runtime->blas->name.empty()) blas["name"] = p.runtime->blas->name;
      if (!p.runtime->blas->library.empty()) blas["library"] = p.runtime->blas->library;
      if (!p.runtime->blas->detail.empty()) blas["detail"] = p.runtime->blas->detail;
      rt["blas"] = std::move(blas);
    }
    if (!p.runtime->operators.empty()) rt["operators"] = p.runtime->operators;
    j["runtime"] = std::move(rt);
  }
  return j;
}

// True if YAML's core schema would read the plain scalar as something other than this string.
bool NeedsQuotes(const std::string& s) {
  static const std::regex kNonString(
      R"(^([-+]?[0-9]+|[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?|~|null|Null|NULL|)"
      R"(true|True|TRUE|false|False|FALSE|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN))?$)");
  // Control characters (a stray \r from a Windows file) would be written raw in a plain scalar
  // and read back as line breaks: double quotes make the emitter escape them.
  const bool control = std::any_of(
      s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
  return control || std::regex_match(s, kNonString) || s.front() == ' ' || s.back() == ' ';
}

void Emit(YAML::Emitter& out, const OJson& j) {
  switch (j.type()) {
    case OJson::value_t::object:
      out << YAML::BeginMap;
      for (const auto& [k, v] : j.items()) {
        out << YAML::Key << k << YAML::Value;
        Emit(out, v);
      }
      out << YAML::EndMap;
      break;
    case OJson::value_t::array: {
      // Short lists of scalars (CPU features of an edge device, []) read best on one line.
      bool flow = j.size() <= 16 &&
                  std::all_of(j.begin(), j.end(), [](const OJson& e) { return e.is_primitive(); });
      if (flow) out << YAML::Flow;
      out << YAML::BeginSeq;
      for (const auto& e : j) Emit(out, e);
      out << YAML::EndSeq;
      break;
    }
    case OJson::value_t::string: {
      const auto& s = j.get_ref<const std::string&>();
      if (s.empty() || NeedsQuotes(s)) out << YAML::DoubleQuoted;
      out << s;
      break;
    }
    case OJson::value_t::number_unsigned:
      out << j.get<std::uint64_t>();
      break;
    case OJson::value_t::number_integer:
      out << j.get<std::int64_t>();
      break;
    case OJson::value_t::boolean:
      out << j.get<bool>();
      break;
    default:
      out << YAML::Null;
      break;
  }
}

}  // namespace

Result<TargetProfile> ParseProfile(std::string_view yaml, const std::string& display) {
  DLSYS_ASSIGN_OR_RETURN(Json root,
                         manifest::internal::YamlToJsonValue(yaml, display, kProfileLimits));
  return FromJson(root, display);
}

Result<TargetProfile> LoadProfile(const std::string& path) {
  DLSYS_ASSIGN_OR_RETURN(std::string text, core::ReadFile(path, kMaxProfileBytes));
  return ParseProfile(text, path);
}

std::string ProfileToYaml(const TargetProfile& profile) {
  YAML::Emitter out;
  out.SetIndent(2);
  // Non-ASCII is written as \u escapes in double quotes: raw, NEL (U+0085) and the Unicode line
  // and paragraph separators are line breaks to a YAML reader and would not read back.
  out.SetOutputCharset(YAML::EscapeNonAscii);
  Emit(out, ToOrderedJson(profile));
  std::string s = out.c_str();
  if (s == "{}" || s.empty()) return "{}\n";
  return s + "\n";
}

std::string ProfileToJson(const TargetProfile& profile) {
  return ToOrderedJson(profile).dump(2, ' ', false, OJson::error_handler_t::replace) + "\n";
}

}  // namespace dlsys::hw
