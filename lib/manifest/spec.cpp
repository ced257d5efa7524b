#include "manifest/spec.h"

#include <cstring>
#include <map>
#include <filesystem>
#include <set>

#include "core/encoding.h"
#include "core/file.h"
#include "manifest/internal/json_read.h"
#include "manifest/internal/yaml_json.h"

namespace dlsys::manifest {
namespace {

using internal::Index;
using internal::Join;
using internal::Json;

constexpr std::size_t kMaxSpecBytes = 16u << 20;
constexpr std::size_t kMaxExampleBytes = 256u << 20;

// Flattens nested lists of numbers, inferring the shape.
Result<void> Flatten(const Json& data, std::size_t depth, std::vector<std::int64_t>& shape,
                     std::vector<const Json*>& out, const std::string& path) {
  if (!data.is_array()) {
    if (depth != shape.size() && !shape.empty()) {
      return Fail(Code::kInvalid, path + ": nested lists are ragged");
    }
    out.push_back(&data);
    return {};
  }
  if (depth == shape.size()) shape.push_back(static_cast<std::int64_t>(data.size()));
  else if (shape[depth] != static_cast<std::int64_t>(data.size())) {
    return Fail(Code::kInvalid, path + ": nested lists are ragged (dimension " +
                                    std::to_string(depth) + " has sizes " +
                                    std::to_string(shape[depth]) + " and " +
                                    std::to_string(data.size()) + ")");
  }
  for (const auto& v : data) DLSYS_TRY(Flatten(v, depth + 1, shape, out, path));
  return {};
}

template <typename T>
void Append(std::string& bytes, T v) {
  char buf[sizeof(T)];
  std::memcpy(buf, &v, sizeof(T));  // little-endian host (x86_64, aarch64)
  bytes.append(buf, sizeof(T));
}

Result<std::string> Encode(const std::vector<const Json*>& values, runtime::DType dtype,
                           const std::string& path) {
  using runtime::DType;
  std::string bytes;
  for (const Json* v : values) {
    if (dtype == DType::kBool) {
      if (!v->is_boolean() && !v->is_number_integer()) {
        return Fail(Code::kInvalid, path + ": expected booleans, found " + internal::Brief(*v));
      }
      Append<std::uint8_t>(bytes, v->is_boolean() ? v->get<bool>() : v->get<std::int64_t>() != 0);
      continue;
    }
    if (!v->is_number()) {
      return Fail(Code::kInvalid, path + ": expected numbers, found " + internal::Brief(*v));
    }
    if (dtype != DType::kFloat32 && dtype != DType::kFloat64) {
      static const std::map<DType, std::pair<double, double>> kRange = {
          {DType::kInt8, {-128, 127}},          {DType::kUInt8, {0, 255}},
          {DType::kInt16, {-32768, 32767}},     {DType::kInt32, {-2147483648.0, 2147483647.0}},
          {DType::kInt64, {-9.2233720368547758e18, 9.2233720368547758e18}}};
      const auto range = kRange.find(dtype);
      if (range != kRange.end() &&
          (!v->is_number_integer() || v->get<double>() < range->second.first ||
           v->get<double>() > range->second.second)) {
        return Fail(Code::kInvalid, path + ": " + internal::Brief(*v) + " is not a valid " +
                                        runtime::DTypeName(dtype) + " value");
      }
    }
    switch (dtype) {
      case DType::kFloat32: Append<float>(bytes, v->get<float>()); break;
      case DType::kFloat64: Append<double>(bytes, v->get<double>()); break;
      case DType::kInt8: Append<std::int8_t>(bytes, v->get<std::int8_t>()); break;
      case DType::kUInt8: Append<std::uint8_t>(bytes, v->get<std::uint8_t>()); break;
      case DType::kInt16: Append<std::int16_t>(bytes, v->get<std::int16_t>()); break;
      case DType::kInt32: Append<std::int32_t>(bytes, v->get<std::int32_t>()); break;
      case DType::kInt64: Append<std::int64_t>(bytes, v->get<std::int64_t>()); break;
      default:
        return Fail(Code::kInvalid, path + ": inline data is not supported for " +
                                        runtime::DTypeName(dtype) +
                                        "; give a raw little-endian 'file:' instead");
    }
  }
  return bytes;
}

std::string Resolve(const std::string& base_dir, const std::string& p) {
  std::filesystem::path path(p);
  return path.is_absolute() || base_dir.empty() ? p : (std::filesystem::path(base_dir) / path).string();
}

class SpecParser {
 public:
  SpecParser(std::string display, std::string base_dir)
      : display_(std::move(display)), base_dir_(std::move(base_dir)), r_(display_) {}

  Result<Spec> Run(const Json& root) {
    Spec s;
    if (root.is_null()) return s;  // an empty spec is allowed: flags carry everything
    if (!root.is_object()) return r_.Bad("(root)", "a map of fields", &root);
    DLSYS_TRY(r_.OnlyKeys(root, "",
                          {"name", "version", "description", "owner", "license", "lineage",
                           "hyperparameters", "training", "metrics", "dependencies",
                           "requirements", "entry_point", "inputs", "outputs", "examples", "files",
                           "compression"}));
    DLSYS_ASSIGN_OR_RETURN(s.name, r_.String(root, "", "name", false, 128));
    DLSYS_ASSIGN_OR_RETURN(s.version, ScalarText(root, "version"));
    DLSYS_ASSIGN_OR_RETURN(s.description, r_.String(root, "", "description", false, 65536));
    DLSYS_ASSIGN_OR_RETURN(s.owner, r_.String(root, "", "owner", false));
    DLSYS_ASSIGN_OR_RETURN(s.license, r_.String(root, "", "license", false));
    DLSYS_ASSIGN_OR_RETURN(s.lineage_json, r_.Object(root, "", "lineage"));
    DLSYS_ASSIGN_OR_RETURN(s.hyperparameters_json, r_.Object(root, "", "hyperparameters"));
    DLSYS_ASSIGN_OR_RETURN(s.training_json, r_.Object(root, "", "training"));
    DLSYS_ASSIGN_OR_RETURN(s.metrics_json, r_.Object(root, "", "metrics"));
    DLSYS_ASSIGN_OR_RETURN(s.dependencies_json, r_.Object(root, "", "dependencies"));
    DLSYS_ASSIGN_OR_RETURN(s.requirements_json, r_.Object(root, "", "requirements"));
    DLSYS_ASSIGN_OR_RETURN(s.compression, r_.String(root, "", "compression", false, 16));
    if (const auto it = root.find("entry_point"); it != root.end()) {
      if (!it->is_object()) return r_.Bad("entry_point", "a map with 'method'", &*it);
      DLSYS_TRY(r_.OnlyKeys(*it, "entry_point", {"method"}));
      DLSYS_ASSIGN_OR_RETURN(s.entry_method, r_.String(*it, "entry_point", "method", true, 256));
    }
    DLSYS_ASSIGN_OR_RETURN(s.inputs, Tensors(root, "inputs"));
    DLSYS_ASSIGN_OR_RETURN(s.outputs, Tensors(root, "outputs"));
    DLSYS_TRY(Examples(root, s));
    DLSYS_TRY(Files(root, s));
    return s;
  }

 private:
  // A version such as 1.2 may be parsed as a number; report it as written.
  Result<std::string> ScalarText(const Json& root, const char* key) {
    auto it = root.find(key);
    if (it == root.end() || it->is_null()) return std::string();
    if (it->is_string()) return it->get<std::string>();
    return r_.Bad(key, "a string such as \"1.2.0\"", &*it);
  }

  Result<TensorSpec> Tensor(const Json& j, const std::string& path) {
    if (!j.is_object()) return r_.Bad(path, "a map with name, dtype, shape", &j);
    DLSYS_TRY(r_.OnlyKeys(j, path, {"name", "dtype", "shape"}));
    TensorSpec t;
    DLSYS_ASSIGN_OR_RETURN(t.name, r_.String(j, path, "name", true, 256));
    DLSYS_ASSIGN_OR_RETURN(t.dtype, r_.String(j, path, "dtype", true, 32));
    auto dtype = runtime::ParseDType(t.dtype);
    if (!dtype) return r_.Bad(Join(path, "dtype"), "a dtype such as float32, int64, bool", &j["dtype"]);
    t.dtype = runtime::DTypeName(*dtype);
    DLSYS_ASSIGN_OR_RETURN(const Json* shape, r_.Get(j, path, "shape", true));
    if (!shape->is_array() || shape->size() > 16) {
      return r_.Bad(Join(path, "shape"), "a list of at most 16 sizes (-1 = dynamic)", shape);
    }
    for (std::size_t i = 0; i < shape->size(); ++i) {
      const Json& d = (*shape)[i];
      if (!d.is_number_integer() || d.get<std::int64_t>() < -1) {
        return r_.Bad(Index(Join(path, "shape"), i), "a size >= 0, or -1 for a dynamic dimension",
                      &d);
      }
      t.shape.push_back(d.get<std::int64_t>());
    }
    return t;
  }

  Result<std::vector<TensorSpec>> Tensors(const Json& root, const char* key) {
    std::vector<TensorSpec> out;
    DLSYS_ASSIGN_OR_RETURN(const Json* arr, r_.Get(root, "", key, false));
    if (arr == nullptr) return out;
    if (!arr->is_array()) return r_.Bad(key, "a list of tensors", arr);
    std::set<std::string> names;
    for (std::size_t i = 0; i < arr->size(); ++i) {
      DLSYS_ASSIGN_OR_RETURN(auto t, Tensor((*arr)[i], Index(key, i)));
      if (!names.insert(t.name).second) {
        return Fail(Code::kInvalid, display_ + " field '" + Index(key, i) + ".name': tensor '" +
                                        t.name + "' appears twice");
      }
      out.push_back(std::move(t));
    }
    return out;
  }

  Result<SpecTensor> ExampleTensor(const std::string& name, const Json& j, const std::string& path,
                                   const Spec& s) {
    if (!j.is_object()) return r_.Bad(path, "a map with data: or file:", &j);
    DLSYS_TRY(r_.OnlyKeys(j, path, {"dtype", "shape", "data", "file"}));
    SpecTensor t;
    t.tensor.name = name;
    const TensorSpec* declared = nullptr;
    for (const auto& in : s.inputs) declared = in.name == name ? &in : declared;
    DLSYS_ASSIGN_OR_RETURN(t.tensor.dtype, r_.String(j, path, "dtype", false, 32));
    if (t.tensor.dtype.empty()) t.tensor.dtype = declared ? declared->dtype : "float32";
    auto dtype = runtime::ParseDType(t.tensor.dtype);
    if (!dtype) return r_.Bad(Join(path, "dtype"), "a dtype such as float32", &j["dtype"]);
    t.tensor.dtype = runtime::DTypeName(*dtype);
    std::vector<std::int64_t> shape;
    bool has_shape = j.contains("shape");
    if (has_shape) {
      const Json& sj = j["shape"];
      if (!sj.is_array()) return r_.Bad(Join(path, "shape"), "a list of sizes", &sj);
      for (std::size_t i = 0; i < sj.size(); ++i) {
        if (!sj[i].is_number_integer() || sj[i].get<std::int64_t>() < 0) {
          return r_.Bad(Index(Join(path, "shape"), i), "a size >= 0", &sj[i]);
        }
        shape.push_back(sj[i].get<std::int64_t>());
      }
    }
    const bool has_data = j.contains("data"), has_file = j.contains("file");
    if (has_data == has_file) {
      return Fail(Code::kInvalid, display_ + " field '" + path +
                                      "': give exactly one of 'data' (inline values) or 'file' "
                                      "(raw little-endian bytes)");
    }
    if (has_data) {
      std::vector<std::int64_t> inferred;
      std::vector<const Json*> values;
      DLSYS_TRY(Flatten(j["data"], 0, inferred, values, display_ + " field '" + Join(path, "data") + "'"));
      if (!has_shape) shape = inferred;
      DLSYS_ASSIGN_OR_RETURN(t.bytes, Encode(values, *dtype, display_ + " field '" + Join(path, "data") + "'"));
    } else {
      DLSYS_ASSIGN_OR_RETURN(std::string file, r_.String(j, path, "file", true, 4096));
      if (!has_shape) return r_.Bad(Join(path, "shape"), "a shape (required with 'file')", nullptr);
      auto bytes = core::ReadFile(Resolve(base_dir_, file), kMaxExampleBytes);
      if (!bytes) return tl::unexpected(std::move(bytes.error()).Wrap(display_ + " field '" + Join(path, "file") + "'"));
      t.bytes = std::move(*bytes);
    }
    t.tensor.shape = shape;
    const auto want = static_cast<std::size_t>(runtime::ElementCount(shape)) * runtime::DTypeSize(*dtype);
    if (t.bytes.size() != want) {
      return Fail(Code::kInvalid, display_ + " field '" + path + "': shape " +
                                      ShapeText(shape) + " of " + t.tensor.dtype + " needs " +
                                      std::to_string(want) + " bytes, the data has " +
                                      std::to_string(t.bytes.size()));
    }
    return t;
  }

  Result<void> Examples(const Json& root, Spec& s) {
    DLSYS_ASSIGN_OR_RETURN(const Json* arr, r_.Get(root, "", "examples", false));
    if (arr == nullptr) return {};
    if (!arr->is_array()) return r_.Bad("examples", "a list of examples", arr);
    std::set<std::string> names;
    for (std::size_t i = 0; i < arr->size(); ++i) {
      const Json& ej = (*arr)[i];
      const std::string path = Index("examples", i);
      if (!ej.is_object()) return r_.Bad(path, "a map with name and inputs", &ej);
      DLSYS_TRY(r_.OnlyKeys(ej, path, {"name", "inputs", "rtol", "atol"}));
      SpecExample e;
      DLSYS_ASSIGN_OR_RETURN(e.name, r_.String(ej, path, "name", false, 128));
      if (e.name.empty()) e.name = "example" + std::to_string(i);
      if (!CheckName(e.name) || !names.insert(e.name).second) {
        return r_.Bad(Join(path, "name"), "a unique name of a-z 0-9 . _ -", &ej["name"]);
      }
      DLSYS_ASSIGN_OR_RETURN(const Json* inputs, r_.Get(ej, path, "inputs", true));
      if (!inputs->is_object() || inputs->empty()) {
        return r_.Bad(Join(path, "inputs"), "a map of input name to {data: ...} or {file: ...}",
                      inputs);
      }
      for (const auto& [name, tj] : inputs->items()) {
        DLSYS_ASSIGN_OR_RETURN(auto t, ExampleTensor(name, tj, Join(Join(path, "inputs"), name), s));
        e.inputs.push_back(std::move(t));
      }
      DLSYS_ASSIGN_OR_RETURN(e.rtol, r_.Number(ej, path, "rtol", false, 1e-5));
      DLSYS_ASSIGN_OR_RETURN(e.atol, r_.Number(ej, path, "atol", false, 1e-6));
      s.examples.push_back(std::move(e));
    }
    return {};
  }

  Result<void> Files(const Json& root, Spec& s) {
    DLSYS_ASSIGN_OR_RETURN(const Json* arr, r_.Get(root, "", "files", false));
    if (arr == nullptr) return {};
    if (!arr->is_array()) return r_.Bad("files", "a list of paths or {path, as}", arr);
    for (std::size_t i = 0; i < arr->size(); ++i) {
      const Json& fj = (*arr)[i];
      const std::string path = Index("files", i);
      SpecFile f;
      if (fj.is_string()) {
        f.source = fj.get<std::string>();
      } else if (fj.is_object()) {
        DLSYS_TRY(r_.OnlyKeys(fj, path, {"path", "as"}));
        DLSYS_ASSIGN_OR_RETURN(f.source, r_.String(fj, path, "path", true));
        DLSYS_ASSIGN_OR_RETURN(f.archive_path, r_.String(fj, path, "as", false, 1024));
      } else {
        return r_.Bad(path, "a path or {path, as}", &fj);
      }
      if (f.archive_path.empty()) f.archive_path = DefaultArchivePath(f.source);
      f.source = Resolve(base_dir_, f.source);
      s.files.push_back(std::move(f));
    }
    return {};
  }

  std::string display_;
  std::string base_dir_;
  internal::Reader r_;
};

}  // namespace

std::string DefaultArchivePath(const std::string& source) {
  return "files/" + std::filesystem::path(source).filename().string();
}

Result<Spec> ParseSpec(std::string_view yaml, const std::string& base_dir,
                       const std::string& display_name) {
  if (yaml.size() > kMaxSpecBytes) {
    return Fail(Code::kInvalid, display_name + " is larger than " +
                                    std::to_string(kMaxSpecBytes) + " bytes");
  }
  DLSYS_ASSIGN_OR_RETURN(Json root, internal::YamlToJsonValue(yaml, display_name));
  return SpecParser(display_name, base_dir).Run(root);
}

Result<Spec> LoadSpec(const std::string& path) {
  DLSYS_ASSIGN_OR_RETURN(std::string text, core::ReadFile(path, kMaxSpecBytes));
  return ParseSpec(text, std::filesystem::path(path).parent_path().string(), path);
}

}  // namespace dlsys::manifest
