#include "manifest/manifest.h"

#include <algorithm>
#include <regex>
#include <set>

#include "core/encoding.h"
#include "manifest/internal/json_read.h"

namespace dlsys::manifest {
namespace {

using internal::Index;
using internal::Join;
using internal::Json;

Json ParseObjectText(const std::string& text) {
  return text.empty() ? Json::object() : Json::parse(text);
}

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

bool IsHexDigest(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

class ManifestParser {
 public:
  Result<Manifest> Run(const Json& root) {
    if (!root.is_object()) return r_.Bad("(root)", "an object", &root);
    DLSYS_TRY(r_.OnlyKeys(root, "",
                          {"format_version", "name", "version", "description", "owner", "license",
                           "created", "lineage", "hyperparameters", "training", "metrics",
                           "dependencies", "requirements", "entry_point", "inputs", "outputs",
                           "model", "examples", "files", "tool", "framework"}));
    Manifest m;
    DLSYS_ASSIGN_OR_RETURN(auto fv, r_.Int(root, "", "format_version", true, 1, 1000));
    if (fv != kFormatVersion) {
      return Fail(Code::kInvalid, "manifest format_version is " + std::to_string(fv) +
                                      "; this dlsys reads version " +
                                      std::to_string(kFormatVersion) + " (upgrade dlsys)");
    }
    m.format_version = static_cast<int>(fv);
    DLSYS_ASSIGN_OR_RETURN(m.name, r_.String(root, "", "name", true, 128));
    if (auto ok = CheckName(m.name); !ok) {
      return r_.Bad("name", "1-128 characters of a-z 0-9 . _ -", &root["name"]);
    }
    DLSYS_ASSIGN_OR_RETURN(m.version, r_.String(root, "", "version", true, 256));
    if (!core::IsSemver(m.version)) return r_.Bad("version", "a SemVer version", &root["version"]);
    DLSYS_ASSIGN_OR_RETURN(m.description, r_.String(root, "", "description", false, 65536));
    DLSYS_ASSIGN_OR_RETURN(m.owner, r_.String(root, "", "owner", false));
    DLSYS_ASSIGN_OR_RETURN(m.license, r_.String(root, "", "license", false));
    DLSYS_ASSIGN_OR_RETURN(m.created, r_.String(root, "", "created", true, 64));
    static const std::regex kRfc3339(R"(^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$)");
    if (!std::regex_match(m.created, kRfc3339)) {
      return r_.Bad("created", "an RFC 3339 UTC time like 2026-01-31T12:00:00Z", &root["created"]);
    }
    DLSYS_ASSIGN_OR_RETURN(m.lineage_json, r_.Object(root, "", "lineage"));
    DLSYS_ASSIGN_OR_RETURN(m.hyperparameters_json, r_.Object(root, "", "hyperparameters"));
    DLSYS_ASSIGN_OR_RETURN(m.training_json, r_.Object(root, "", "training"));
    DLSYS_ASSIGN_OR_RETURN(m.metrics_json, r_.Object(root, "", "metrics"));
    DLSYS_ASSIGN_OR_RETURN(m.dependencies_json, r_.Object(root, "", "dependencies"));
    DLSYS_ASSIGN_OR_RETURN(m.requirements_json, r_.Object(root, "", "requirements"));

    DLSYS_ASSIGN_OR_RETURN(const Json* entry, r_.Get(root, "", "entry_point", true));
    if (!entry->is_object()) return r_.Bad("entry_point", "an object", entry);
    DLSYS_ASSIGN_OR_RETURN(m.entry_file, r_.String(*entry, "entry_point", "file", true, 1024));
    DLSYS_ASSIGN_OR_RETURN(m.entry_method, r_.String(*entry, "entry_point", "method", true, 256));

    DLSYS_ASSIGN_OR_RETURN(m.inputs, Tensors(root, "", "inputs", false));
    DLSYS_ASSIGN_OR_RETURN(m.outputs, Tensors(root, "", "outputs", false));
    DLSYS_ASSIGN_OR_RETURN(const Json* model, r_.Get(root, "", "model", true));
    DLSYS_ASSIGN_OR_RETURN(m.model, Summary(*model));
    DLSYS_TRY(Files(root, m));
    DLSYS_TRY(Examples(root, m));
    if (FindFile(m, m.entry_file) == nullptr) {
      return Fail(Code::kInvalid, "manifest field 'entry_point.file': '" + m.entry_file +
                                      "' is not listed in 'files'");
    }
    if (const auto it = root.find("tool"); it != root.end() && it->is_object()) {
      DLSYS_ASSIGN_OR_RETURN(m.tool_version, r_.String(*it, "tool", "version", false));
    }
    return m;
  }

 private:
  Result<TensorSpec> Tensor(const Json& j, const std::string& path, bool concrete) {
    if (!j.is_object()) return r_.Bad(path, "an object with name, dtype, shape", &j);
    TensorSpec t;
    DLSYS_ASSIGN_OR_RETURN(t.name, r_.String(j, path, "name", true, 256));
    DLSYS_ASSIGN_OR_RETURN(t.dtype, r_.String(j, path, "dtype", true, 32));
    if (!runtime::ParseDType(t.dtype)) {
      return r_.Bad(Join(path, "dtype"), "a dtype such as float32, int64, bool", &j["dtype"]);
    }
    DLSYS_ASSIGN_OR_RETURN(const Json* shape, r_.Get(j, path, "shape", true));
    if (!shape->is_array() || shape->size() > 16) {
      return r_.Bad(Join(path, "shape"), "an array of at most 16 dimensions", shape);
    }
    for (std::size_t i = 0; i < shape->size(); ++i) {
      const Json& d = (*shape)[i];
      const std::int64_t min = concrete ? 0 : -1;
      if (!d.is_number_integer() || d.get<std::int64_t>() < min) {
        return r_.Bad(Index(Join(path, "shape"), i),
                      concrete ? "a size >= 0" : "a size >= 0, or -1 for a dynamic dimension", &d);
      }
      t.shape.push_back(d.get<std::int64_t>());
    }
    return t;
  }

  Result<std::vector<TensorSpec>> Tensors(const Json& obj, const std::string& path,
                                          const char* key, bool concrete) {
    std::vector<TensorSpec> out;
    DLSYS_ASSIGN_OR_RETURN(const Json* arr, r_.Get(obj, path, key, false));
    if (arr == nullptr) return out;
    if (!arr->is_array()) return r_.Bad(Join(path, key), "an array of tensors", arr);
    std::set<std::string> names;
    for (std::size_t i = 0; i < arr->size(); ++i) {
      DLSYS_ASSIGN_OR_RETURN(auto t, Tensor((*arr)[i], Index(Join(path, key), i), concrete));
      if (!names.insert(t.name).second) {
        return Fail(Code::kInvalid, "manifest field '" + Index(Join(path, key), i) +
                                        ".name': tensor '" + t.name + "' appears twice");
      }
      out.push_back(std::move(t));
    }
    return out;
  }

  Result<runtime::TensorGroupStats> Group(const Json& j, const std::string& path) {
    runtime::TensorGroupStats g;
    if (!j.is_object()) return r_.Bad(path, "an object", &j);
    DLSYS_ASSIGN_OR_RETURN(g.count, r_.Int(j, path, "count", true, 0, INT64_MAX));
    DLSYS_ASSIGN_OR_RETURN(g.elements, r_.Int(j, path, "elements", true, 0, INT64_MAX));
    DLSYS_ASSIGN_OR_RETURN(const Json* by, r_.Get(j, path, "bytes_by_dtype", true));
    if (!by->is_object()) return r_.Bad(Join(path, "bytes_by_dtype"), "an object", by);
    for (const auto& [k, v] : by->items()) {
      DLSYS_ASSIGN_OR_RETURN(g.bytes_by_dtype[k],
                             r_.Int(*by, Join(path, "bytes_by_dtype"), k.c_str(), true, 0, INT64_MAX));
    }
    return g;
  }

  Result<runtime::ModelSummary> Summary(const Json& j) {
    runtime::ModelSummary s;
    if (!j.is_object()) return r_.Bad("model", "an object", &j);
    DLSYS_ASSIGN_OR_RETURN(const Json* methods, r_.Get(j, "model", "methods", true));
    if (!methods->is_array()) return r_.Bad("model.methods", "an array", methods);
    for (std::size_t i = 0; i < methods->size(); ++i) {
      const Json& mj = (*methods)[i];
      const std::string path = Index("model.methods", i);
      if (!mj.is_object()) return r_.Bad(path, "an object", &mj);
      runtime::MethodInfo m;
      DLSYS_ASSIGN_OR_RETURN(m.name, r_.String(mj, path, "name", true, 256));
      DLSYS_ASSIGN_OR_RETURN(m.schema, r_.String(mj, path, "schema", false, 65536));
      DLSYS_ASSIGN_OR_RETURN(m.arg_names, r_.Strings(mj, path, "args", false));
      s.methods.push_back(std::move(m));
    }
    DLSYS_ASSIGN_OR_RETURN(const Json* params, r_.Get(j, "model", "parameters", true));
    DLSYS_ASSIGN_OR_RETURN(s.parameters, Group(*params, "model.parameters"));
    DLSYS_ASSIGN_OR_RETURN(const Json* buffers, r_.Get(j, "model", "buffers", true));
    DLSYS_ASSIGN_OR_RETURN(s.buffers, Group(*buffers, "model.buffers"));
    DLSYS_ASSIGN_OR_RETURN(s.operators, r_.Strings(j, "model", "operators", true));
    DLSYS_ASSIGN_OR_RETURN(s.file_format_version,
                           r_.Int(j, "model", "file_format_version", true, 0, 1 << 20));
    DLSYS_ASSIGN_OR_RETURN(s.runtime_version, r_.String(j, "model", "runtime_version", true, 64));
    DLSYS_ASSIGN_OR_RETURN(s.devices, r_.Strings(j, "model", "devices", false));
    return s;
  }

  Result<void> Files(const Json& root, Manifest& m) {
    DLSYS_ASSIGN_OR_RETURN(const Json* files, r_.Get(root, "", "files", true));
    if (!files->is_array() || files->empty()) {
      return r_.Bad("files", "a non-empty array of files", files);
    }
    for (std::size_t i = 0; i < files->size(); ++i) {
      const Json& fj = (*files)[i];
      const std::string path = Index("files", i);
      if (!fj.is_object()) return r_.Bad(path, "an object", &fj);
      FileRecord f;
      DLSYS_ASSIGN_OR_RETURN(f.path, r_.String(fj, path, "path", true, 1024));
      DLSYS_ASSIGN_OR_RETURN(auto size, r_.Int(fj, path, "size", true, 0, INT64_MAX));
      f.size = static_cast<std::uint64_t>(size);
      DLSYS_ASSIGN_OR_RETURN(auto mode, r_.Int(fj, path, "mode", true, 0, 0777));
      f.mode = static_cast<unsigned>(mode);
      if (fj.contains("shards")) {
        DLSYS_ASSIGN_OR_RETURN(auto sb, r_.Int(fj, path, "shard_bytes", true, 1, INT64_MAX));
        f.shard_bytes = static_cast<std::uint64_t>(sb);
        DLSYS_ASSIGN_OR_RETURN(f.shards, r_.Strings(fj, path, "shards", true));
        const std::uint64_t want = (f.size + f.shard_bytes - 1) / f.shard_bytes;
        if (f.size <= f.shard_bytes || f.shards.size() != want) {
          return Fail(Code::kInvalid, "manifest field '" + path + ".shards': a file of " +
                                          std::to_string(f.size) + " bytes in shards of " +
                                          std::to_string(f.shard_bytes) + " needs " +
                                          std::to_string(want) + " shard digests (and more than " +
                                          "one), found " + std::to_string(f.shards.size()));
        }
        for (std::size_t k = 0; k < f.shards.size(); ++k) {
          if (!IsHexDigest(f.shards[k])) {
            return r_.Bad(Index(path + ".shards", k), "64 lower-case hex digits",
                          &fj["shards"][k]);
          }
        }
      } else {
        DLSYS_ASSIGN_OR_RETURN(f.sha256, r_.String(fj, path, "sha256", true, 64));
        if (!IsHexDigest(f.sha256)) {
          return r_.Bad(path + ".sha256", "64 lower-case hex digits", &fj["sha256"]);
        }
      }
      if (f.path == kManifestPath || f.path == kSignaturePath) {
        return Fail(Code::kInvalid, "manifest field '" + path + ".path': '" + f.path +
                                        "' is reserved for dlsys's own entries");
      }
      if (!m.files.empty() && !(m.files.back().path < f.path)) {
        return Fail(Code::kInvalid, "manifest field '" + path + ".path': files must be sorted "
                                    "by path without duplicates, but '" + f.path +
                                    "' follows '" + m.files.back().path + "'");
      }
      m.files.push_back(std::move(f));
    }
    return {};
  }

  Result<std::vector<ExampleTensor>> ExampleTensors(const Json& ej, const std::string& path,
                                                    const char* key, const Manifest& m) {
    std::vector<ExampleTensor> out;
    DLSYS_ASSIGN_OR_RETURN(const Json* arr, r_.Get(ej, path, key, false));
    if (arr == nullptr) return out;
    if (!arr->is_array()) return r_.Bad(Join(path, key), "an array", arr);
    for (std::size_t i = 0; i < arr->size(); ++i) {
      const std::string tp = Index(Join(path, key), i);
      ExampleTensor t;
      DLSYS_ASSIGN_OR_RETURN(t.tensor, Tensor((*arr)[i], tp, true));
      DLSYS_ASSIGN_OR_RETURN(t.path, r_.String((*arr)[i], tp, "path", true, 1024));
      if (FindFile(m, t.path) == nullptr) {
        return Fail(Code::kInvalid, "manifest field '" + tp + ".path': '" + t.path +
                                        "' is not listed in 'files'");
      }
      out.push_back(std::move(t));
    }
    return out;
  }

  Result<void> Examples(const Json& root, Manifest& m) {
    DLSYS_ASSIGN_OR_RETURN(const Json* arr, r_.Get(root, "", "examples", false));
    if (arr == nullptr) return {};
    if (!arr->is_array()) return r_.Bad("examples", "an array", arr);
    for (std::size_t i = 0; i < arr->size(); ++i) {
      const Json& ej = (*arr)[i];
      const std::string path = Index("examples", i);
      if (!ej.is_object()) return r_.Bad(path, "an object", &ej);
      Example e;
      DLSYS_ASSIGN_OR_RETURN(e.name, r_.String(ej, path, "name", true, 128));
      DLSYS_ASSIGN_OR_RETURN(e.inputs, ExampleTensors(ej, path, "inputs", m));
      DLSYS_ASSIGN_OR_RETURN(e.outputs, ExampleTensors(ej, path, "outputs", m));
      DLSYS_ASSIGN_OR_RETURN(e.rtol, r_.Number(ej, path, "rtol", false, 1e-5));
      DLSYS_ASSIGN_OR_RETURN(e.atol, r_.Number(ej, path, "atol", false, 1e-6));
      m.examples.push_back(std::move(e));
    }
    return {};
  }

  internal::Reader r_{"manifest"};
};

}  // namespace

std::string Serialize(const Manifest& m) {
  Json inputs = Json::array(), outputs = Json::array(), files = Json::array(),
       examples = Json::array();
  for (const auto& t : m.inputs) inputs.push_back(TensorJson(t));
  for (const auto& t : m.outputs) outputs.push_back(TensorJson(t));
  for (const auto& f : m.files) files.push_back(FileJson(f));
  for (const auto& e : m.examples) {
    Json in = Json::array(), out = Json::array();
    for (const auto& t : e.inputs) in.push_back(ExampleTensorJson(t));
    for (const auto& t : e.outputs) out.push_back(ExampleTensorJson(t));
    examples.push_back(Json{{"name", e.name}, {"inputs", in}, {"outputs", out},
                            {"rtol", e.rtol}, {"atol", e.atol}});
  }
  Json j{{"format_version", m.format_version},
         {"name", m.name},
         {"version", m.version},
         {"description", m.description},
         {"owner", m.owner},
         {"license", m.license},
         {"created", m.created},
         {"lineage", ParseObjectText(m.lineage_json)},
         {"hyperparameters", ParseObjectText(m.hyperparameters_json)},
         {"training", ParseObjectText(m.training_json)},
         {"metrics", ParseObjectText(m.metrics_json)},
         {"dependencies", ParseObjectText(m.dependencies_json)},
         {"requirements", ParseObjectText(m.requirements_json)},
         {"framework", Json{{"name", "pytorch"}, {"format", "torchscript"}}},
         {"entry_point", Json{{"file", m.entry_file}, {"method", m.entry_method}}},
         {"inputs", inputs},
         {"outputs", outputs},
         {"model", SummaryJson(m.model)},
         {"examples", examples},
         {"files", files},
         {"tool", Json{{"name", "dlsys"}, {"version", m.tool_version}}}};
  return j.dump(-1, ' ', false, Json::error_handler_t::strict);
}

Result<Manifest> Parse(std::string_view text) {
  if (text.size() > kMaxManifestBytes) {
    return Fail(Code::kInvalid, "manifest is " + std::to_string(text.size()) +
                                    " bytes, more than the limit of " +
                                    std::to_string(kMaxManifestBytes));
  }
  Json root;
  try {
    root = Json::parse(text.begin(), text.end());
  } catch (const Json::exception& e) {
    return Fail(Code::kInvalid, std::string("manifest is not valid JSON: ") + e.what());
  }
  return ManifestParser().Run(root);
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
    return Fail(Code::kUsage, "name '" + std::string(name) +
                                  "' is not valid: use 1-128 characters of a-z 0-9 . _ -, "
                                  "starting with a letter or digit");
  }
  return {};
}

}  // namespace dlsys::manifest
