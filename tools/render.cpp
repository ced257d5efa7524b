#include "render.h"

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string_view>

#include "core/encoding.h"
#include "core/text.h"

namespace dlsys::cli {
namespace {

using nlohmann::json;

// Every --json output: ASCII only, malformed UTF-8 replaced, never throws.
template <typename Json>
std::string Dump(const Json& j, int indent) {
  return j.dump(indent, ' ', /*ensure_ascii=*/true, Json::error_handler_t::replace);
}

// A string from an archive, spec or profile as shown in text: cut, then made terminal-safe.
std::string Shown(std::string_view s, std::size_t max_chars = kMaxShownChars) {
  return core::TerminalSafe(core::Truncate(s, max_chars));
}

std::string Safe(std::string_view s) { return core::TerminalSafe(s); }

std::string Pad(const std::string& shown, std::size_t width) {
  const std::size_t n = core::CharCount(shown);
  return std::string(width > n ? width - n : 0, ' ');
}

// The rows of a free-form section: the first kMaxSectionRows leaves as ("a.b.c", value),
// already Shown, and how many more there are. Keys are joined only for rows that are shown,
// and only as far as they are shown, so the work stays linear in the section's size however
// deep and long its keys are.
struct SectionRows {
  std::vector<std::pair<std::string, std::string>> shown;
  std::size_t more = 0;
};

// The dotted key of a leaf, cut in the middle so the root and the leaf stay visible. Joins at
// most 2 * kEnd bytes whatever the path's length: TruncateMiddle keeps fewer than kEnd bytes
// from either end.
std::string JoinKey(const std::vector<const std::string*>& path) {
  constexpr std::size_t kEnd = 4 * (kMaxShownChars + 1);
  std::size_t total = path.empty() ? 0 : path.size() - 1;
  for (const std::string* part : path) total += part->size();
  std::string key;
  if (total <= 2 * kEnd) {
    for (const std::string* part : path) {
      if (!key.empty()) key += '.';
      key += *part;
    }
  } else {
    std::string head;
    for (std::size_t i = 0; i < path.size() && head.size() < kEnd; ++i) {
      if (i > 0) head += '.';
      head.append(*path[i], 0, kEnd - std::min(kEnd, head.size()));
    }
    std::string tail;  // reversed while it is built
    for (std::size_t i = path.size(); i-- > 0 && tail.size() < kEnd;) {
      const std::string& part = *path[i];
      const std::size_t take = std::min(part.size(), kEnd - tail.size());
      tail.append(part.rbegin(), part.rbegin() + static_cast<std::ptrdiff_t>(take));
      if (i > 0) tail += '.';
    }
    std::string end(tail.rbegin(), tail.rend());
    if (end.size() > kEnd) end.erase(0, end.size() - kEnd);
    key = head.substr(0, kEnd) + end;
  }
  return core::TerminalSafe(core::TruncateMiddle(key, kMaxShownChars));
}

std::string ShownValue(const json& v) {
  if (v.is_string()) return Shown(v.get_ref<const std::string&>());
  return Shown(v.dump(-1, ' ', /*ensure_ascii=*/false, json::error_handler_t::replace));
}

void Flatten(const json& j, std::vector<const std::string*>& path, SectionRows& out) {
  if (j.is_object() && !j.empty()) {
    for (auto it = j.begin(); it != j.end(); ++it) {
      path.push_back(&it.key());
      Flatten(it.value(), path, out);
      path.pop_back();
    }
    return;
  }
  if (out.shown.size() < kMaxSectionRows) {
    out.shown.emplace_back(JoinKey(path), ShownValue(j));
  } else {
    ++out.more;
  }
}

void Section(std::ostringstream& os, const char* title, const std::string& object_json) {
  const json j = json::parse(object_json, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    os << "\n" << title << "\n  (not valid JSON; see --json)\n";
    return;
  }
  if (j.empty()) return;
  SectionRows rows;
  std::vector<const std::string*> path;
  Flatten(j, path, rows);
  std::size_t width = 0;
  for (const auto& [k, v] : rows.shown) width = std::max(width, core::CharCount(k));
  os << "\n" << title << "\n";
  for (const auto& [k, v] : rows.shown) os << "  " << k << Pad(k, width + 2) << v << "\n";
  if (rows.more > 0) os << "  … " << rows.more << " more (--json lists all)\n";
}

// value must already be terminal-safe.
void Row(std::ostringstream& os, const char* key, const std::string& value) {
  if (value.empty()) return;
  char buf[32];
  std::snprintf(buf, sizeof buf, "  %-13s", key);
  os << buf << value << "\n";
}

void Tensors(std::ostringstream& os, const char* title,
             const std::vector<manifest::TensorSpec>& ts) {
  if (ts.empty()) return;
  std::vector<std::string> names;
  names.reserve(ts.size());
  std::size_t width = 0;
  for (const auto& t : ts) {
    names.push_back(Shown(t.name));
    width = std::max(width, core::CharCount(names.back()));
  }
  os << "\n" << title << "\n";
  for (std::size_t i = 0; i < ts.size(); ++i) {
    const std::string dtype = Shown(ts[i].dtype);
    os << "  " << names[i] << Pad(names[i], width + 2) << dtype << Pad(dtype, 9)
       << manifest::ShapeText(ts[i].shape) << "\n";
  }
}

std::string Group(const runtime::TensorGroupStats& g) {
  if (g.count == 0) return "none";
  std::string s = std::to_string(g.count) + " tensors, " + std::to_string(g.elements) + " elements";
  for (const auto& [dtype, bytes] : g.bytes_by_dtype) {
    s += ", " + Shown(dtype) + " " + core::HumanBytes(static_cast<std::uint64_t>(bytes));
  }
  return s;
}

std::string TensorList(const std::vector<manifest::ExampleTensor>& ts) {
  std::string s;
  for (const auto& t : ts) {
    if (!s.empty()) s += "; ";
    s += Shown(t.tensor.name) + " " + Shown(t.tensor.dtype) + " " +
         manifest::ShapeText(t.tensor.shape);
  }
  return s;
}

// Well-formed XML 1.0 character data and attribute values: controls and malformed UTF-8
// become visible escapes (TerminalSafe), markup characters become entities, and the two
// non-characters XML forbids (U+FFFE, U+FFFF) are escaped like controls.
std::string XmlEscape(std::string_view raw) {
  const std::string s = core::TerminalSafe(raw);
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        // TerminalSafe output is well-formed UTF-8, so EF BF BE/BF is exactly U+FFFE/U+FFFF.
        if (static_cast<unsigned char>(c) == 0xEF && i + 2 < s.size() &&
            static_cast<unsigned char>(s[i + 1]) == 0xBF &&
            (static_cast<unsigned char>(s[i + 2]) & 0xFE) == 0xBE) {
          out += (s[i + 2] & 1) ? "\\u{ffff}" : "\\u{fffe}";
          i += 2;
        } else {
          out += c;
        }
    }
  }
  return out;
}

json ErrorObject(const Error& e) {
  return json{{"code", CodeName(e.code)}, {"message", e.message}, {"details", e.details}};
}

}  // namespace

std::string RenderInspectText(const std::string& path, const package::InspectResult& r) {
  const auto& m = r.manifest;
  std::ostringstream os;
  os << Shown(m.name) << " " << Shown(m.version);
  if (r.is_signed && !r.signer_key_ids.empty()) {
    os << "  (signed by key " << Shown(r.signer_key_ids.front(), 17)
       << "; run dlsys verify to check it)";
  } else {
    os << "  (unsigned)";
  }
  os << "\n";
  Row(os, "archive",
      Safe(path) + ", " + core::HumanBytes(r.archive_bytes) + ", compression " +
          archive::CompressionName(r.compression));
  Row(os, "created", Shown(m.created) + " by dlsys " + Shown(m.tool_version));
  Row(os, "description", Shown(m.description));
  Row(os, "owner", Shown(m.owner));
  Row(os, "license", Shown(m.license));
  const std::string* schema = nullptr;
  for (const auto& meth : m.model.methods) {
    if (meth.name == m.entry_method && !meth.schema.empty()) schema = &meth.schema;
  }
  Row(os, "entry point", Shown(m.entry_file) + " :: " + Shown(schema ? *schema : m.entry_method));
  std::string devices;
  for (const auto& d : m.model.devices) devices += (devices.empty() ? "" : ",") + Shown(d);
  Row(os, "runtime",
      "libtorch " + Shown(m.model.runtime_version) + ", TorchScript file format " +
          std::to_string(m.model.file_format_version) + ", devices " + devices);
  if (r.is_signed) {
    for (const auto& k : r.signer_key_ids) Row(os, "signer key", Shown(k));
  }
  Tensors(os, "inputs", m.inputs);
  Tensors(os, "outputs", m.outputs);
  os << "\nmodel\n";
  Row(os, "parameters", Group(m.model.parameters));
  Row(os, "buffers", Group(m.model.buffers));
  std::string methods;
  for (const auto& meth : m.model.methods)
    methods += (methods.empty() ? "" : ", ") + Shown(meth.name);
  Row(os, "methods", methods);
  std::string ops;
  for (std::size_t i = 0; i < m.model.operators.size() && i < 12; ++i) {
    ops += (i ? ", " : "") + Shown(m.model.operators[i]);
  }
  if (m.model.operators.size() > 12) ops += ", … (--json lists all)";
  Row(os, "operators", std::to_string(m.model.operators.size()) + ": " + ops);
  Section(os, "lineage", m.lineage_json);
  Section(os, "hyperparameters", m.hyperparameters_json);
  Section(os, "training", m.training_json);
  Section(os, "metrics", m.metrics_json);
  Section(os, "dependencies", m.dependencies_json);
  Section(os, "requirements", m.requirements_json);
  if (!m.examples.empty()) {
    os << "\nexamples\n";
    for (const auto& e : m.examples) {
      os << "  " << Shown(e.name) << ": inputs " << TensorList(e.inputs) << " -> golden "
         << TensorList(e.outputs) << "\n";
    }
  }
  std::uint64_t total = 0;
  std::vector<std::string> paths;
  paths.reserve(m.files.size());
  std::size_t width = 0;
  for (const auto& f : m.files) {
    total += f.size;
    paths.push_back(Shown(f.path));
    width = std::max(width, core::CharCount(paths.back()));
  }
  os << "\nfiles (" << m.files.size() << ", " << core::HumanBytes(total) << ")\n";
  for (std::size_t i = 0; i < m.files.size(); ++i) {
    const auto& f = m.files[i];
    char size[32];
    std::snprintf(size, sizeof size, "%10s", core::HumanBytes(f.size).c_str());
    os << "  " << paths[i] << Pad(paths[i], width + 2) << size << "  sha256 ";
    if (f.shard_bytes) {
      os << f.shards.size() << " shards of " << core::HumanBytes(f.shard_bytes) << "\n";
    } else {
      os << Shown(f.sha256, 17) << "\n";
    }
  }
  return os.str();
}

std::string RenderInspectJson(const std::string& path, const package::InspectResult& r) {
  // The stored bytes parsed once already (Inspect validated them); parse without exceptions
  // all the same so this renderer never throws.
  json manifest = json::parse(r.manifest_json, nullptr, /*allow_exceptions=*/false);
  if (manifest.is_discarded()) manifest = nullptr;
  json j{{"archive", path},
         {"archive_bytes", r.archive_bytes},
         {"compression", archive::CompressionName(r.compression)},
         {"signed", r.is_signed},
         {"signer_key_ids", r.signer_key_ids},
         {"manifest", std::move(manifest)}};
  return Dump(j, 2) + "\n";
}

std::string RenderVerifyText(const package::VerifyReport& r) {
  std::ostringstream os;
  os << "verify " << Safe(r.archive_path);
  if (!r.name.empty()) os << ": " << Shown(r.name) << " " << Shown(r.version);
  os << "\n";
  std::size_t failed = 0, warned = 0;
  for (const auto& c : r.checks) {
    char buf[48];
    std::snprintf(buf, sizeof buf, "  %s  %-15s ", package::StatusName(c.status),
                  Shown(c.check, 40).c_str());
    os << buf << Safe(c.message) << "\n";
    failed += c.status == package::Status::kFail;
    warned += c.status == package::Status::kWarn;
  }
  if (failed > 0) {
    os << "FAILED: " << failed << " of " << r.checks.size() << " checks failed\n";
  } else {
    os << "OK: " << r.checks.size() << " checks passed";
    if (warned) os << " (" << warned << " with warnings)";
    os << "\n";
  }
  return os.str();
}

std::string RenderVerifyJson(const package::VerifyReport& r, int exit_code) {
  json checks = json::array();
  for (const auto& c : r.checks) {
    json row{{"check", c.check},
             {"subject", c.subject},
             {"status", package::StatusName(c.status)},
             {"message", c.message}};
    if (!c.expected.empty()) row["expected"] = c.expected;
    if (!c.found.empty()) row["found"] = c.found;
    checks.push_back(std::move(row));
  }
  json j{
      {"archive", r.archive_path}, {"ok", r.ok},         {"exit_code", exit_code}, {"name", r.name},
      {"version", r.version},      {"key_id", r.key_id}, {"checks", checks}};
  return Dump(j, 2) + "\n";
}

std::string RenderVerifyJUnit(const package::VerifyReport& r) {
  std::size_t failures = 0;
  for (const auto& c : r.checks) failures += c.status == package::Status::kFail;
  std::ostringstream os;
  os << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  os << "<testsuites name=\"dlsys verify\" tests=\"" << r.checks.size() << "\" failures=\""
     << failures << "\">\n";
  os << "  <testsuite name=\"" << XmlEscape(r.archive_path) << "\" tests=\"" << r.checks.size()
     << "\" failures=\"" << failures << "\">\n";
  for (const auto& c : r.checks) {
    os << "    <testcase classname=\"dlsys.verify." << XmlEscape(c.check) << "\" name=\""
       << XmlEscape(c.subject.empty() ? c.check : c.subject) << "\"";
    if (c.status == package::Status::kPass) {
      os << "/>\n";
      continue;
    }
    os << ">\n";
    if (c.status == package::Status::kFail) {
      os << "      <failure message=\"" << XmlEscape(c.message) << "\"/>\n";
    } else {
      os << "      <system-out>WARN: " << XmlEscape(c.message) << "</system-out>\n";
    }
    os << "    </testcase>\n";
  }
  os << "  </testsuite>\n</testsuites>\n";
  return os.str();
}

std::string RenderPackText(const std::string& out, const package::PackResult& r) {
  const std::string signer = r.key_id.empty() ? "unsigned" : "signed by " + Shown(r.key_id, 17);
  return "packed " + Shown(r.manifest.name) + " " + Shown(r.manifest.version) + " -> " + Safe(out) +
         " (" + core::HumanBytes(r.archive_bytes) + ", " + std::to_string(r.manifest.files.size()) +
         " files, " + signer + ")\n";
}

std::string RenderPackJson(const std::string& out, const package::PackResult& r) {
  json j{{"archive", out},
         {"archive_bytes", r.archive_bytes},
         {"name", r.manifest.name},
         {"version", r.manifest.version},
         {"signed", !r.key_id.empty()},
         {"key_id", r.key_id},
         {"files", r.manifest.files.size()}};
  return Dump(j, -1) + "\n";
}

std::string RenderKeygenText(const std::string& out, const std::string& key_id) {
  const std::string path = Safe(out);
  return "wrote private key " + path + " (mode 0600; keep it secret)\n" + "wrote public key  " +
         path + ".pub (give it to verifiers: --trust " + path + ".pub)\n" + "key id            " +
         Safe(key_id) + "\n";
}

std::string RenderKeygenJson(const std::string& out, const std::string& key_id) {
  json j{{"private_key", out},
         {"public_key", out + ".pub"},
         {"key_id", key_id},
         {"algorithm", "ed25519"}};
  return Dump(j, -1) + "\n";
}

std::string RenderProfileJson(const hw::TargetProfile& profile) {
  const auto j = nlohmann::ordered_json::parse(hw::ProfileToJson(profile), nullptr,
                                               /*allow_exceptions=*/false);
  return Dump(j, 2) + "\n";
}

std::string RenderErrorJson(const Error& error, int exit_code) {
  json j{{"ok", false}, {"exit_code", exit_code}, {"error", ErrorObject(error)}};
  return Dump(j, 2) + "\n";
}

std::string RenderVerifyErrorJson(const std::string& archive, const Error& error, int exit_code) {
  json j{{"archive", archive},      {"ok", false},
         {"exit_code", exit_code},  {"name", ""},
         {"version", ""},           {"key_id", ""},
         {"checks", json::array()}, {"error", ErrorObject(error)}};
  return Dump(j, 2) + "\n";
}

}  // namespace dlsys::cli
