#include "manifest/internal/json_read.h"

#include <cmath>

#include "core/internal/json.h"
#include "core/text.h"

namespace dlsys::manifest::internal {

std::string TypeName(const Json& j) {
  switch (j.type()) {
    case Json::value_t::null:
      return "null";
    case Json::value_t::object:
      return "an object";
    case Json::value_t::array:
      return "an array";
    case Json::value_t::string:
      return "a string";
    case Json::value_t::boolean:
      return "a boolean";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
      return "an integer";
    case Json::value_t::number_float:
      return "a number";
    default:
      return "a binary value";
  }
}

std::string Brief(const Json& j) {
  return core::Truncate(core::TerminalSafe(j.dump(-1, ' ', false, Json::error_handler_t::replace)),
                        80);
}

const Json* Find(const Json& obj, const char* key) {
  if (!obj.is_object()) return nullptr;
  const auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

tl::unexpected<Error> Reader::Bad(const std::string& field, const std::string& expected,
                                  const Json* found) const {
  std::string msg = what_ + " field '" + field + "': expected " + expected;
  msg += found == nullptr ? ", but it is missing" : ", found " + Brief(*found);
  return Fail(Code::kInvalid, msg);
}

tl::unexpected<Error> Reader::Problem(const std::string& field, const std::string& problem) const {
  return Fail(Code::kInvalid, what_ + " field '" + field + "': " + problem);
}

Result<const Json*> Reader::Get(const Json& obj, const std::string& path, const char* key,
                                bool required) const {
  const Json* v = Find(obj, key);
  if (v == nullptr || v->is_null()) {
    if (required) return Bad(Join(path, key), "a value", v);
    return nullptr;
  }
  return v;
}

Result<std::string> Reader::String(const Json& obj, const std::string& path, const char* key,
                                   bool required, std::size_t max_len, bool non_empty) const {
  DLSYS_ASSIGN_OR_RETURN(const Json* v, Get(obj, path, key, required));
  if (v == nullptr) return std::string();
  if (!v->is_string()) return Bad(Join(path, key), "a string", v);
  const auto& s = v->get_ref<const std::string&>();
  if (s.size() > max_len) {
    return Bad(Join(path, key), "a string of at most " + std::to_string(max_len) + " bytes", v);
  }
  if (non_empty && s.empty()) return Bad(Join(path, key), "a non-empty string", v);
  return s;
}

Result<std::int64_t> Reader::Int(const Json& obj, const std::string& path, const char* key,
                                 bool required, std::int64_t min, std::int64_t max) const {
  DLSYS_ASSIGN_OR_RETURN(const Json* v, Get(obj, path, key, required));
  if (v == nullptr) return min;
  if (!v->is_number_integer()) return Bad(Join(path, key), "an integer", v);
  const std::string range =
      "an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "]";
  // nlohmann stores non-negative integers as unsigned: compare them as unsigned, so a value
  // beyond INT64_MAX never wraps into range.
  if (v->is_number_unsigned()) {
    const auto u = v->get<std::uint64_t>();
    if (max < 0 || u > static_cast<std::uint64_t>(max)) return Bad(Join(path, key), range, v);
    const auto i = static_cast<std::int64_t>(u);
    if (i < min) return Bad(Join(path, key), range, v);
    return i;
  }
  const auto i = v->get<std::int64_t>();
  if (i < min || i > max) return Bad(Join(path, key), range, v);
  return i;
}

Result<double> Reader::Number(const Json& obj, const std::string& path, const char* key,
                              bool required, double fallback, double min) const {
  DLSYS_ASSIGN_OR_RETURN(const Json* v, Get(obj, path, key, required));
  if (v == nullptr) return fallback;
  if (!v->is_number()) return Bad(Join(path, key), "a number", v);
  const double d = v->get<double>();
  if (!std::isfinite(d) || d < min) {
    return Bad(Join(path, key),
               min > -std::numeric_limits<double>::max()
                   ? "a finite number >= " + core::EcmaScriptNumber(min)
                   : std::string("a finite number"),
               v);
  }
  return d;
}

Result<std::string> Reader::Object(const Json& obj, const std::string& path,
                                   const char* key) const {
  DLSYS_ASSIGN_OR_RETURN(const Json* v, Get(obj, path, key, false));
  if (v == nullptr) return std::string("{}");
  if (!v->is_object()) return Bad(Join(path, key), "an object (a map of names to values)", v);
  auto text = core::CanonicalJson(*v);
  if (!text) return Problem(Join(path, key), text.error().message);
  return *std::move(text);
}

Result<std::vector<std::string>> Reader::Strings(const Json& obj, const std::string& path,
                                                 const char* key, bool required,
                                                 std::size_t max_len, std::size_t max_items) const {
  DLSYS_ASSIGN_OR_RETURN(const Json* v, Get(obj, path, key, required));
  std::vector<std::string> out;
  if (v == nullptr) return out;
  if (!v->is_array()) return Bad(Join(path, key), "an array of strings", v);
  if (v->size() > max_items) {
    return Bad(Join(path, key), "an array of at most " + std::to_string(max_items) + " strings", v);
  }
  const auto& items = v->get_ref<const Json::array_t&>();
  out.reserve(items.size());
  for (std::size_t i = 0; i < items.size(); ++i) {
    const Json& e = items[i];
    if (!e.is_string()) return Bad(Index(Join(path, key), i), "a string", &e);
    const auto& s = e.get_ref<const std::string&>();
    if (s.empty() || s.size() > max_len) {
      return Bad(Index(Join(path, key), i),
                 "a string of 1 to " + std::to_string(max_len) + " bytes", &e);
    }
    out.push_back(s);
  }
  return out;
}

Result<std::vector<std::int64_t>> Reader::Shape(const Json& obj, const std::string& path,
                                                const char* key, bool allow_dynamic,
                                                std::size_t max_rank) const {
  const std::string field = Join(path, key);
  DLSYS_ASSIGN_OR_RETURN(const Json* shape, Get(obj, path, key, true));
  if (!shape->is_array() || shape->size() > max_rank) {
    return Bad(field, "an array of at most " + std::to_string(max_rank) + " dimensions", shape);
  }
  const char* expected = allow_dynamic
                             ? "a size from 0 to 9007199254740991, or -1 for a dynamic dimension"
                             : "a size from 0 to 9007199254740991";
  std::vector<std::int64_t> out;
  const auto& dims = shape->get_ref<const Json::array_t&>();
  for (std::size_t i = 0; i < dims.size(); ++i) {
    const Json& d = dims[i];
    std::int64_t v = 0;
    if (d.is_number_unsigned()) {
      const auto u = d.get<std::uint64_t>();
      if (u > static_cast<std::uint64_t>(core::kMaxSafeInteger)) {
        return Bad(Index(field, i), expected, &d);
      }
      v = static_cast<std::int64_t>(u);
    } else if (d.is_number_integer()) {
      v = d.get<std::int64_t>();
      if (v != -1 || !allow_dynamic) return Bad(Index(field, i), expected, &d);
    } else {
      return Bad(Index(field, i), expected, &d);
    }
    out.push_back(v);
  }
  return out;
}

Result<void> Reader::OnlyKeys(const Json& obj, const std::string& path,
                              std::initializer_list<const char*> allowed) const {
  for (const auto& [k, v] : obj.items()) {
    bool ok = false;
    for (const char* a : allowed) ok = ok || k == a;
    if (!ok) {
      std::string list;
      for (const char* a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
      return Fail(Code::kInvalid, what_ + " field '" +
                                      Join(path, core::Truncate(core::TerminalSafe(k), 64)) +
                                      "' is not a known field (known: " + list + ")");
    }
  }
  return {};
}

Result<void> Reader::ExactKeys(const Json& obj, const std::string& path,
                               std::initializer_list<const char*> keys) const {
  DLSYS_TRY(OnlyKeys(obj, path, keys));
  for (const char* k : keys) DLSYS_TRY(Get(obj, path, k, true));
  return {};
}

}  // namespace dlsys::manifest::internal
