#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/parser.h>

#include <cctype>
#include <charconv>
#include <sstream>
#include <vector>

#include "manifest/internal/yaml_json.h"

namespace dlsys::manifest::internal {
namespace {

using Json = nlohmann::json;
constexpr std::size_t kMaxDepth = 64;

// yaml-cpp's parser recurses per nesting level before any event reaches us: refuse absurd
// nesting up front, before it can exhaust the stack.
bool NestingTooDeep(std::string_view text) {
  std::size_t depth = 0;
  for (char c : text) {
    if (c == '[' || c == '{') {
      if (++depth > kMaxDepth) return true;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return false;
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
Json Scalar(const std::string& tag, const std::string& s) {
  if (tag != "?") return s;
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  const char first = s[0];
  if (!(std::isdigit(static_cast<unsigned char>(first)) || first == '-' || first == '+' ||
        first == '.')) {
    return s;  // fast path: names such as aten::add
  }
  const std::string_view digits = (first == '-' || first == '+') ? std::string_view(s).substr(1) : s;
  if (AllDigits(digits)) {
    if (first == '-') {
      std::int64_t v = 0;
      if (std::from_chars(s.data(), s.data() + s.size(), v).ec == std::errc()) return v;
    } else {
      std::uint64_t v = 0;
      if (std::from_chars(digits.data(), digits.data() + digits.size(), v).ec == std::errc()) return v;
    }
    return s;  // out of range: keep the text
  }
  if (IsFloat(s)) {
    std::istringstream in(s);
    in.imbue(std::locale::classic());
    double d = 0;
    in >> d;
    return d;
  }
  return s;
}

class Builder : public YAML::EventHandler {
 public:
  explicit Builder(std::string display) : display_(std::move(display)) {}

  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t) override { Value(mark, nullptr); }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override {
    Reject(mark, "aliases (*name) are not supported; write the value out");
  }
  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t,
                const std::string& value) override {
    if (failed_) return;
    if (ExpectingKey()) {
      Frame& f = stack_.back();
      if (f.value.contains(value)) return Reject(mark, "key '" + value + "' appears twice");
      f.key = value;
      f.has_key = true;
      return;
    }
    Value(mark, Scalar(tag, value));
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

  void Reject(const YAML::Mark& mark, const std::string& what) {
    if (failed_) return;
    failed_ = true;
    error_ = dlsys::Error{Code::kInvalid,
                          display_ + ": line " + std::to_string(mark.line + 1) + ", column " +
                              std::to_string(mark.column + 1) + ": " + what,
                          {}};
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
    if (stack_.size() >= kMaxDepth) {
      return Reject(mark, "nesting deeper than " + std::to_string(kMaxDepth) + " levels");
    }
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
  std::vector<Frame> stack_;
  std::vector<YAML::Mark> marks_;
  Json root_;
  bool failed_ = false;
  dlsys::Error error_;
};

}  // namespace

Result<nlohmann::json> YamlToJsonValue(std::string_view yaml, const std::string& display) {
  if (NestingTooDeep(yaml)) {
    return Fail(Code::kInvalid,
                display + ": nesting deeper than " + std::to_string(kMaxDepth) + " levels");
  }
  // JSON is YAML: parse JSON documents with the JSON parser, an order of magnitude faster than
  // yaml-cpp's scanner on long lists such as a probed profile's operator set.
  const auto first = yaml.find_first_not_of(" \t\r\n");
  if (first != std::string_view::npos && yaml[first] == '{') {
    try {
      return Json::parse(yaml.begin(), yaml.end());
    } catch (const Json::exception& e) {
      return Fail(Code::kInvalid, display + ": not valid JSON: " + e.what());
    }
  }
  std::istringstream in{std::string(yaml)};
  Builder builder(display);
  try {
    YAML::Parser parser(in);
    parser.HandleNextDocument(builder);
  } catch (const YAML::Exception& e) {
    return Fail(Code::kInvalid, display + ": line " + std::to_string(e.mark.line + 1) +
                                    ", column " + std::to_string(e.mark.column + 1) +
                                    ": not valid YAML: " + e.msg);
  }
  return builder.Take();
}

}  // namespace dlsys::manifest::internal
