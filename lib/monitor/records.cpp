#include "monitor/records.h"

#include <simdjson.h>

#include <array>

#include "core/text.h"

namespace dlsys::monitor {
namespace {

constexpr std::array<std::string_view, 7> kHidden = {"ecs.version", "severity", "service", "host",
                                                     "pid",         "input",    "prediction"};
constexpr std::string_view kDim = "\x1b[2m";
constexpr std::string_view kReset = "\x1b[0m";

std::string_view LevelColor(std::string_view level) {
  if (level == "ERROR" || level == "FATAL") return "\x1b[31;1m";
  if (level == "WARN") return "\x1b[33m";
  if (level == "INFO") return "\x1b[32m";
  return kDim;
}

bool NeedsQuotes(std::string_view s) {
  if (s.empty()) return true;
  for (const char c : s) {
    if (c == ' ' || c == '"' || c == '=' || c == '\\') return true;
  }
  return false;
}

void AppendValue(std::string& out, simdjson::dom::element v) {
  std::string_view text;
  std::string json;
  if (v.get_string().get(text)) {
    json = simdjson::minify(v);  // numbers, booleans, null, arrays and objects as JSON
    text = json;
  }
  const std::string safe = core::TerminalSafe(text);
  if (!NeedsQuotes(safe)) {
    out += safe;
    return;
  }
  out += '"';
  for (const char c : safe) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += '"';
}

}  // namespace

void RenderRecord(std::string& out, std::string_view line, bool color) {
  simdjson::dom::parser parser;
  simdjson::dom::object obj;
  if (parser.parse(line.data(), line.size(), true).get_object().get(obj)) {
    out += core::TerminalSafe(line);
    out += '\n';
    return;
  }
  std::string_view ts, level, event, message;
  (void)obj["@timestamp"].get_string().get(ts);
  (void)obj["log.level"].get_string().get(level);
  (void)obj["event"].get_string().get(event);
  (void)obj["message"].get_string().get(message);
  if (!ts.empty()) {
    // Milliseconds are enough to read; the record keeps the rest.
    const std::size_t dot = ts.find('.');
    std::string shown(ts);
    if (dot != std::string_view::npos && dot + 4 < ts.size() && ts.back() == 'Z') {
      shown = std::string(ts.substr(0, dot + 4)) + "Z";
    }
    if (color) out += kDim;
    out += core::TerminalSafe(shown);
    if (color) out += kReset;
    out += ' ';
  }
  if (!level.empty()) {
    const std::string safe = core::TerminalSafe(level);
    if (color) out += LevelColor(level);
    out += safe;
    if (color) out += kReset;
    out.append(safe.size() < 5 ? 5 - safe.size() : 0, ' ');
    out += ' ';
  }
  if (!event.empty()) {
    if (color) out += "\x1b[1m";
    out += core::TerminalSafe(event);
    if (color) out += kReset;
    out += ": ";
  }
  out += core::TerminalSafe(message);
  for (const auto field : obj) {
    const std::string_view key = field.key;
    if (key == "@timestamp" || key == "log.level" || key == "event" || key == "message") continue;
    bool hidden = false;
    for (const auto h : kHidden) hidden = hidden || key == h;
    if (hidden) continue;
    out += ' ';
    if (color) out += kDim;
    out += core::TerminalSafe(key);
    out += '=';
    if (color) out += kReset;
    AppendValue(out, field.value);
  }
  out += '\n';
}

}  // namespace dlsys::monitor
