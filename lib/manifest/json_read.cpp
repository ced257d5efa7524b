#include "manifest/internal/json_read.h"

namespace dlsys::manifest::internal {

std::string TypeName(const Json& j) {
  switch (j.type()) {
    case Json::value_t::null: return "null";
    case Json::value_t::object: return "an object";
    case Json::value_t::array: return "an array";
    case Json::value_t::string: return "a string";
    case Json::value_t::boolean: return "a boolean";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned: return "an integer";
    case Json::value_t::number_float: return "a number";
    default: return "a binary value";
  }
}

std::string Brief(const Json& j) {
  std::string s = j.dump(-1, ' ', false, Json::error_handler_t::replace);
  if (s.size() > 80) s = s.substr(0, 77) + "...";
  return s;
}

tl::unexpected<Error> Reader::Bad(const std::string& field, const std::string& expected,
                                  const Json* found) const {
  std::string msg = what_ + " field '" + field + "': expected " + expected;
  msg += found == nullptr ? ", but it is missing" : ", found " + Brief(*found);
  return Fail(Code::kInvalid, msg);
}

Result<const Json*> Reader::Get(const Json& obj, const std::string& path, const char* key,
                                bool required) const {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    if (required) return Bad(Join(path, key), "a value", nullptr);
    return nullptr;
  }
  return &*it;
}

Result<std::string> Reader::String(const Json& obj, const std::string& path, const char* key,
                                   bool required, std::size_t max_len) const {
  DLSYS_ASSIGN_OR_RETURN(const Json* v, Get(obj, path, key, required));
  if (v == nullptr) return std::string();
  if (!v->is_string()) return Bad(Join(path, key), "a string", v);
  const auto& s = v->get_ref<const std::string&>();
  if (s.size() > max_len) {
    return Bad(Join(path, key), "at most " + std::to_string(max_len) + " characters", v);
  }
  return s;
}

Result<std::int64_t> Reader::Int(const Json& obj, const std::string& path, const char* key,
                                 bool required, std::int64_t min, std::int64_t max) const {
  DLSYS_ASSIGN_OR_RETURN(const Json* v, Get(obj, path, key, required));
  if (v == nullptr) return min;
  // nlohmann stores non-negative integers as unsigned: bring them into range first, then apply
  // the same bounds as to signed values (a crafted shard_bytes of 0 must not slip through).
  if (v->is_number_unsigned() && v->get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX)) {
    return Bad(Join(path, key), "an integer <= " + std::to_string(max), v);
  }
  if (!v->is_number_integer()) return Bad(Join(path, key), "an integer", v);
  auto i = v->get<std::int64_t>();
  if (i < min || i > max) {
    return Bad(Join(path, key),
               "an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "]", v);
  }
  return i;
}

Result<double> Reader::Number(const Json& obj, const std::string& path, const char* key,
                              bool required, double fallback) const {
  DLSYS_ASSIGN_OR_RETURN(const Json* v, Get(obj, path, key, required));
  if (v == nullptr) return fallback;
  if (!v->is_number()) return Bad(Join(path, key), "a number", v);
  return v->get<double>();
}

Result<std::string> Reader::Object(const Json& obj, const std::string& path,
                                   const char* key) const {
  DLSYS_ASSIGN_OR_RETURN(const Json* v, Get(obj, path, key, false));
  if (v == nullptr) return std::string("{}");
  if (!v->is_object()) return Bad(Join(path, key), "an object (a map of names to values)", v);
  return v->dump();
}

Result<std::vector<std::string>> Reader::Strings(const Json& obj, const std::string& path,
                                                 const char* key, bool required) const {
  DLSYS_ASSIGN_OR_RETURN(const Json* v, Get(obj, path, key, required));
  std::vector<std::string> out;
  if (v == nullptr) return out;
  if (!v->is_array()) return Bad(Join(path, key), "an array of strings", v);
  for (std::size_t i = 0; i < v->size(); ++i) {
    const Json& e = (*v)[i];
    if (!e.is_string()) return Bad(Index(Join(path, key), i), "a string", &e);
    out.push_back(e.get<std::string>());
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
      return Fail(Code::kInvalid, what_ + " field '" + Join(path, k) +
                                      "' is not a known field (known: " + list + ")");
    }
  }
  return {};
}

}  // namespace dlsys::manifest::internal
