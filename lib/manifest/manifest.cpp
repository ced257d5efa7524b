#include "manifest/manifest.h"

#include <algorithm>
#include <optional>
#include <regex>
#include <set>

#include "archive/archive.h"
#include "core/checked.h"
#include "core/encoding.h"
#include "core/internal/json.h"
#include "core/text.h"
#include "manifest/internal/json_read.h"

namespace dlsys::manifest {
namespace {

using internal::Find;
using internal::Index;
using internal::Join;
using internal::Json;

static_assert(kMaxCreatedEpoch == archive::kMaxMtime, "created must fit every tar mtime");
static_assert(kMaxPathBytes == archive::kMaxPathBytes);

constexpr core::JsonLimits kManifestLimits{kMaxManifestBytes, kMaxManifestDepth,
                                           kMaxManifestValues};
constexpr std::uint64_t kMaxSafe = static_cast<std::uint64_t>(core::kMaxSafeInteger);
constexpr std::size_t kDTypeCount = 10;

std::string Quoted(std::string_view s) { return core::Truncate(core::TerminalSafe(s), 80); }

// ---- Serialize ------------------------------------------------------------------------------

Json TensorJson(const TensorSpec& t) {
  return Json{{"name", t.name}, {"dtype", t.dtype}, {"shape", t.shape}};
}

Json ExampleTensorJson(const ExampleTensor& t) {
  Json j = TensorJson(t.tensor);
  j["path"] = t.path;
  return j;
}

Json GroupJson(const runtime::TensorGroupStats& g) {
  return Json{{"count", g.count}, {"elements", g.elements}, {"bytes_by_dtype", g.bytes_by_dtype}};
}

Json SummaryJson(const runtime::ModelSummary& s) {
  Json methods = Json::array();
  for (const auto& m : s.methods) {
    methods.push_back(Json{{"name", m.name}, {"schema", m.schema}, {"args", m.arg_names}});
  }
  return Json{{"methods", methods},
              {"parameters", GroupJson(s.parameters)},
              {"buffers", GroupJson(s.buffers)},
              {"operators", s.operators},
              {"file_format_version", s.file_format_version},
              {"runtime_version", s.runtime_version},
              {"devices", s.devices}};
}

Json FileJson(const FileRecord& f) {
  Json j{{"path", f.path}, {"size", f.size}, {"mode", f.mode}};
  if (f.shard_bytes > 0) {
    j["shard_bytes"] = f.shard_bytes;
    j["shards"] = f.shards;
  } else {
    j["sha256"] = f.sha256;
  }
  return j;
}

// A free-form section given as JSON text ("" = absent).
Result<Json> SectionJson(const char* field, const std::string& text) {
  if (text.empty()) return Json::object();
  const std::string what = std::string("manifest field '") + field + "'";
  DLSYS_ASSIGN_OR_RETURN(Json j, core::ParseJson(text, kManifestLimits, what));
  if (!j.is_object()) return Fail(Code::kInvalid, what + ": expected a JSON object");
  return j;
}

// ---- Parse ----------------------------------------------------------------------------------

bool IsHexDigest(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

// The dtype a manifest name stands for; manifests use the dtype names only (not "FP32").
std::optional<runtime::DType> ManifestDType(const std::string& name) {
  auto dtype = runtime::ParseDType(name);
  if (!dtype || runtime::DTypeName(*dtype) != name) return std::nullopt;
  return *dtype;
}

// elements x dtype size of a concrete shape, checked.
core::ByteSize TensorBytes(const std::vector<std::int64_t>& shape, runtime::DType dtype) {
  core::ByteSize bytes(runtime::DTypeSize(dtype));
  for (std::int64_t d : shape) bytes *= static_cast<std::uint64_t>(d);
  return bytes;
}

bool IsLeap(std::int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int DaysInMonth(std::int64_t y, int m) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && IsLeap(y) ? 29 : kDays[m - 1];
}

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
std::int64_t DaysFromCivil(std::int64_t y, int m, int d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const std::int64_t yoe = y - era * 400;
  const std::int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const std::int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

// "YYYY-MM-DDTHH:MM:SSZ" to seconds since the epoch; nullopt unless a real calendar time.
std::optional<std::int64_t> ParseUtcSeconds(std::string_view s) {
  static constexpr std::string_view kPattern = "dddd-dd-ddTdd:dd:ddZ";
  if (s.size() != kPattern.size()) return std::nullopt;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const bool digit = s[i] >= '0' && s[i] <= '9';
    if (kPattern[i] == 'd' ? !digit : s[i] != kPattern[i]) return std::nullopt;
  }
  const auto num = [&](std::size_t pos, std::size_t len) {
    int v = 0;
    for (std::size_t i = pos; i < pos + len; ++i) v = v * 10 + (s[i] - '0');
    return v;
  };
  const int year = num(0, 4), month = num(5, 2), day = num(8, 2);
  const int hour = num(11, 2), minute = num(14, 2), second = num(17, 2);
  if (month < 1 || month > 12 || day < 1 || day > DaysInMonth(year, month)) return std::nullopt;
  if (hour > 23 || minute > 59 || second > 59) return std::nullopt;
  return DaysFromCivil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second;
}

class ManifestParser {
 public:
  Result<Manifest> Run(const Json& root) {
    if (!root.is_object()) return r_.Bad("(root)", "an object", &root);
    DLSYS_TRY(r_.ExactKeys(
        root, "", {"format_version", "name",         "version",      "description",     "owner",
                   "license",        "created",      "lineage",      "hyperparameters", "training",
                   "metrics",        "dependencies", "requirements", "entry_point",     "inputs",
                   "outputs",        "model",        "examples",     "files",           "tool",
                   "framework"}));
    Manifest m;
    DLSYS_ASSIGN_OR_RETURN(auto fv, r_.Int(root, "", "format_version", true, 1, 1000));
    if (fv != kFormatVersion) {
      return Fail(Code::kInvalid, "manifest format_version is " + std::to_string(fv) +
                                      "; this dlsys reads version " +
                                      std::to_string(kFormatVersion) + " (upgrade dlsys)");
    }
    m.format_version = static_cast<int>(fv);
    DLSYS_ASSIGN_OR_RETURN(m.name, r_.String(root, "", "name", true, kMaxNameBytes));
    if (auto ok = CheckName(m.name); !ok) {
      return r_.Bad("name", "1-128 characters of a-z 0-9 . _ -", Find(root, "name"));
    }
    DLSYS_ASSIGN_OR_RETURN(m.version, r_.String(root, "", "version", true, kMaxVersionBytes));
    if (!core::IsSemver(m.version))
      return r_.Bad("version", "a SemVer version", Find(root, "version"));
    DLSYS_ASSIGN_OR_RETURN(m.description,
                           r_.String(root, "", "description", true, kMaxDescriptionBytes));
    DLSYS_ASSIGN_OR_RETURN(m.owner, r_.String(root, "", "owner", true, kMaxTextBytes));
    DLSYS_ASSIGN_OR_RETURN(m.license, r_.String(root, "", "license", true, kMaxTextBytes));
    DLSYS_ASSIGN_OR_RETURN(m.created, r_.String(root, "", "created", true, 64));
    DLSYS_TRY(CreatedEpoch(m));
    DLSYS_ASSIGN_OR_RETURN(m.lineage_json, r_.Object(root, "", "lineage"));
    DLSYS_ASSIGN_OR_RETURN(m.hyperparameters_json, r_.Object(root, "", "hyperparameters"));
    DLSYS_ASSIGN_OR_RETURN(m.training_json, r_.Object(root, "", "training"));
    DLSYS_ASSIGN_OR_RETURN(m.metrics_json, r_.Object(root, "", "metrics"));
    DLSYS_ASSIGN_OR_RETURN(m.dependencies_json, r_.Object(root, "", "dependencies"));
    DLSYS_ASSIGN_OR_RETURN(m.requirements_json, r_.Object(root, "", "requirements"));

    DLSYS_TRY(Framework(root));
    DLSYS_ASSIGN_OR_RETURN(const Json* entry, r_.Get(root, "", "entry_point", true));
    if (!entry->is_object()) return r_.Bad("entry_point", "an object", entry);
    DLSYS_TRY(r_.ExactKeys(*entry, "entry_point", {"file", "method"}));
    DLSYS_ASSIGN_OR_RETURN(m.entry_file,
                           r_.String(*entry, "entry_point", "file", true, kMaxPathBytes));
    DLSYS_ASSIGN_OR_RETURN(m.entry_method, r_.String(*entry, "entry_point", "method", true,
                                                     kMaxIdentifierBytes, true));

    DLSYS_ASSIGN_OR_RETURN(m.inputs, Tensors(root, "", "inputs"));
    DLSYS_ASSIGN_OR_RETURN(m.outputs, Tensors(root, "", "outputs"));
    DLSYS_ASSIGN_OR_RETURN(const Json* model, r_.Get(root, "", "model", true));
    DLSYS_ASSIGN_OR_RETURN(m.model, Summary(*model));
    if (std::none_of(m.model.methods.begin(), m.model.methods.end(),
                     [&](const runtime::MethodInfo& mi) { return mi.name == m.entry_method; })) {
      return r_.Problem("entry_point.method",
                        "'" + Quoted(m.entry_method) + "' is not among model.methods");
    }
    DLSYS_TRY(Files(root, m));
    DLSYS_TRY(Examples(root, m));
    if (m.entry_file != kEntryFile) {
      return r_.Problem(
          "entry_point.file",
          "'" + Quoted(m.entry_file) + "' is not 'model.pt', where pack always stores the model");
    }
    if (FindFile(m, m.entry_file) == nullptr) {
      return r_.Problem("entry_point.file",
                        "'" + Quoted(m.entry_file) + "' is not listed in 'files'");
    }
    DLSYS_ASSIGN_OR_RETURN(const Json* tool, r_.Get(root, "", "tool", true));
    if (!tool->is_object()) return r_.Bad("tool", "an object", tool);
    DLSYS_TRY(r_.ExactKeys(*tool, "tool", {"name", "version"}));
    DLSYS_ASSIGN_OR_RETURN(auto tool_name, r_.String(*tool, "tool", "name", true, 64));
    if (tool_name != "dlsys") return r_.Bad("tool.name", "\"dlsys\"", Find(*tool, "name"));
    DLSYS_ASSIGN_OR_RETURN(m.tool_version,
                           r_.String(*tool, "tool", "version", true, kMaxToolVersionBytes));
    return m;
  }

 private:
  Result<void> Framework(const Json& root) {
    DLSYS_ASSIGN_OR_RETURN(const Json* fw, r_.Get(root, "", "framework", true));
    if (!fw->is_object()) return r_.Bad("framework", "an object", fw);
    DLSYS_TRY(r_.ExactKeys(*fw, "framework", {"format", "name"}));
    DLSYS_ASSIGN_OR_RETURN(auto format, r_.String(*fw, "framework", "format", true, 64));
    if (format != "torchscript") {
      return r_.Bad("framework.format", "\"torchscript\"", Find(*fw, "format"));
    }
    DLSYS_ASSIGN_OR_RETURN(auto name, r_.String(*fw, "framework", "name", true, 64));
    if (name != "pytorch") return r_.Bad("framework.name", "\"pytorch\"", Find(*fw, "name"));
    return {};
  }

  // A tensor schema; example tensors (`path` set) have concrete shapes and a payload file.
  Result<TensorSpec> Tensor(const Json& j, const std::string& path, bool example) {
    if (!j.is_object()) {
      return r_.Bad(
          path,
          example ? "an object with dtype, name, path, shape" : "an object with dtype, name, shape",
          &j);
    }
    if (example) {
      DLSYS_TRY(r_.ExactKeys(j, path, {"dtype", "name", "path", "shape"}));
    } else {
      DLSYS_TRY(r_.ExactKeys(j, path, {"dtype", "name", "shape"}));
    }
    TensorSpec t;
    DLSYS_ASSIGN_OR_RETURN(t.name, r_.String(j, path, "name", true, kMaxIdentifierBytes, true));
    DLSYS_ASSIGN_OR_RETURN(t.dtype, r_.String(j, path, "dtype", true, 32));
    if (!ManifestDType(t.dtype)) {
      return r_.Bad(Join(path, "dtype"),
                    "a dtype name (float32 float64 float16 bfloat16 int8 uint8 int16 int32 "
                    "int64 bool)",
                    Find(j, "dtype"));
    }
    DLSYS_ASSIGN_OR_RETURN(t.shape, r_.Shape(j, path, "shape", !example, kMaxShapeRank));
    return t;
  }

  Result<std::vector<TensorSpec>> Tensors(const Json& obj, const std::string& path,
                                          const char* key) {
    std::vector<TensorSpec> out;
    DLSYS_ASSIGN_OR_RETURN(const Json* arr, r_.Get(obj, path, key, true));
    if (!arr->is_array()) return r_.Bad(Join(path, key), "an array of tensors", arr);
    std::set<std::string> names;
    for (std::size_t i = 0; i < arr->size(); ++i) {
      DLSYS_ASSIGN_OR_RETURN(auto t, Tensor((*arr)[i], Index(Join(path, key), i), false));
      if (!names.insert(t.name).second) {
        return r_.Problem(Index(Join(path, key), i) + ".name",
                          "tensor '" + Quoted(t.name) + "' appears twice");
      }
      out.push_back(std::move(t));
    }
    return out;
  }

  Result<runtime::TensorGroupStats> Group(const Json& j, const std::string& path,
                                          core::ByteSize& total_bytes) {
    runtime::TensorGroupStats g;
    if (!j.is_object()) return r_.Bad(path, "an object", &j);
    DLSYS_TRY(r_.ExactKeys(j, path, {"bytes_by_dtype", "count", "elements"}));
    DLSYS_ASSIGN_OR_RETURN(g.count, r_.Int(j, path, "count", true, 0, core::kMaxSafeInteger));
    DLSYS_ASSIGN_OR_RETURN(g.elements, r_.Int(j, path, "elements", true, 0, core::kMaxSafeInteger));
    const std::string by_path = Join(path, "bytes_by_dtype");
    DLSYS_ASSIGN_OR_RETURN(const Json* by, r_.Get(j, path, "bytes_by_dtype", true));
    if (!by->is_object() || by->size() > kDTypeCount) {
      return r_.Bad(by_path, "an object mapping dtype names to byte counts", by);
    }
    for (const auto& [k, v] : by->items()) {
      if (!ManifestDType(k)) {
        return r_.Problem(Join(by_path, Quoted(k)),
                          "'" + Quoted(k) + "' is not a dtype name (float32, int64, ...)");
      }
      DLSYS_ASSIGN_OR_RETURN(auto bytes,
                             r_.Int(*by, by_path, k.c_str(), true, 0, core::kMaxSafeInteger));
      g.bytes_by_dtype[k] = bytes;
      total_bytes += core::ByteSize(static_cast<std::uint64_t>(bytes));
    }
    return g;
  }

  Result<runtime::ModelSummary> Summary(const Json& j) {
    runtime::ModelSummary s;
    if (!j.is_object()) return r_.Bad("model", "an object", &j);
    DLSYS_TRY(r_.ExactKeys(j, "model",
                           {"buffers", "devices", "file_format_version", "methods", "operators",
                            "parameters", "runtime_version"}));
    DLSYS_ASSIGN_OR_RETURN(const Json* methods, r_.Get(j, "model", "methods", true));
    if (!methods->is_array()) return r_.Bad("model.methods", "an array", methods);
    std::set<std::string> method_names;
    for (std::size_t i = 0; i < methods->size(); ++i) {
      const Json& mj = (*methods)[i];
      const std::string path = Index("model.methods", i);
      if (!mj.is_object()) return r_.Bad(path, "an object", &mj);
      DLSYS_TRY(r_.ExactKeys(mj, path, {"args", "name", "schema"}));
      runtime::MethodInfo m;
      DLSYS_ASSIGN_OR_RETURN(m.name, r_.String(mj, path, "name", true, kMaxIdentifierBytes, true));
      if (!method_names.insert(m.name).second) {
        return r_.Problem(path + ".name", "method '" + Quoted(m.name) + "' appears twice");
      }
      DLSYS_ASSIGN_OR_RETURN(m.schema, r_.String(mj, path, "schema", true, kMaxSchemaBytes));
      DLSYS_ASSIGN_OR_RETURN(m.arg_names, r_.Strings(mj, path, "args", true, kMaxIdentifierBytes));
      s.methods.push_back(std::move(m));
    }
    core::ByteSize weight_bytes;
    DLSYS_ASSIGN_OR_RETURN(const Json* params, r_.Get(j, "model", "parameters", true));
    DLSYS_ASSIGN_OR_RETURN(s.parameters, Group(*params, "model.parameters", weight_bytes));
    DLSYS_ASSIGN_OR_RETURN(const Json* buffers, r_.Get(j, "model", "buffers", true));
    DLSYS_ASSIGN_OR_RETURN(s.buffers, Group(*buffers, "model.buffers", weight_bytes));
    if (!weight_bytes.FitsIn(kMaxSafe)) {
      return r_.Problem(
          "model.buffers.bytes_by_dtype",
          "parameters and buffers together have more than " + std::to_string(kMaxSafe) + " bytes");
    }
    DLSYS_ASSIGN_OR_RETURN(s.operators,
                           r_.Strings(j, "model", "operators", true, kMaxIdentifierBytes));
    for (std::size_t i = 1; i < s.operators.size(); ++i) {
      if (!(s.operators[i - 1] < s.operators[i])) {
        return r_.Problem(Index("model.operators", i),
                          "operators must be sorted without duplicates, but '" +
                              Quoted(s.operators[i]) + "' follows '" + Quoted(s.operators[i - 1]) +
                              "'");
      }
    }
    DLSYS_ASSIGN_OR_RETURN(s.file_format_version,
                           r_.Int(j, "model", "file_format_version", true, 0, 1 << 20));
    DLSYS_ASSIGN_OR_RETURN(s.runtime_version,
                           r_.String(j, "model", "runtime_version", true, kMaxToolVersionBytes));
    DLSYS_ASSIGN_OR_RETURN(s.devices, r_.Strings(j, "model", "devices", true, kMaxIdentifierBytes));
    return s;
  }

  Result<FileRecord> File(const Json& fj, const std::string& path) {
    if (!fj.is_object()) return r_.Bad(path, "an object", &fj);
    FileRecord f;
    DLSYS_ASSIGN_OR_RETURN(f.path, r_.String(fj, path, "path", true, kMaxPathBytes));
    if (auto ok = archive::CheckEntryPath(f.path); !ok) {
      return r_.Problem(path + ".path", ok.error().message);
    }
    if (f.path == kManifestPath || f.path == kSignaturePath) {
      return r_.Problem(path + ".path", "'" + f.path + "' is reserved for dlsys's own entries");
    }
    DLSYS_ASSIGN_OR_RETURN(
        auto size, r_.Int(fj, path, "size", true, 0, static_cast<std::int64_t>(kMaxFileBytes)));
    f.size = static_cast<std::uint64_t>(size);
    const bool sharded = f.size > kShardBytes;
    if (sharded) {
      if (Find(fj, "sha256") != nullptr) {
        return r_.Problem(path + ".sha256", "a file of " + std::to_string(f.size) +
                                                " bytes (more than " + std::to_string(kShardBytes) +
                                                ") has 'shard_bytes' and 'shards', not 'sha256'");
      }
      DLSYS_TRY(r_.ExactKeys(fj, path, {"mode", "path", "shard_bytes", "shards", "size"}));
    } else {
      if (Find(fj, "shards") != nullptr || Find(fj, "shard_bytes") != nullptr) {
        return r_.Problem(path + ".shards",
                          "a file of " + std::to_string(f.size) + " bytes (at most " +
                              std::to_string(kShardBytes) +
                              ") has one 'sha256' and no 'shard_bytes' or 'shards'");
      }
      DLSYS_TRY(r_.ExactKeys(fj, path, {"mode", "path", "sha256", "size"}));
    }
    DLSYS_ASSIGN_OR_RETURN(auto mode, r_.Int(fj, path, "mode", true, 0, 07777));
    if (mode != kFileMode) {
      return r_.Bad(path + ".mode", "420 (0644, the only mode dlsys writes)", Find(fj, "mode"));
    }
    f.mode = static_cast<unsigned>(mode);
    if (!sharded) {
      DLSYS_ASSIGN_OR_RETURN(f.sha256, r_.String(fj, path, "sha256", true, 64));
      if (!IsHexDigest(f.sha256)) {
        return r_.Bad(path + ".sha256", "64 lower-case hex digits", Find(fj, "sha256"));
      }
      return f;
    }
    DLSYS_ASSIGN_OR_RETURN(auto sb,
                           r_.Int(fj, path, "shard_bytes", true, 0, core::kMaxSafeInteger));
    if (static_cast<std::uint64_t>(sb) != kShardBytes) {
      return r_.Bad(path + ".shard_bytes", std::to_string(kShardBytes), Find(fj, "shard_bytes"));
    }
    f.shard_bytes = kShardBytes;
    // ceil(size / kShardBytes) without the size + kShardBytes - 1 that could wrap.
    const std::uint64_t want = f.size / kShardBytes + (f.size % kShardBytes != 0 ? 1 : 0);
    DLSYS_ASSIGN_OR_RETURN(const Json* shards, r_.Get(fj, path, "shards", true));
    if (!shards->is_array() || shards->size() != want) {
      return r_.Problem(
          path + ".shards",
          "a file of " + std::to_string(f.size) + " bytes in shards of " +
              std::to_string(kShardBytes) + " needs " + std::to_string(want) +
              " shard digests, found " +
              (shards->is_array() ? std::to_string(shards->size()) : internal::TypeName(*shards)));
    }
    for (std::size_t k = 0; k < shards->size(); ++k) {
      const Json& d = (*shards)[k];
      if (!d.is_string() || !IsHexDigest(d.get_ref<const std::string&>())) {
        return r_.Bad(Index(path + ".shards", k), "64 lower-case hex digits", &d);
      }
      f.shards.push_back(d.get<std::string>());
    }
    return f;
  }

  Result<void> Files(const Json& root, Manifest& m) {
    DLSYS_ASSIGN_OR_RETURN(const Json* files, r_.Get(root, "", "files", true));
    if (!files->is_array() || files->empty() || files->size() > kMaxFiles) {
      return r_.Bad("files", "an array of 1 to " + std::to_string(kMaxFiles) + " files", files);
    }
    std::vector<std::string> paths;
    paths.reserve(files->size());
    for (std::size_t i = 0; i < files->size(); ++i) {
      const std::string path = Index("files", i);
      DLSYS_ASSIGN_OR_RETURN(FileRecord f, File((*files)[i], path));
      if (!m.files.empty() && !(m.files.back().path < f.path)) {
        return r_.Problem(path + ".path",
                          "files must be sorted by path (byte order) without "
                          "duplicates, but '" +
                              f.path + "' follows '" + m.files.back().path + "'");
      }
      paths.push_back(f.path);
      m.files.push_back(std::move(f));
    }
    if (auto ok = CheckPathSet(paths); !ok) return r_.Problem("files", ok.error().message);
    return {};
  }

  Result<std::vector<ExampleTensor>> ExampleTensors(const Json& ej, const std::string& path,
                                                    const char* key, const Manifest& m) {
    std::vector<ExampleTensor> out;
    DLSYS_ASSIGN_OR_RETURN(const Json* arr, r_.Get(ej, path, key, true));
    if (!arr->is_array()) return r_.Bad(Join(path, key), "an array of tensors", arr);
    std::set<std::string> names;
    for (std::size_t i = 0; i < arr->size(); ++i) {
      const std::string tp = Index(Join(path, key), i);
      const Json& tj = (*arr)[i];
      ExampleTensor t;
      DLSYS_ASSIGN_OR_RETURN(t.tensor, Tensor(tj, tp, true));
      if (!names.insert(t.tensor.name).second) {
        return r_.Problem(tp + ".name", "tensor '" + Quoted(t.tensor.name) + "' appears twice");
      }
      DLSYS_ASSIGN_OR_RETURN(t.path, r_.String(tj, tp, "path", true, kMaxPathBytes));
      const FileRecord* file = FindFile(m, t.path);
      if (file == nullptr) {
        return r_.Problem(tp + ".path", "'" + Quoted(t.path) + "' is not listed in 'files'");
      }
      const core::ByteSize want = TensorBytes(t.tensor.shape, *ManifestDType(t.tensor.dtype));
      if (want != file->size) {
        return r_.Problem(tp + ".shape", "shape " + ShapeText(t.tensor.shape) + " of " +
                                             t.tensor.dtype + " needs " +
                                             (want.overflowed() ? std::string("more than 2^64")
                                                                : std::to_string(*want.value())) +
                                             " bytes, but '" + t.path + "' has " +
                                             std::to_string(file->size));
      }
      out.push_back(std::move(t));
    }
    return out;
  }

  Result<void> Examples(const Json& root, Manifest& m) {
    DLSYS_ASSIGN_OR_RETURN(const Json* arr, r_.Get(root, "", "examples", true));
    if (!arr->is_array()) return r_.Bad("examples", "an array", arr);
    std::set<std::string> names;
    for (std::size_t i = 0; i < arr->size(); ++i) {
      const Json& ej = (*arr)[i];
      const std::string path = Index("examples", i);
      if (!ej.is_object()) return r_.Bad(path, "an object", &ej);
      DLSYS_TRY(r_.ExactKeys(ej, path, {"atol", "inputs", "name", "outputs", "rtol"}));
      Example e;
      DLSYS_ASSIGN_OR_RETURN(e.name, r_.String(ej, path, "name", true, kMaxNameBytes));
      if (!CheckName(e.name) || !names.insert(e.name).second) {
        return r_.Bad(path + ".name", "a unique name of a-z 0-9 . _ -", Find(ej, "name"));
      }
      DLSYS_ASSIGN_OR_RETURN(e.inputs, ExampleTensors(ej, path, "inputs", m));
      DLSYS_ASSIGN_OR_RETURN(e.outputs, ExampleTensors(ej, path, "outputs", m));
      DLSYS_ASSIGN_OR_RETURN(e.rtol, r_.Number(ej, path, "rtol", true, 0, 0.0));
      DLSYS_ASSIGN_OR_RETURN(e.atol, r_.Number(ej, path, "atol", true, 0, 0.0));
      m.examples.push_back(std::move(e));
    }
    return {};
  }

  internal::Reader r_{"manifest"};
};

// The first byte where `text` leaves its canonical form, described for people.
Error NotCanonical(std::string_view text, const std::string& canonical) {
  const auto [a, b] = std::mismatch(text.begin(), text.end(), canonical.begin(), canonical.end());
  const auto at = static_cast<std::size_t>(a - text.begin());
  const auto snippet = [](std::string_view s, std::size_t from) {
    return from >= s.size() ? std::string("end of text") : "'" + Quoted(s.substr(from, 24)) + "'";
  };
  return Error{Code::kInvalid,
               "manifest is not in canonical form (RFC 8785) at byte " + std::to_string(at) +
                   ": found " + snippet(text, at) + ", the canonical form has " +
                   snippet(canonical, at) +
                   " (dlsys writes manifests canonically; this one was altered or written by "
                   "another tool)",
               {}};
}

}  // namespace

Result<std::string> Serialize(const Manifest& m) {
  Json inputs = Json::array(), outputs = Json::array(), files = Json::array(),
       examples = Json::array();
  for (const auto& t : m.inputs) inputs.push_back(TensorJson(t));
  for (const auto& t : m.outputs) outputs.push_back(TensorJson(t));
  for (const auto& f : m.files) files.push_back(FileJson(f));
  for (const auto& e : m.examples) {
    Json in = Json::array(), out = Json::array();
    for (const auto& t : e.inputs) in.push_back(ExampleTensorJson(t));
    for (const auto& t : e.outputs) out.push_back(ExampleTensorJson(t));
    examples.push_back(Json{
        {"name", e.name}, {"inputs", in}, {"outputs", out}, {"rtol", e.rtol}, {"atol", e.atol}});
  }
  Json j{{"format_version", m.format_version},
         {"name", m.name},
         {"version", m.version},
         {"description", m.description},
         {"owner", m.owner},
         {"license", m.license},
         {"created", m.created},
         {"framework", Json{{"name", "pytorch"}, {"format", "torchscript"}}},
         {"entry_point", Json{{"file", m.entry_file}, {"method", m.entry_method}}},
         {"inputs", inputs},
         {"outputs", outputs},
         {"model", SummaryJson(m.model)},
         {"examples", examples},
         {"files", files},
         {"tool", Json{{"name", "dlsys"}, {"version", m.tool_version}}}};
  DLSYS_ASSIGN_OR_RETURN(j["lineage"], SectionJson("lineage", m.lineage_json));
  DLSYS_ASSIGN_OR_RETURN(j["hyperparameters"],
                         SectionJson("hyperparameters", m.hyperparameters_json));
  DLSYS_ASSIGN_OR_RETURN(j["training"], SectionJson("training", m.training_json));
  DLSYS_ASSIGN_OR_RETURN(j["metrics"], SectionJson("metrics", m.metrics_json));
  DLSYS_ASSIGN_OR_RETURN(j["dependencies"], SectionJson("dependencies", m.dependencies_json));
  DLSYS_ASSIGN_OR_RETURN(j["requirements"], SectionJson("requirements", m.requirements_json));
  auto text = core::CanonicalJson(j);
  if (!text) return tl::unexpected(std::move(text).error().Wrap("cannot serialize the manifest"));
  if (text->size() > kMaxManifestBytes) {
    return Fail(Code::kInvalid,
                "cannot serialize the manifest: it would be " + std::to_string(text->size()) +
                    " bytes, more than the limit of " + std::to_string(kMaxManifestBytes));
  }
  return text;
}

Result<Manifest> Parse(std::string_view text) {
  if (text.size() > kMaxManifestBytes) {
    return Fail(Code::kInvalid, "manifest is " + std::to_string(text.size()) +
                                    " bytes, more than the limit of " +
                                    std::to_string(kMaxManifestBytes));
  }
  DLSYS_ASSIGN_OR_RETURN(Json root, core::ParseJson(text, kManifestLimits, "manifest"));
  DLSYS_ASSIGN_OR_RETURN(Manifest m, ManifestParser().Run(root));
  // Field rules first (their messages are more specific), then the exact bytes.
  auto canonical = core::CanonicalJson(root);
  if (!canonical) {
    return Fail(Code::kInvalid,
                "manifest is not in canonical form (RFC 8785): " + canonical.error().message);
  }
  if (*canonical != text) return tl::unexpected(NotCanonical(text, *canonical));
  return m;
}

Result<std::int64_t> CreatedEpoch(const Manifest& manifest) {
  const auto seconds = ParseUtcSeconds(manifest.created);
  if (!seconds) {
    return Fail(Code::kInvalid,
                "manifest field 'created': expected a real UTC calendar time "
                "like 2026-01-31T12:00:00Z (RFC 3339, to the second), found \"" +
                    Quoted(manifest.created) + "\"");
  }
  if (*seconds < 0 || *seconds > kMaxCreatedEpoch) {
    return Fail(Code::kInvalid, "manifest field 'created': " + manifest.created +
                                    " is outside 1970-01-01T00:00:00Z .. 2242-03-16T12:56:31Z "
                                    "(the times a tar header can hold)");
  }
  return *seconds;
}

Result<void> CheckPathSet(const std::vector<std::string>& sorted_paths) {
  for (std::size_t i = 1; i < sorted_paths.size(); ++i) {
    if (!(sorted_paths[i - 1] < sorted_paths[i])) {
      return Fail(Code::kInvalid, "paths must be sorted by byte order without duplicates, but '" +
                                      Quoted(sorted_paths[i]) + "' follows '" +
                                      Quoted(sorted_paths[i - 1]) + "'");
    }
  }
  // Everything under "p/" sorts in one block after "p/" itself: one binary search per path.
  std::string prefix;
  for (const std::string& p : sorted_paths) {
    prefix.assign(p).push_back('/');
    const auto it = std::lower_bound(sorted_paths.begin(), sorted_paths.end(), prefix);
    if (it != sorted_paths.end() && it->compare(0, prefix.size(), prefix) == 0) {
      return Fail(Code::kInvalid, "'" + Quoted(p) + "' is a file, but '" + Quoted(*it) +
                                      "' needs it to be a directory");
    }
  }
  return {};
}

const FileRecord* FindFile(const Manifest& manifest, std::string_view path) {
  auto it = std::lower_bound(manifest.files.begin(), manifest.files.end(), path,
                             [](const FileRecord& f, std::string_view p) { return f.path < p; });
  return it != manifest.files.end() && it->path == path ? &*it : nullptr;
}

std::string ShapeText(const std::vector<std::int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

bool ShapeFits(const std::vector<std::int64_t>& declared, const std::vector<std::int64_t>& actual) {
  if (declared.size() != actual.size()) return false;
  for (std::size_t i = 0; i < declared.size(); ++i) {
    if (declared[i] != -1 && declared[i] != actual[i]) return false;
  }
  return true;
}

Result<void> CheckName(std::string_view name) {
  static const std::regex kName(R"(^[a-z0-9][a-z0-9._-]{0,127}$)");
  if (!std::regex_match(name.begin(), name.end(), kName)) {
    return Fail(Code::kUsage, "name '" + Quoted(name) +
                                  "' is not valid: use 1-128 characters of a-z 0-9 . _ -, "
                                  "starting with a letter or digit");
  }
  return {};
}

}  // namespace dlsys::manifest
