#include "manifest/internal/yaml_json.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/parser.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <optional>
#include <sstream>
#include <vector>

#include "core/text.h"
#include "core/utf8.h"

namespace dlsys::manifest::internal {
namespace {

using Json = nlohmann::json;

// Thrown by the event handler to stop yaml-cpp at the first error: its parser recurses per
// nesting level, and carrying on after a refused level would let it go on recursing.
struct Abort {};

std::string Quoted(std::string_view s) { return core::Truncate(core::TerminalSafe(s), 64); }

// YAML's printable set excludes C0 controls other than tab, LF and CR, and DEL.
std::size_t FindControlCharacter(std::string_view text) {
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7F) return i;
  }
  return std::string_view::npos;
}

bool AllDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?
bool IsFloat(std::string_view s) {
  std::size_t i = (!s.empty() && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
  std::size_t int_digits = 0, frac_digits = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++int_digits;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++frac_digits;
  }
  if (int_digits == 0 && frac_digits == 0) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
    if (!AllDigits(s.substr(i))) return false;
    i = s.size();
  }
  return i == s.size();
}

// YAML 1.2 core schema for plain scalars (tag "?"); anything quoted or tagged stays a string.
// nullopt for a number that no JSON number can hold (an integer beyond 64 bits, 1e400).
std::optional<Json> Scalar(const std::string& tag, const std::string& s) {
  if (tag != "?") return Json(s);
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return Json(nullptr);
  if (s == "true" || s == "True" || s == "TRUE") return Json(true);
  if (s == "false" || s == "False" || s == "FALSE") return Json(false);
  const char first = s[0];
  if (!(std::isdigit(static_cast<unsigned char>(first)) || first == '-' || first == '+' ||
        first == '.')) {
    return Json(s);  // fast path: names such as aten::add
  }
  const std::string_view digits =
      (first == '-' || first == '+') ? std::string_view(s).substr(1) : s;
  const char* end = s.data() + s.size();
  if (AllDigits(digits)) {
    if (first == '-') {
      std::int64_t v = 0;
      if (std::from_chars(s.data(), end, v).ec == std::errc()) return Json(v);
    } else {
      std::uint64_t v = 0;
      if (std::from_chars(digits.data(), end, v).ec == std::errc()) return Json(v);
    }
    return std::nullopt;
  }
  if (IsFloat(s)) {
    // from_chars is locale-independent and reports overflow (strtod and streams do neither
    // reliably); it takes no leading '+'.
    const char* begin = first == '+' ? s.data() + 1 : s.data();
    double d = 0;
    if (std::from_chars(begin, end, d).ec != std::errc()) return std::nullopt;
    return Json(d);
  }
  return Json(s);
}

class Builder : public YAML::EventHandler {
 public:
  Builder(std::string display, const core::JsonLimits& limits)
      : display_(std::move(display)), limits_(limits) {}

  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t) override {
    if (failed_) return;
    CountValue(mark);
    Value(mark, nullptr);
  }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override {
    Reject(mark, "aliases (*name) are not supported; write the value out");
  }
  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t,
                const std::string& value) override {
    if (failed_) return;
    // The text was valid UTF-8, but yaml-cpp decodes some escapes to other bytes (\N, NEL,
    // becomes the single byte 0x85): a decoded key or value must be valid UTF-8 too.
    if (core::FindInvalidUtf8(value) != std::string_view::npos) {
      return Reject(mark,
                    "a string decodes to invalid UTF-8 (a \\N, \\x or \\u escape?); "
                    "write the character itself");
    }
    if (ExpectingKey()) {
      Frame& f = stack_.back();
      if (f.value.contains(value)) return Reject(mark, "key '" + Quoted(value) + "' appears twice");
      f.key = value;
      f.has_key = true;
      return;
    }
    CountValue(mark);
    auto scalar = Scalar(tag, value);
    if (!scalar) return Reject(mark, "number " + Quoted(value) + " is out of range");
    Value(mark, std::move(*scalar));
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    Push(mark, Json::array());
  }
  void OnSequenceEnd() override { Pop(); }
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    Push(mark, Json::object());
  }
  void OnMapEnd() override { Pop(); }

  bool failed() const { return failed_; }
  Result<Json> Take() {
    if (failed_) return tl::unexpected(error_);
    return std::move(root_);
  }

 private:
  struct Frame {
    Json value;
    std::string key;
    bool has_key = false;
  };

  bool ExpectingKey() const {
    return !stack_.empty() && stack_.back().value.is_object() && !stack_.back().has_key;
  }

  [[noreturn]] void Reject(const YAML::Mark& mark, const std::string& what) {
    failed_ = true;
    error_ = dlsys::Error{Code::kInvalid,
                          display_ + ": line " + std::to_string(mark.line + 1) + ", column " +
                              std::to_string(mark.column + 1) + ": " + what,
                          {}};
    throw Abort{};
  }

  void CountValue(const YAML::Mark& mark) {
    if (++values_ > limits_.max_values) {
      Reject(mark, "more than " + std::to_string(limits_.max_values) + " values");
    }
  }

  void Value(const YAML::Mark& mark, Json v) {
    if (failed_) return;
    if (stack_.empty()) {
      root_ = std::move(v);
      return;
    }
    Frame& f = stack_.back();
    if (f.value.is_array()) {
      f.value.push_back(std::move(v));
    } else if (!f.has_key) {
      Reject(mark, "map keys must be plain strings");
    } else {
      f.value[f.key] = std::move(v);
      f.has_key = false;
    }
  }

  void Push(const YAML::Mark& mark, Json container) {
    if (failed_) return;
    if (ExpectingKey()) return Reject(mark, "map keys must be plain strings");
    if (stack_.size() >= limits_.max_depth) {
      return Reject(mark, "nesting deeper than " + std::to_string(limits_.max_depth) + " levels");
    }
    CountValue(mark);
    stack_.push_back(Frame{std::move(container), {}, false});
    marks_.push_back(mark);
  }

  void Pop() {
    if (failed_ || stack_.empty()) return;
    Json done = std::move(stack_.back().value);
    const YAML::Mark mark = marks_.back();
    stack_.pop_back();
    marks_.pop_back();
    Value(mark, std::move(done));
  }

  std::string display_;
  const core::JsonLimits& limits_;
  std::size_t values_ = 0;
  std::vector<Frame> stack_;
  std::vector<YAML::Mark> marks_;
  Json root_;
  bool failed_ = false;
  dlsys::Error error_;
};

}  // namespace

Result<nlohmann::json> YamlToJsonValue(std::string_view yaml, const std::string& display,
                                       const core::JsonLimits& limits) {
  if (yaml.size() > limits.max_bytes) {
    return Fail(Code::kInvalid, display + ": " + std::to_string(yaml.size()) +
                                    " bytes is more than the limit of " +
                                    std::to_string(limits.max_bytes) + " bytes");
  }
  if (const auto bad = core::FindInvalidUtf8(yaml); bad != std::string_view::npos) {
    return Fail(Code::kInvalid, display + ": invalid UTF-8 at byte " + std::to_string(bad));
  }
  if (const auto bad = FindControlCharacter(yaml); bad != std::string_view::npos) {
    char hex[8];
    std::snprintf(hex, sizeof hex, "0x%02x",
                  static_cast<unsigned>(static_cast<unsigned char>(yaml[bad])));
    return Fail(Code::kInvalid,
                display + ": control character " + hex + " at byte " + std::to_string(bad));
  }
  // JSON is YAML: parse JSON documents with the JSON parser, an order of magnitude faster than
  // yaml-cpp's scanner on long lists such as a probed profile's operator set.
  const auto first = yaml.find_first_not_of(" \t\r\n");
  if (first != std::string_view::npos && yaml[first] == '{') {
    return core::ParseJson(yaml, limits, display);
  }
  std::istringstream in{std::string(yaml)};
  Builder builder(display, limits);
  bool more_documents = false;
  try {
    YAML::Parser parser(in);
    if (parser.HandleNextDocument(builder)) {
      Builder rest(display, limits);
      try {
        more_documents = parser.HandleNextDocument(rest);
      } catch (const Abort&) {
        more_documents = true;  // a second document, and a bad one
      }
    }
  } catch (const Abort&) {
    // The builder holds the error.
  } catch (const YAML::Exception& e) {
    if (builder.failed()) return builder.Take();
    return Fail(Code::kInvalid, display + ": line " + std::to_string(e.mark.line + 1) +
                                    ", column " + std::to_string(e.mark.column + 1) +
                                    ": not valid YAML: " + e.msg);
  }
  if (more_documents) {
    return Fail(Code::kInvalid, display +
                                    ": more than one YAML document ('---'); a spec or "
                                    "profile is a single document");
  }
  return builder.Take();
}

}  // namespace dlsys::manifest::internal
