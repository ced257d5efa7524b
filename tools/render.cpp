#include "render.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <sstream>

#include "core/encoding.h"

namespace dlsys::cli {
namespace {

using nlohmann::json;

std::string Scalar(const json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

// Flattens a free-form object to "a.b = value" lines.
void Flatten(const json& j, const std::string& prefix, std::vector<std::pair<std::string, std::string>>& out) {
  if (j.is_object() && !j.empty()) {
    for (const auto& [k, v] : j.items()) Flatten(v, prefix.empty() ? k : prefix + "." + k, out);
  } else {
    out.emplace_back(prefix, Scalar(j));
  }
}

void Section(std::ostringstream& os, const char* title, const std::string& object_json) {
  json j = json::parse(object_json);
  if (j.empty()) return;
  std::vector<std::pair<std::string, std::string>> rows;
  Flatten(j, "", rows);
  std::size_t width = 0;
  for (const auto& [k, v] : rows) width = std::max(width, k.size());
  os << "\n" << title << "\n";
  for (const auto& [k, v] : rows) os << "  " << k << std::string(width - k.size() + 2, ' ') << v << "\n";
}

void Row(std::ostringstream& os, const char* key, const std::string& value) {
  if (value.empty()) return;
  char buf[32];
  std::snprintf(buf, sizeof buf, "  %-13s", key);
  os << buf << value << "\n";
}

void Tensors(std::ostringstream& os, const char* title, const std::vector<manifest::TensorSpec>& ts) {
  if (ts.empty()) return;
  std::size_t width = 0;
  for (const auto& t : ts) width = std::max(width, t.name.size());
  os << "\n" << title << "\n";
  for (const auto& t : ts) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%-9s", t.dtype.c_str());
    os << "  " << t.name << std::string(width - t.name.size() + 2, ' ') << buf << manifest::ShapeText(t.shape) << "\n";
  }
}

std::string Group(const runtime::TensorGroupStats& g) {
  if (g.count == 0) return "none";
  std::string s = std::to_string(g.count) + " tensors, " + std::to_string(g.elements) + " elements";
  for (const auto& [dtype, bytes] : g.bytes_by_dtype) {
    s += ", " + dtype + " " + core::HumanBytes(static_cast<std::uint64_t>(bytes));
  }
  return s;
}

std::string XmlEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 && c != '\n' && c != '\t') out += ' ';
        else out += c;
    }
  }
  return out;
}

}  // namespace

std::string RenderInspectText(const std::string& path, const package::InspectResult& r) {
  const auto& m = r.manifest;
  std::ostringstream os;
  os << m.name << " " << m.version;
  if (r.is_signed) {
    os << "  (signed by key " << r.signer_key_ids.front().substr(0, 16) << "…; run dlsys verify to check it)";
  } else {
    os << "  (unsigned)";
  }
  os << "\n";
  Row(os, "archive", path + ", " + core::HumanBytes(r.archive_bytes) + ", compression " +
                         archive::CompressionName(r.compression));
  Row(os, "created", m.created + " by dlsys " + m.tool_version);
  Row(os, "description", m.description);
  Row(os, "owner", m.owner);
  Row(os, "license", m.license);
  std::string schema;
  for (const auto& meth : m.model.methods) {
    if (meth.name == m.entry_method) schema = meth.schema;
  }
  Row(os, "entry point", m.entry_file + " :: " + (schema.empty() ? m.entry_method : schema));
  std::string devices;
  for (const auto& d : m.model.devices) devices += (devices.empty() ? "" : ",") + d;
  Row(os, "runtime", "libtorch " + m.model.runtime_version + ", TorchScript file format " +
                         std::to_string(m.model.file_format_version) + ", devices " + devices);
  if (r.is_signed) {
    for (const auto& k : r.signer_key_ids) Row(os, "signer key", k);
  }
  Tensors(os, "inputs", m.inputs);
  Tensors(os, "outputs", m.outputs);
  os << "\nmodel\n";
  Row(os, "parameters", Group(m.model.parameters));
  Row(os, "buffers", Group(m.model.buffers));
  std::string methods;
  for (const auto& meth : m.model.methods) methods += (methods.empty() ? "" : ", ") + meth.name;
  Row(os, "methods", methods);
  std::string ops;
  for (std::size_t i = 0; i < m.model.operators.size() && i < 12; ++i) {
    ops += (i ? ", " : "") + m.model.operators[i];
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
      std::string in, out;
      for (const auto& t : e.inputs) in += (in.empty() ? "" : "; ") + t.tensor.name + " " + t.tensor.dtype + " " + manifest::ShapeText(t.tensor.shape);
      for (const auto& t : e.outputs) out += (out.empty() ? "" : "; ") + t.tensor.name + " " + t.tensor.dtype + " " + manifest::ShapeText(t.tensor.shape);
      os << "  " << e.name << ": inputs " << in << " -> golden " << out << "\n";
    }
  }
  std::uint64_t total = 0;
  std::size_t width = 0;
  for (const auto& f : m.files) {
    total += f.size;
    width = std::max(width, f.path.size());
  }
  os << "\nfiles (" << m.files.size() << ", " << core::HumanBytes(total) << ")\n";
  for (const auto& f : m.files) {
    char size[32];
    std::snprintf(size, sizeof size, "%10s", core::HumanBytes(f.size).c_str());
    os << "  " << f.path << std::string(width - f.path.size() + 2, ' ') << size << "  sha256 ";
    if (f.shard_bytes) {
      os << f.shards.size() << " shards of " << core::HumanBytes(f.shard_bytes) << "\n";
    } else {
      os << f.sha256.substr(0, 16) << "…\n";
    }
  }
  return os.str();
}

std::string RenderInspectJson(const std::string& path, const package::InspectResult& r) {
  json j{{"archive", path},
         {"archive_bytes", r.archive_bytes},
         {"compression", archive::CompressionName(r.compression)},
         {"signed", r.is_signed},
         {"signer_key_ids", r.signer_key_ids},
         {"manifest", json::parse(r.manifest_json)}};
  return j.dump(2) + "\n";
}

std::string RenderVerifyText(const package::VerifyReport& r) {
  std::ostringstream os;
  os << "verify " << r.archive_path;
  if (!r.name.empty()) os << ": " << r.name << " " << r.version;
  os << "\n";
  std::size_t failed = 0, warned = 0;
  for (const auto& c : r.checks) {
    char buf[48];
    std::snprintf(buf, sizeof buf, "  %s  %-15s ", package::StatusName(c.status), c.check.c_str());
    os << buf << c.message << "\n";
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
    json row{{"check", c.check}, {"subject", c.subject}, {"status", package::StatusName(c.status)},
             {"message", c.message}};
    if (!c.expected.empty()) row["expected"] = c.expected;
    if (!c.found.empty()) row["found"] = c.found;
    checks.push_back(std::move(row));
  }
  json j{{"archive", r.archive_path}, {"ok", r.ok},       {"exit_code", exit_code},
         {"name", r.name},            {"version", r.version}, {"key_id", r.key_id},
         {"checks", checks}};
  return j.dump(2) + "\n";
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

}  // namespace dlsys::cli
