#include "manifest/spec.h"

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <optional>
#include <set>

#include "core/checked.h"
#include "core/encoding.h"
#include "core/file.h"
#include "core/internal/json.h"
#include "manifest/internal/json_read.h"
#include "manifest/internal/yaml_json.h"

namespace dlsys::manifest {
namespace {

using internal::Find;
using internal::Index;
using internal::Join;
using internal::Json;

constexpr core::JsonLimits kSpecLimits{kMaxSpecBytes, kMaxSpecDepth, kMaxSpecValues};
constexpr std::size_t kMaxRank = 16;

std::string IndexText(const std::vector<std::size_t>& index) {
  std::string s;
  for (std::size_t i : index) s += "[" + std::to_string(i) + "]";
  return s;
}

// Flattens nested lists of numbers into row-major order. The shape comes from the first
// element at each depth ([[1, 2], [3, 4]] is [2, 2]); every other element must match it
// exactly, so [1, [2, 3]], [[1, 2], 3] and [1, []] are ragged. `field` names the data.
Result<std::vector<std::int64_t>> Flatten(const Json& data, std::vector<const Json*>& out,
                                          const std::string& field) {
  std::vector<std::int64_t> shape;
  for (const Json* v = &data; v->is_array(); v = &v->front()) {
    if (shape.size() == kMaxRank) {
      return Fail(Code::kInvalid, field + ": more than " + std::to_string(kMaxRank) +
                                      " nested lists (a tensor has at most 16 dimensions)");
    }
    shape.push_back(static_cast<std::int64_t>(v->size()));
    if (v->empty()) break;
  }
  // Depth-first over the lists with an explicit stack of (list, next index).
  struct Level {
    const Json* list;
    std::size_t next;
  };
  const auto ragged = [&](const std::vector<std::size_t>& index, const std::string& found,
                          const std::string& expected) {
    return Fail(Code::kInvalid, field + ": nested lists are ragged: element " + IndexText(index) +
                                    " is " + found + ", expected " + expected +
                                    " (the first elements give the shape " + ShapeText(shape) +
                                    ")");
  };
  const auto describe = [](const Json& v) {
    return v.is_array() ? "a list of " + std::to_string(v.size()) : internal::Brief(v);
  };
  const auto expect = [&](std::size_t depth) {
    return depth == shape.size() ? std::string("a number")
                                 : "a list of " + std::to_string(shape[depth]);
  };
  std::vector<std::size_t> index;
  if (shape.empty()) {
    out.push_back(&data);
    return shape;
  }
  std::vector<Level> stack{{&data, 0}};
  while (!stack.empty()) {
    Level& top = stack.back();
    if (top.next == top.list->size()) {
      stack.pop_back();
      if (!index.empty()) index.pop_back();
      continue;
    }
    const Json& v = (*top.list)[top.next];
    index.push_back(top.next);
    ++top.next;
    const std::size_t depth = stack.size();  // depth of v: the root list is depth 0
    if (depth == shape.size()) {
      if (v.is_array()) return ragged(index, describe(v), expect(depth));
      out.push_back(&v);
      index.pop_back();
      continue;
    }
    if (!v.is_array() || static_cast<std::int64_t>(v.size()) != shape[depth]) {
      return ragged(index, describe(v), expect(depth));
    }
    stack.push_back(Level{&v, 0});
  }
  return shape;
}

template <typename T>
void Append(std::string& bytes, T v) {
  char buf[sizeof(T)];
  std::memcpy(buf, &v, sizeof(T));  // little-endian host (x86_64, aarch64)
  bytes.append(buf, sizeof(T));
}

// The inclusive range of an integer dtype.
struct IntRange {
  std::int64_t min;
  std::int64_t max;
};
std::optional<IntRange> RangeOf(runtime::DType dtype) {
  using runtime::DType;
  switch (dtype) {
    case DType::kInt8:
      return IntRange{INT8_MIN, INT8_MAX};
    case DType::kUInt8:
      return IntRange{0, UINT8_MAX};
    case DType::kInt16:
      return IntRange{INT16_MIN, INT16_MAX};
    case DType::kInt32:
      return IntRange{INT32_MIN, INT32_MAX};
    case DType::kInt64:
      return IntRange{INT64_MIN, INT64_MAX};
    default:
      return std::nullopt;
  }
}

// An integer value within `range`, compared exactly (never through a double: 2^63 as a double
// equals INT64_MAX as a double).
std::optional<std::int64_t> IntegerIn(const Json& v, IntRange range) {
  if (v.is_number_unsigned()) {
    const auto u = v.get<std::uint64_t>();
    if (range.max < 0 || u > static_cast<std::uint64_t>(range.max)) return std::nullopt;
    return static_cast<std::int64_t>(u);
  }
  if (!v.is_number_integer()) return std::nullopt;
  const auto i = v.get<std::int64_t>();
  if (i < range.min || i > range.max) return std::nullopt;
  return i;
}

Result<std::string> Encode(const std::vector<const Json*>& values, runtime::DType dtype,
                           const std::string& field) {
  using runtime::DType;
  std::string bytes;
  if (dtype != DType::kFloat32 && dtype != DType::kFloat64 && dtype != DType::kBool &&
      !RangeOf(dtype)) {
    return Fail(Code::kInvalid, field + ": inline data is not supported for " +
                                    runtime::DTypeName(dtype) +
                                    "; give a raw little-endian 'file:' instead");
  }
  bytes.reserve(values.size() * runtime::DTypeSize(dtype));
  for (const Json* v : values) {
    if (dtype == DType::kBool) {
      if (v->is_boolean()) {
        Append<std::uint8_t>(bytes, v->get<bool>() ? 1 : 0);
      } else if (v->is_number_integer()) {
        Append<std::uint8_t>(bytes, v->is_number_unsigned() ? v->get<std::uint64_t>() != 0
                                                            : v->get<std::int64_t>() != 0);
      } else {
        return Fail(Code::kInvalid, field + ": expected booleans, found " + internal::Brief(*v));
      }
      continue;
    }
    if (!v->is_number()) {
      return Fail(Code::kInvalid, field + ": expected numbers, found " + internal::Brief(*v));
    }
    if (const auto range = RangeOf(dtype)) {
      const auto i = IntegerIn(*v, *range);
      if (!i) {
        return Fail(Code::kInvalid, field + ": " + internal::Brief(*v) + " is not a valid " +
                                        runtime::DTypeName(dtype) + " value");
      }
      switch (dtype) {
        case DType::kInt8:
          Append<std::int8_t>(bytes, static_cast<std::int8_t>(*i));
          break;
        case DType::kUInt8:
          Append<std::uint8_t>(bytes, static_cast<std::uint8_t>(*i));
          break;
        case DType::kInt16:
          Append<std::int16_t>(bytes, static_cast<std::int16_t>(*i));
          break;
        case DType::kInt32:
          Append<std::int32_t>(bytes, static_cast<std::int32_t>(*i));
          break;
        default:
          Append<std::int64_t>(bytes, *i);
          break;
      }
      continue;
    }
    const double d = v->get<double>();
    if (dtype == DType::kFloat32) {
      if (!(std::fabs(d) <= FLT_MAX)) {
        return Fail(Code::kInvalid,
                    field + ": " + internal::Brief(*v) + " is outside the range of float32");
      }
      Append<float>(bytes, static_cast<float>(d));
    } else {
      Append<double>(bytes, d);
    }
  }
  return bytes;
}

// elements x dtype size, checked: an absurd shape cannot wrap around to a small byte count.
core::ByteSize TensorBytes(const std::vector<std::int64_t>& shape, runtime::DType dtype) {
  core::ByteSize bytes(runtime::DTypeSize(dtype));
  for (std::int64_t d : shape) bytes *= static_cast<std::uint64_t>(d < 0 ? 0 : d);
  return bytes;
}

std::string Resolve(const std::string& base_dir, const std::string& p) {
  std::filesystem::path path(p);
  return path.is_absolute() || base_dir.empty() ? p
                                                : (std::filesystem::path(base_dir) / path).string();
}

class SpecParser {
 public:
  SpecParser(std::string display, std::string base_dir)
      : display_(std::move(display)), base_dir_(std::move(base_dir)), r_(display_) {}

  Result<Spec> Run(const Json& root) {
    Spec s;
    if (root.is_null()) return s;  // an empty spec is allowed: flags carry everything
    if (!root.is_object()) return r_.Bad("(root)", "a map of fields", &root);
    DLSYS_TRY(
        r_.OnlyKeys(root, "",
                    {"name", "version", "description", "owner", "license", "lineage",
                     "hyperparameters", "training", "metrics", "dependencies", "requirements",
                     "entry_point", "inputs", "outputs", "examples", "files", "compression"}));
    DLSYS_ASSIGN_OR_RETURN(s.name, r_.String(root, "", "name", false, kMaxNameBytes));
    DLSYS_ASSIGN_OR_RETURN(s.version, ScalarText(root, "version"));
    DLSYS_ASSIGN_OR_RETURN(s.description,
                           r_.String(root, "", "description", false, kMaxDescriptionBytes));
    DLSYS_ASSIGN_OR_RETURN(s.owner, r_.String(root, "", "owner", false, kMaxTextBytes));
    DLSYS_ASSIGN_OR_RETURN(s.license, r_.String(root, "", "license", false, kMaxTextBytes));
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
      DLSYS_ASSIGN_OR_RETURN(
          s.entry_method, r_.String(*it, "entry_point", "method", true, kMaxIdentifierBytes, true));
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
    const Json* v = Find(root, key);
    if (v == nullptr || v->is_null()) return std::string();
    if (v->is_string()) return r_.String(root, "", key, false, kMaxVersionBytes);
    return r_.Bad(key, "a string such as \"1.2.0\"", v);
  }

  Result<TensorSpec> Tensor(const Json& j, const std::string& path) {
    if (!j.is_object()) return r_.Bad(path, "a map with name, dtype, shape", &j);
    DLSYS_TRY(r_.OnlyKeys(j, path, {"name", "dtype", "shape"}));
    TensorSpec t;
    DLSYS_ASSIGN_OR_RETURN(t.name, r_.String(j, path, "name", true, kMaxIdentifierBytes, true));
    DLSYS_ASSIGN_OR_RETURN(t.dtype, r_.String(j, path, "dtype", true, 32));
    auto dtype = runtime::ParseDType(t.dtype);
    if (!dtype) {
      return r_.Bad(Join(path, "dtype"), "a dtype such as float32, int64, bool", Find(j, "dtype"));
    }
    t.dtype = runtime::DTypeName(*dtype);
    DLSYS_ASSIGN_OR_RETURN(t.shape, r_.Shape(j, path, "shape", /*allow_dynamic=*/true, kMaxRank));
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
    if (name.empty() || name.size() > kMaxIdentifierBytes) {
      return r_.Problem(path,
                        "an input name has 1 to " + std::to_string(kMaxIdentifierBytes) + " bytes");
    }
    t.tensor.name = name;
    const TensorSpec* declared = nullptr;
    for (const auto& in : s.inputs) declared = in.name == name ? &in : declared;
    DLSYS_ASSIGN_OR_RETURN(t.tensor.dtype, r_.String(j, path, "dtype", false, 32));
    if (t.tensor.dtype.empty()) t.tensor.dtype = declared ? declared->dtype : "float32";
    auto dtype = runtime::ParseDType(t.tensor.dtype);
    if (!dtype) return r_.Bad(Join(path, "dtype"), "a dtype such as float32", Find(j, "dtype"));
    t.tensor.dtype = runtime::DTypeName(*dtype);
    std::vector<std::int64_t> shape;
    const bool has_shape = Find(j, "shape") != nullptr;
    if (has_shape) {
      DLSYS_ASSIGN_OR_RETURN(shape, r_.Shape(j, path, "shape", /*allow_dynamic=*/false, kMaxRank));
    }
    const Json* data = Find(j, "data");
    const bool has_data = data != nullptr, has_file = Find(j, "file") != nullptr;
    if (has_data == has_file) {
      return Fail(Code::kInvalid, display_ + " field '" + path +
                                      "': give exactly one of 'data' (inline values) or 'file' "
                                      "(raw little-endian bytes)");
    }
    if (has_data) {
      const std::string field = display_ + " field '" + Join(path, "data") + "'";
      std::vector<const Json*> values;
      DLSYS_ASSIGN_OR_RETURN(auto inferred, Flatten(*data, values, field));
      if (!has_shape) shape = std::move(inferred);
      DLSYS_ASSIGN_OR_RETURN(t.bytes, Encode(values, *dtype, field));
    } else {
      DLSYS_ASSIGN_OR_RETURN(std::string file, r_.String(j, path, "file", true, 4096));
      if (!has_shape) return r_.Bad(Join(path, "shape"), "a shape (required with 'file')", nullptr);
      auto bytes = core::ReadFile(Resolve(base_dir_, file), kMaxExampleBytes);
      if (!bytes)
        return tl::unexpected(
            std::move(bytes.error()).Wrap(display_ + " field '" + Join(path, "file") + "'"));
      t.bytes = std::move(*bytes);
    }
    t.tensor.shape = shape;
    const core::ByteSize want = TensorBytes(shape, *dtype);
    if (want != t.bytes.size()) {
      return Fail(Code::kInvalid, display_ + " field '" + path + "': shape " + ShapeText(shape) +
                                      " of " + t.tensor.dtype + " needs " +
                                      (want.overflowed() ? std::string("more than 2^64")
                                                         : std::to_string(*want.value())) +
                                      " bytes, the data has " + std::to_string(t.bytes.size()));
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
      DLSYS_ASSIGN_OR_RETURN(e.name, r_.String(ej, path, "name", false, kMaxNameBytes));
      if (e.name.empty()) e.name = "example" + std::to_string(i);
      if (!CheckName(e.name) || !names.insert(e.name).second) {
        return r_.Bad(Join(path, "name"), "a unique name of a-z 0-9 . _ -", Find(ej, "name"));
      }
      DLSYS_ASSIGN_OR_RETURN(const Json* inputs, r_.Get(ej, path, "inputs", true));
      if (!inputs->is_object() || inputs->empty()) {
        return r_.Bad(Join(path, "inputs"), "a map of input name to {data: ...} or {file: ...}",
                      inputs);
      }
      for (const auto& [name, tj] : inputs->items()) {
        DLSYS_ASSIGN_OR_RETURN(auto t,
                               ExampleTensor(name, tj, Join(Join(path, "inputs"), name), s));
        e.inputs.push_back(std::move(t));
      }
      DLSYS_ASSIGN_OR_RETURN(e.rtol, r_.Number(ej, path, "rtol", false, 1e-5, 0.0));
      DLSYS_ASSIGN_OR_RETURN(e.atol, r_.Number(ej, path, "atol", false, 1e-6, 0.0));
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
        DLSYS_ASSIGN_OR_RETURN(f.archive_path, r_.String(fj, path, "as", false, kMaxPathBytes));
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
  DLSYS_ASSIGN_OR_RETURN(Json root, internal::YamlToJsonValue(yaml, display_name, kSpecLimits));
  return SpecParser(display_name, base_dir).Run(root);
}

Result<Spec> LoadSpec(const std::string& path) {
  DLSYS_ASSIGN_OR_RETURN(std::string text, core::ReadFile(path, kMaxSpecBytes));
  return ParseSpec(text, std::filesystem::path(path).parent_path().string(), path);
}

}  // namespace dlsys::manifest
