#include "core/internal/json.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <exception>
#include <iterator>
#include <new>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/text.h"
#include "core/utf8.h"

namespace dlsys::core {
namespace {

using Json = nlohmann::json;

// Untrusted text quoted in a message.
std::string Quoted(std::string_view s, std::size_t max_chars = 64) {
  return Truncate(TerminalSafe(s), max_chars);
}

// ---------------------------------------------------------------------------------------------
// ParseJson

// An input iterator over the text that publishes how many bytes nlohmann's lexer has consumed.
// nlohmann tells a SAX handler nothing about positions; with this the handler can name the
// byte offset of a duplicate key or a too-deep container.
class CountingIterator {
 public:
  using iterator_category = std::input_iterator_tag;
  using value_type = char;
  using difference_type = std::ptrdiff_t;
  using pointer = const char*;
  using reference = const char&;

  CountingIterator() = default;
  CountingIterator(const char* p, const char* begin, std::size_t* consumed)
      : p_(p), begin_(begin), consumed_(consumed) {}

  reference operator*() const { return *p_; }
  CountingIterator& operator++() {
    ++p_;
    *consumed_ = static_cast<std::size_t>(p_ - begin_);
    return *this;
  }
  CountingIterator operator++(int) {
    CountingIterator old = *this;
    ++*this;
    return old;
  }
  bool operator==(const CountingIterator& other) const { return p_ == other.p_; }
  bool operator!=(const CountingIterator& other) const { return p_ != other.p_; }

 private:
  const char* p_ = nullptr;
  const char* begin_ = nullptr;
  std::size_t* consumed_ = nullptr;
};

bool IsNumberChar(char c) {
  return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E';
}

// A number token without fraction or exponent is an integer literal.
bool IsIntegerLiteral(std::string_view token) {
  return token.find_first_of(".eE") == std::string_view::npos;
}

// Builds the DOM from nlohmann's SAX events, enforcing the limits and refusing duplicate keys.
// The stack holds pointers to open containers; a pointer into an array stays valid because an
// array only grows after its last element (the open child) has been closed.
class DomBuilder {
 public:
  DomBuilder(std::string_view text, const JsonLimits& limits, const std::string& what,
             const std::size_t* consumed)
      : text_(text), limits_(limits), what_(what), consumed_(consumed) {}

  bool null() { return Add(Json(nullptr)); }
  bool boolean(bool v) { return Add(Json(v)); }
  bool number_integer(Json::number_integer_t v) {
    if (v < -kMaxSafeInteger || v > kMaxSafeInteger) {
      return OutOfRange(std::to_string(v));
    }
    return Add(Json(v));
  }
  bool number_unsigned(Json::number_unsigned_t v) {
    if (v > static_cast<std::uint64_t>(kMaxSafeInteger)) return OutOfRange(std::to_string(v));
    return Add(Json(v));
  }
  bool number_float(Json::number_float_t v, const std::string& token) {
    // nlohmann falls back to a double for integer literals beyond 64 bits.
    if (IsIntegerLiteral(token)) return OutOfRange(token);
    if (!std::isfinite(v)) {
      return Reject(NumberStart(), "number " + Quoted(token) + " is not finite");
    }
    return Add(Json(v));
  }
  bool string(std::string& v) { return Add(Json(std::move(v))); }
  bool binary(Json::binary_t&) { return Reject(Consumed(), "binary values are not JSON"); }
  bool start_object(std::size_t) { return Open(Json::object()); }
  bool key(std::string& k) {
    const auto& members = stack_.back()->get_ref<const Json::object_t&>();
    if (members.find(k) != members.end()) {
      return Reject(KeyStart(), "duplicate key '" + Quoted(k) + "'");
    }
    key_ = std::move(k);
    return true;
  }
  bool end_object() {
    stack_.pop_back();
    return true;
  }
  bool start_array(std::size_t) { return Open(Json::array()); }
  bool end_array() {
    stack_.pop_back();
    return true;
  }
  bool parse_error(std::size_t position, const std::string& last_token, const Json::exception& ex) {
    if (ex.id == 406) {  // a number too large for a double
      const std::size_t start = position >= last_token.size() ? position - last_token.size() : 0;
      return Reject(start, "number " + Quoted(last_token) + " is not finite");
    }
    // "[json.exception.parse_error.101] parse error at line 1, column 2: syntax error ..."
    std::string detail = ex.what();
    if (const auto pos = detail.find("] "); pos != std::string::npos) detail.erase(0, pos + 2);
    if (detail.rfind("parse error", 0) == 0) {
      if (const auto pos = detail.find(": "); pos != std::string::npos) detail.erase(0, pos + 2);
    }
    error_ = Error{Code::kInvalid,
                   what_ + ": not valid JSON at byte " +
                       std::to_string(position > 0 ? position - 1 : 0) + ": " + detail,
                   {}};
    return false;
  }

  Result<Json> Take() {
    if (error_) return tl::unexpected(std::move(*error_));
    return std::move(root_);
  }
  bool failed() const { return error_.has_value(); }

 private:
  std::size_t Consumed() const { return *consumed_; }

  // The lexer has read the closing quote of the key: walk back to its unescaped opening quote.
  std::size_t KeyStart() const {
    std::size_t close = Consumed() > 0 ? Consumed() - 1 : 0;
    for (std::size_t j = close; j-- > 0;) {
      if (text_[j] != '"') continue;
      std::size_t backslashes = 0;
      while (j - backslashes > 0 && text_[j - backslashes - 1] == '\\') ++backslashes;
      if (backslashes % 2 == 0) return j;
    }
    return 0;
  }

  // The lexer has read a number and (unless at the end) one delimiter after it.
  std::size_t NumberStart() const {
    std::size_t i = std::min(Consumed(), text_.size());
    if (i > 0 && !IsNumberChar(text_[i - 1])) --i;
    while (i > 0 && IsNumberChar(text_[i - 1])) --i;
    return i;
  }

  bool OutOfRange(const std::string& token) {
    return Reject(NumberStart(), "integer " + Quoted(token) +
                                     " is outside the exactly representable range "
                                     "+-(2^53 - 1) (I-JSON)");
  }

  bool Reject(std::size_t offset, const std::string& problem) {
    error_ =
        Error{Code::kInvalid, what_ + ": " + problem + " at byte " + std::to_string(offset), {}};
    return false;
  }

  bool Count() {
    if (++values_ <= limits_.max_values) return true;
    return Reject(Consumed() > 0 ? Consumed() - 1 : 0,
                  "more than " + std::to_string(limits_.max_values) + " values");
  }

  // Places a value in the open container (or as the root) and returns where it lives.
  Json* Place(Json&& v) {
    if (stack_.empty()) {
      root_ = std::move(v);
      return &root_;
    }
    Json& parent = *stack_.back();
    if (parent.is_array()) {
      auto& elements = parent.get_ref<Json::array_t&>();
      elements.push_back(std::move(v));
      return &elements.back();
    }
    auto& members = parent.get_ref<Json::object_t&>();
    return &members.emplace(std::move(key_), std::move(v)).first->second;
  }

  bool Add(Json&& v) {
    if (!Count()) return false;
    Place(std::move(v));
    return true;
  }

  bool Open(Json&& container) {
    if (stack_.size() >= limits_.max_depth) {
      return Reject(Consumed() > 0 ? Consumed() - 1 : 0,
                    "nesting deeper than " + std::to_string(limits_.max_depth) + " levels");
    }
    if (!Count()) return false;
    stack_.push_back(Place(std::move(container)));
    return true;
  }

  std::string_view text_;
  const JsonLimits& limits_;
  const std::string& what_;
  const std::size_t* consumed_;
  Json root_;
  std::vector<Json*> stack_;
  std::string key_;
  std::size_t values_ = 0;
  std::optional<Error> error_;
};

// ---------------------------------------------------------------------------------------------
// CanonicalJson

// RFC 8785 strings keep UTF-8 (and DEL) as they are; only ", \ and C0 controls are escaped.
void AppendString(std::string& out, std::string_view s) {
  out.push_back('"');
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == '"' || c == '\\') {
      AppendJsonAsciiEscape(out, c);
    } else {
      out.push_back(ch);
    }
  }
  out.push_back('"');
}

// UTF-16 code units of valid UTF-8 text (RFC 8785 sorts member names by these).
std::u16string Utf16(std::string_view s) {
  std::u16string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    char32_t cp = static_cast<unsigned char>(s[i]);
    // Names were validated as UTF-8 on the way in; a stray byte still advances by one.
    i += std::max<std::size_t>(DecodeUtf8At(s, i, &cp), 1);
    if (cp >= 0x10000) {
      cp -= 0x10000;
      out.push_back(static_cast<char16_t>(0xD800 + (cp >> 10)));
      out.push_back(static_cast<char16_t>(0xDC00 + (cp & 0x3FF)));
    } else {
      out.push_back(static_cast<char16_t>(cp));
    }
  }
  return out;
}

struct Member {
  std::u16string sort_key;
  const std::string* name;
  const Json* value;
};

struct Frame {
  const Json* node;
  std::vector<Member> members;  // objects only, sorted
  std::size_t next = 0;         // index of the next child to write
};

// "/a/0/b": where the value being written sits, for error messages.
std::string PointerOf(const std::vector<Frame>& stack) {
  std::string out;
  for (const Frame& f : stack) {
    if (f.next == 0) break;
    out += '/';
    out +=
        f.node->is_object() ? Quoted(*f.members[f.next - 1].name, 32) : std::to_string(f.next - 1);
  }
  return out.empty() ? "/" : out;
}

Error CanonicalError(const std::vector<Frame>& stack, const std::string& problem) {
  return Error{
      Code::kInvalid, "cannot write canonical JSON: " + problem + " at " + PointerOf(stack), {}};
}

// Writes a scalar, or opens a container (pushing its frame).
Result<void> Emit(const Json& v, std::string& out, std::vector<Frame>& stack) {
  switch (v.type()) {
    case Json::value_t::null:
      out += "null";
      return {};
    case Json::value_t::boolean:
      out += v.get<bool>() ? "true" : "false";
      return {};
    case Json::value_t::number_integer: {
      const auto i = v.get<std::int64_t>();
      if (i < -kMaxSafeInteger || i > kMaxSafeInteger) {
        return tl::unexpected(
            CanonicalError(stack, "integer " + std::to_string(i) + " is outside +-(2^53 - 1)"));
      }
      out += std::to_string(i);
      return {};
    }
    case Json::value_t::number_unsigned: {
      const auto u = v.get<std::uint64_t>();
      if (u > static_cast<std::uint64_t>(kMaxSafeInteger)) {
        return tl::unexpected(
            CanonicalError(stack, "integer " + std::to_string(u) + " is outside +-(2^53 - 1)"));
      }
      out += std::to_string(u);
      return {};
    }
    case Json::value_t::number_float: {
      const double d = v.get<double>();
      if (!std::isfinite(d)) {
        return tl::unexpected(
            CanonicalError(stack, "number " + EcmaScriptNumber(d) + " is not finite"));
      }
      const std::string text = EcmaScriptNumber(d);
      if (std::fabs(d) > static_cast<double>(kMaxSafeInteger) && IsIntegerLiteral(text)) {
        return tl::unexpected(CanonicalError(
            stack, "number " + text + " would be written as an integer outside +-(2^53 - 1)"));
      }
      out += text;
      return {};
    }
    case Json::value_t::string: {
      const auto& s = v.get_ref<const std::string&>();
      if (const auto bad = FindInvalidUtf8(s); bad != std::string::npos) {
        return tl::unexpected(
            CanonicalError(stack, "string is not valid UTF-8 (byte " + std::to_string(bad) + ")"));
      }
      AppendString(out, s);
      return {};
    }
    case Json::value_t::array:
      out.push_back('[');
      stack.push_back(Frame{&v, {}, 0});
      return {};
    case Json::value_t::object: {
      Frame f{&v, {}, 0};
      const auto& members = v.get_ref<const Json::object_t&>();
      f.members.reserve(members.size());
      for (const auto& [name, value] : members) {
        if (const auto bad = FindInvalidUtf8(name); bad != std::string::npos) {
          return tl::unexpected(
              CanonicalError(stack, "member name '" + Quoted(name) + "' is not valid UTF-8"));
        }
        f.members.push_back(Member{Utf16(name), &name, &value});
      }
      std::sort(f.members.begin(), f.members.end(),
                [](const Member& a, const Member& b) { return a.sort_key < b.sort_key; });
      out.push_back('{');
      stack.push_back(std::move(f));
      return {};
    }
    default:
      return tl::unexpected(CanonicalError(stack, "binary or discarded values are not JSON"));
  }
}

}  // namespace

Result<nlohmann::json> ParseJson(std::string_view text, const JsonLimits& limits,
                                 const std::string& what) {
  if (text.size() > limits.max_bytes) {
    return Fail(Code::kInvalid, what + ": " + std::to_string(text.size()) +
                                    " bytes is more than the limit of " +
                                    std::to_string(limits.max_bytes) + " bytes");
  }
  if (text.substr(0, 3) == "\xEF\xBB\xBF") {
    return Fail(Code::kInvalid, what + ": byte order mark at byte 0 (JSON text must not have one)");
  }
  if (const auto bad = FindInvalidUtf8(text); bad != std::string_view::npos) {
    return Fail(Code::kInvalid, what + ": invalid UTF-8 at byte " + std::to_string(bad));
  }
  std::size_t consumed = 0;
  DomBuilder builder(text, limits, what, &consumed);
  try {
    const char* begin = text.data();
    const bool ok = Json::sax_parse(CountingIterator(begin, begin, &consumed),
                                    CountingIterator(begin + text.size(), begin, &consumed),
                                    &builder, Json::input_format_t::json, /*strict=*/true,
                                    /*ignore_comments=*/false);
    if (!ok && !builder.failed()) {
      return Fail(Code::kInvalid, what + ": not valid JSON");
    }
  } catch (const std::bad_alloc&) {
    return Fail(Code::kInternal, what + ": out of memory while parsing JSON");
  } catch (const std::exception& e) {
    return Fail(Code::kInvalid, what + ": not valid JSON: " + e.what());
  }
  return builder.Take();
}

Result<std::string> CanonicalJson(const nlohmann::json& value) {
  std::string out;
  std::vector<Frame> stack;
  try {
    DLSYS_TRY(Emit(value, out, stack));
    while (!stack.empty()) {
      Frame& f = stack.back();
      const bool is_object = f.node->is_object();
      const std::size_t n = is_object ? f.members.size() : f.node->size();
      if (f.next == n) {
        out.push_back(is_object ? '}' : ']');
        stack.pop_back();
        continue;
      }
      if (f.next > 0) out.push_back(',');
      const Json* child = nullptr;
      if (is_object) {
        AppendString(out, *f.members[f.next].name);
        out.push_back(':');
        child = f.members[f.next].value;
      } else {
        child = &f.node->get_ref<const Json::array_t&>()[f.next];
      }
      ++f.next;
      DLSYS_TRY(Emit(*child, out, stack));  // may push: `f` is not used after this
    }
  } catch (const std::bad_alloc&) {
    return Fail(Code::kInternal, "cannot write canonical JSON: out of memory");
  }
  return out;
}

std::string EcmaScriptNumber(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  if (v == 0) return "0";  // also -0
  std::string sign = v < 0 ? "-" : "";
  // The shortest digits that round-trip, ties to the closest (what ECMAScript asks for): the
  // C++ standard specifies exactly this for to_chars without a precision.
  char buf[64];
  const auto res =
      std::to_chars(buf, buf + sizeof buf, std::fabs(v), std::chars_format::scientific);
  const std::string_view sci(buf, static_cast<std::size_t>(res.ptr - buf));  // "d.ddde+XX"
  const std::size_t e = sci.find('e');
  std::string digits(sci.substr(0, e));
  digits.erase(std::remove(digits.begin(), digits.end(), '.'), digits.end());
  const int exponent = std::atoi(std::string(sci.substr(e + 1)).c_str());
  // ECMA-262 Number::toString: v = 0.digits * 10^n, with k digits.
  const int k = static_cast<int>(digits.size());
  const int n = exponent + 1;
  if (k <= n && n <= 21) return sign + digits + std::string(static_cast<std::size_t>(n - k), '0');
  if (0 < n && n <= 21) {
    return sign + digits.substr(0, static_cast<std::size_t>(n)) + "." +
           digits.substr(static_cast<std::size_t>(n));
  }
  if (-6 < n && n <= 0)
    return sign + "0." + std::string(static_cast<std::size_t>(-n), '0') + digits;
  const int e10 = n - 1;
  const std::string exp = std::string(e10 < 0 ? "-" : "+") + std::to_string(e10 < 0 ? -e10 : e10);
  if (k == 1) return sign + digits + "e" + exp;
  return sign + digits.substr(0, 1) + "." + digits.substr(1) + "e" + exp;
}

}  // namespace dlsys::core
