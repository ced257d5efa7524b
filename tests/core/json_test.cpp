#include "core/internal/json.h"

#include <gtest/gtest.h>

#include <bit>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "core/utf8.h"

namespace dlsys::core {
namespace {

using Json = nlohmann::json;

#define EXPECT_HAS(haystack, needle)                               \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) \
      << "'" << (haystack) << "' lacks '" << (needle) << "'"

const JsonLimits kLimits{1 << 20, 64, 100000};

Json MustParse(std::string_view text, const JsonLimits& limits = kLimits) {
  auto r = ParseJson(text, limits, "doc");
  EXPECT_TRUE(r) << r.error().message;
  return r ? *r : Json();
}

// Parses text that must be rejected; returns the message (kInvalid is asserted).
std::string ParseError(std::string_view text, const JsonLimits& limits = kLimits) {
  auto r = ParseJson(text, limits, "doc");
  EXPECT_FALSE(r) << "accepted: " << std::string(text.substr(0, 200));
  if (r) return "";
  EXPECT_EQ(r.error().code, Code::kInvalid) << r.error().message;
  EXPECT_EQ(r.error().message.rfind("doc: ", 0), 0u) << r.error().message;
  return r.error().message;
}

std::string Canonical(const Json& j) {
  auto r = CanonicalJson(j);
  EXPECT_TRUE(r) << r.error().message;
  return r ? *r : "";
}

std::string CanonicalError(const Json& j) {
  auto r = CanonicalJson(j);
  EXPECT_FALSE(r) << "accepted: " << *r;
  if (r) return "";
  EXPECT_EQ(r.error().code, Code::kInvalid);
  return r.error().message;
}

// --- UTF-8 ----------------------------------------------------------------------------------

TEST(Utf8Test, AcceptsWellFormedText) {
  for (const std::string& s :
       {std::string(""), std::string("ascii"), std::string("caf\xC3\xA9"),
        std::string("\xE2\x82\xAC"), std::string("\xED\x9F\xBF"),          // U+D7FF
        std::string("\xEE\x80\x80"),                                       // U+E000
        std::string("\xF0\x9F\x98\x82"), std::string("\xF4\x8F\xBF\xBF"),  // U+10FFFF
        std::string("\0", 1)}) {
    EXPECT_TRUE(IsValidUtf8(s)) << s;
    EXPECT_EQ(FindInvalidUtf8(s), std::string_view::npos);
  }
}

TEST(Utf8Test, RejectsOverlongsSurrogatesAndOutOfRange) {
  const std::vector<std::pair<std::string, std::size_t>> cases = {
      {"\x80", 0},              // stray continuation byte
      {"ab\xC0\xAF", 2},        // overlong '/'
      {"\xC1\xBF", 0},          // overlong
      {"\xE0\x80\xAF", 0},      // overlong 3-byte
      {"\xF0\x80\x80\xAF", 0},  // overlong 4-byte
      {"x\xED\xA0\x80", 1},     // U+D800, a surrogate
      {"\xED\xBF\xBF", 0},      // U+DFFF
      {"\xF4\x90\x80\x80", 0},  // U+110000
      {"\xF5\x80\x80\x80", 0},  // lead byte beyond U+10FFFF
      {"\xFF", 0},
      {"abc\xE2\x82", 3},  // truncated at the end
      {"\xE2\x82x", 0},    // truncated in the middle
      {"\xC3\xA9\xC3", 2},
  };
  for (const auto& [text, offset] : cases) {
    EXPECT_FALSE(IsValidUtf8(text));
    EXPECT_EQ(FindInvalidUtf8(text), offset);
  }
}

// --- ParseJson: what it accepts -------------------------------------------------------------

TEST(ParseJsonTest, BuildsTheDom) {
  const Json j =
      MustParse(R"( {"a": [1, -2, 1.5, "s", true, false, null, {}, []], "b": {"c": "\u00e9"}} )");
  ASSERT_TRUE(j.is_object());
  const Json& a = j["a"];
  ASSERT_EQ(a.size(), 9u);
  EXPECT_TRUE(a[0].is_number_unsigned());
  EXPECT_EQ(a[0].get<std::uint64_t>(), 1u);
  EXPECT_TRUE(a[1].is_number_integer());
  EXPECT_EQ(a[1].get<std::int64_t>(), -2);
  EXPECT_TRUE(a[2].is_number_float());
  EXPECT_EQ(a[3], "s");
  EXPECT_EQ(a[4], true);
  EXPECT_EQ(a[5], false);
  EXPECT_TRUE(a[6].is_null());
  EXPECT_TRUE(a[7].is_object());
  EXPECT_TRUE(a[8].is_array());
  EXPECT_EQ(j["b"]["c"], "\xC3\xA9");
  EXPECT_EQ(MustParse("7"), 7);
  EXPECT_EQ(MustParse("\"x\""), "x");
}

TEST(ParseJsonTest, AcceptsTheSafeIntegerRange) {
  EXPECT_EQ(MustParse("9007199254740991").get<std::uint64_t>(), 9007199254740991u);
  EXPECT_EQ(MustParse("-9007199254740991").get<std::int64_t>(), -9007199254740991);
  EXPECT_EQ(MustParse("1.5e300").get<double>(), 1.5e300);
  EXPECT_EQ(MustParse("1e-400").get<double>(), 0.0);  // underflow rounds to zero, it is finite
}

// --- ParseJson: what it refuses -------------------------------------------------------------

TEST(ParseJsonTest, RejectsDuplicateKeysNamingKeyAndOffset) {
  EXPECT_EQ(ParseError(R"({"name":1,"name":2})"), "doc: duplicate key 'name' at byte 10");
  // At depth, inside an array of objects.
  const std::string deep = R"({"a":{"b":[{"c":1},{"c":2,"d":3,"c":4}]}})";
  EXPECT_EQ(ParseError(deep),
            "doc: duplicate key 'c' at byte " + std::to_string(deep.rfind("\"c\"")));
  // The same name spelt with an escape is the same key.
  EXPECT_EQ(ParseError(R"({"a":1, "\u0061":2})"), "doc: duplicate key 'a' at byte 8");
  // An escaped quote inside the key does not confuse the offset.
  const std::string quoted = R"({"x\"y":1,"x\"y":2})";
  EXPECT_EQ(ParseError(quoted), "doc: duplicate key 'x\"y' at byte 10");
  // Distinct keys in different objects are fine.
  EXPECT_TRUE(MustParse(R"({"a":{"k":1},"b":{"k":1}})").is_object());
}

TEST(ParseJsonTest, DeepNestingIsRefusedWithoutCrashing) {
  const std::string million(1000000, '[');
  EXPECT_EQ(ParseError(million, JsonLimits{2000000, 64, 100000}),
            "doc: nesting deeper than 64 levels at byte 64");
  const std::string objects = [] {
    std::string s;
    for (int i = 0; i < 100000; ++i) s += "{\"a\":";
    return s;
  }();
  EXPECT_HAS(ParseError(objects, JsonLimits{1000000, 64, 100000}), "nesting deeper than 64");

  // Exactly at the limit is fine; one more level is not.
  const std::string at_limit = std::string(64, '[') + std::string(64, ']');
  EXPECT_TRUE(MustParse(at_limit).is_array());
  const std::string over = std::string(65, '[') + std::string(65, ']');
  EXPECT_EQ(ParseError(over), "doc: nesting deeper than 64 levels at byte 64");
  EXPECT_EQ(ParseError("[[[]]]", JsonLimits{100, 2, 100}),
            "doc: nesting deeper than 2 levels at byte 2");
}

TEST(ParseJsonTest, RejectsInvalidUtf8Anywhere) {
  EXPECT_EQ(ParseError("{\"k\xC3\":1}"), "doc: invalid UTF-8 at byte 3");             // in a key
  EXPECT_EQ(ParseError("{\"k\":\"\xED\xA0\x80\"}"), "doc: invalid UTF-8 at byte 6");  // surrogate
  EXPECT_EQ(ParseError("[1, \xFF]"), "doc: invalid UTF-8 at byte 4");             // outside strings
  EXPECT_EQ(ParseError("\"\xC0\xAF\""), "doc: invalid UTF-8 at byte 1");          // overlong
  EXPECT_EQ(ParseError("\"\xF4\x90\x80\x80\""), "doc: invalid UTF-8 at byte 1");  // > U+10FFFF
  // Escapes that would produce invalid text are refused by the lexer.
  EXPECT_HAS(ParseError(R"("\ud800")"), "not valid JSON");
  EXPECT_HAS(ParseError(R"("\udc00x")"), "not valid JSON");
  EXPECT_EQ(MustParse(R"("\ud83d\ude02")"), "\xF0\x9F\x98\x82");
}

TEST(ParseJsonTest, EnforcesSizeAndValueLimits) {
  EXPECT_EQ(ParseError("[1,2,3]", JsonLimits{6, 64, 100}),
            "doc: 7 bytes is more than the limit of 6 bytes");
  EXPECT_TRUE(MustParse("[1,2,3]", JsonLimits{7, 64, 4}).is_array());  // 4 values: [ 1 2 3
  EXPECT_HAS(ParseError("[1,2,3]", JsonLimits{7, 64, 3}), "doc: more than 3 values at byte");
  EXPECT_HAS(ParseError(R"({"a":{},"b":{}})", JsonLimits{100, 64, 2}), "more than 2 values");
  // A long flat array stops at the limit instead of growing without bound.
  std::string many = "[";
  for (int i = 0; i < 200000; ++i) many += "0,";
  many += "0]";
  EXPECT_HAS(ParseError(many, JsonLimits{1 << 20, 64, 100000}), "more than 100000 values");
}

TEST(ParseJsonTest, RejectsIntegersOutsideIJsonRange) {
  EXPECT_EQ(ParseError("9007199254740992"),
            "doc: integer 9007199254740992 is outside the exactly representable range "
            "+-(2^53 - 1) (I-JSON) at byte 0");
  EXPECT_HAS(ParseError("[-9007199254740992]"), "integer -9007199254740992");
  EXPECT_HAS(ParseError("[-9007199254740992]"), "at byte 1");
  EXPECT_HAS(ParseError("{\"a\": 18446744073709551615}"), "integer 18446744073709551615");
  EXPECT_HAS(ParseError("{\"a\": 18446744073709551616}"), "integer 18446744073709551616");
  EXPECT_HAS(ParseError("[1, 123456789012345678901234567890]"), "at byte 4");
}

TEST(ParseJsonTest, RejectsNonFiniteNumbers) {
  EXPECT_EQ(ParseError("[1e400]"), "doc: number 1e400 is not finite at byte 1");
  EXPECT_HAS(ParseError("{\"x\": -1.5e999}"), "number -1.5e999 is not finite at byte 6");
  EXPECT_HAS(ParseError("[NaN]"), "not valid JSON");
  EXPECT_HAS(ParseError("[Infinity]"), "not valid JSON");
}

TEST(ParseJsonTest, RejectsMalformedText) {
  for (const char* text : {"", " ", "{", "[1,]", "{\"a\":1,}", "{'a':1}", "[01]", "[1.]", "[.5]",
                           "[+1]", "\"a\nb\"", "[1] [2]", "{\"a\"}", "// c\n1", "tru"}) {
    const std::string msg = ParseError(text);
    EXPECT_HAS(msg, "doc: not valid JSON at byte ");
  }
  EXPECT_HAS(ParseError("[1] x"), "at byte 4");
  EXPECT_EQ(ParseError("\xEF\xBB\xBF{}"),
            "doc: byte order mark at byte 0 (JSON text must not have one)");
}

// --- EcmaScriptNumber: RFC 8785 appendix B --------------------------------------------------

TEST(EcmaScriptNumberTest, Rfc8785AppendixB) {
  const std::vector<std::pair<std::uint64_t, std::string>> table = {
      {0x0000000000000000, "0"},
      {0x8000000000000000, "0"},  // -0
      {0x0000000000000001, "5e-324"},
      {0x8000000000000001, "-5e-324"},
      {0x7fefffffffffffff, "1.7976931348623157e+308"},
      {0xffefffffffffffff, "-1.7976931348623157e+308"},
      {0x4340000000000000, "9007199254740992"},
      {0xc340000000000000, "-9007199254740992"},
      {0x4430000000000000, "295147905179352830000"},
      {0x7fffffffffffffff, "NaN"},
      {0x7ff0000000000000, "Infinity"},
      {0x44b52d02c7e14af5, "9.999999999999997e+22"},
      {0x44b52d02c7e14af6, "1e+23"},
      {0x44b52d02c7e14af7, "1.0000000000000001e+23"},
      {0x444b1ae4d6e2ef4e, "999999999999999700000"},
      {0x444b1ae4d6e2ef4f, "999999999999999900000"},
      {0x444b1ae4d6e2ef50, "1e+21"},
      {0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"},
      {0x3eb0c6f7a0b5ed8d, "0.000001"},
      {0x41b3de4355555553, "333333333.3333332"},
      {0x41b3de4355555554, "333333333.33333325"},
      {0x41b3de4355555555, "333333333.3333333"},
      {0x41b3de4355555556, "333333333.3333334"},
      {0x41b3de4355555557, "333333333.33333343"},
      {0xbecbf647612f3696, "-0.0000033333333333333333"},
      {0x43143ff3c1cb0959, "1424953923781206.2"},  // round to even
  };
  for (const auto& [bits, text] : table) {
    EXPECT_EQ(EcmaScriptNumber(std::bit_cast<double>(bits)), text) << std::hex << bits;
  }
  EXPECT_EQ(EcmaScriptNumber(4.5), "4.5");
  EXPECT_EQ(EcmaScriptNumber(0.002), "0.002");
  EXPECT_EQ(EcmaScriptNumber(1e30), "1e+30");
  EXPECT_EQ(EcmaScriptNumber(1e-27), "1e-27");
  EXPECT_EQ(EcmaScriptNumber(1e-7), "1e-7");
  EXPECT_EQ(EcmaScriptNumber(1.5e-7), "1.5e-7");
  EXPECT_EQ(EcmaScriptNumber(1e21), "1e+21");
  EXPECT_EQ(EcmaScriptNumber(1e20), "100000000000000000000");
  EXPECT_EQ(EcmaScriptNumber(123e18), "123000000000000000000");
  EXPECT_EQ(EcmaScriptNumber(100), "100");
  EXPECT_EQ(EcmaScriptNumber(-0.5), "-0.5");
  EXPECT_EQ(EcmaScriptNumber(9007199254740991.0), "9007199254740991");
  EXPECT_EQ(EcmaScriptNumber(0.1 + 0.2), "0.30000000000000004");
  EXPECT_EQ(EcmaScriptNumber(-std::numeric_limits<double>::infinity()), "-Infinity");
}

// --- CanonicalJson --------------------------------------------------------------------------

TEST(CanonicalJsonTest, Rfc8785Example) {
  // RFC 8785 section 3.2.4 (input and expected output).
  const std::string input = R"({
  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
})";
  EXPECT_EQ(Canonical(MustParse(input)),
            "{\"literals\":[null,true,false],\"numbers\":[333333333.3333333,1e+30,4.5,0.002,"
            "1e-27],\"string\":\"\xE2\x82\xAC$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}");
}

TEST(CanonicalJsonTest, SortsMembersByUtf16CodeUnits) {
  // RFC 8785 section 3.2.3 / the reference test data ("weird.json"): U+1F602 (a surrogate
  // pair, D83D DE02) sorts before U+FB33 in UTF-16 although its UTF-8 bytes sort after.
  const std::string input = R"({
  "\u20ac": "Euro Sign",
  "1": "One",
  "\u0080": "Control\u007f",
  "\ud83d\ude02": "Smiley",
  "\u00f6": "Latin Small Letter O With Diaeresis",
  "\ufb33": "Hebrew Letter Dalet With Dagesh",
  "</script>": "Browser Challenge"
})";
  EXPECT_EQ(Canonical(MustParse(input)),
            "{\"1\":\"One\",\"</script>\":\"Browser Challenge\",\"\xC2\x80\":\"Control\x7F\","
            "\"\xC3\xB6\":\"Latin Small Letter O With Diaeresis\",\"\xE2\x82\xAC\":\"Euro Sign\","
            "\"\xF0\x9F\x98\x82\":\"Smiley\",\"\xEF\xAC\xB3\":\"Hebrew Letter Dalet With "
            "Dagesh\"}");
  // Nested structures and locale-independent order ("structures.json", "french.json").
  EXPECT_EQ(Canonical(MustParse(R"({"1": {"f": {"f": "hi","F": 5} ,"\n": 56.0},
      "10": { }, "": "empty", "a": { }, "111": [ { } ], "A": { }})")),
            R"({"":"empty","1":{"\n":56,"f":{"F":5,"f":"hi"}},"10":{},"111":[{}],"A":{},"a":{}})");
  EXPECT_EQ(Canonical(MustParse("{\"sin\":1,\"p\xC3\xAA"
                                "che\":2,\"p\xC3\xA9"
                                "ch\xC3\xA9\":3,\"peach\":4}")),
            "{\"peach\":4,\"p\xC3\xA9"
            "ch\xC3\xA9\":3,\"p\xC3\xAA"
            "che\":2,\"sin\":1}");
}

TEST(CanonicalJsonTest, EscapesOnlyWhatItMust) {
  Json j = std::string("\"\\\b\f\n\r\t\x01\x1f\x7f/\xE2\x80\xA8<>&'");
  EXPECT_EQ(Canonical(j), "\"\\\"\\\\\\b\\f\\n\\r\\t\\u0001\\u001f\x7f/\xE2\x80\xA8<>&'\"");
  EXPECT_EQ(Canonical(Json(std::string("\0", 1))), "\"\\u0000\"");
}

TEST(CanonicalJsonTest, Numbers) {
  EXPECT_EQ(Canonical(Json::array({0, -0.0, 1.0, -1, 4.50, 2e-3, 1e30, 1e-27, 9007199254740991,
                                   -9007199254740991, 1e21, 0.1})),
            "[0,0,1,-1,4.5,0.002,1e+30,1e-27,9007199254740991,-9007199254740991,1e+21,0.1]");
}

TEST(CanonicalJsonTest, RefusesWhatJsonCannotCarryExactly) {
  EXPECT_HAS(CanonicalError(Json{{"a", Json::array({1, std::uint64_t{9007199254740992}})}}),
             "integer 9007199254740992 is outside +-(2^53 - 1) at /a/1");
  EXPECT_HAS(CanonicalError(Json(std::int64_t{-9007199254740992})), "integer -9007199254740992");
  EXPECT_HAS(CanonicalError(Json{{"x", std::numeric_limits<double>::quiet_NaN()}}),
             "number NaN is not finite at /x");
  EXPECT_HAS(CanonicalError(Json(std::numeric_limits<double>::infinity())), "Infinity");
  // A double that would print as an integer ParseJson refuses to read back.
  EXPECT_HAS(CanonicalError(Json(9007199254740992.0)),
             "number 9007199254740992 would be written as an integer outside +-(2^53 - 1)");
  EXPECT_HAS(CanonicalError(Json(1e20)), "100000000000000000000");
  EXPECT_EQ(Canonical(Json(1e21)), "1e+21");  // exponent form reads back as a number
  EXPECT_HAS(CanonicalError(Json{{"k", std::string("\xC3(")}}), "not valid UTF-8 (byte 0) at /k");
  EXPECT_HAS(CanonicalError(Json{{std::string("\xFF"), 1}}), "is not valid UTF-8");
  EXPECT_HAS(CanonicalError(Json::binary({1, 2})), "binary");
}

TEST(CanonicalJsonTest, DeepValuesNeedNoRecursion) {
  Json j = Json::array();
  Json* innermost = &j;
  for (int i = 1; i < 20000; ++i) {
    innermost->push_back(Json::array());
    innermost = &innermost->back();
  }
  innermost->push_back(1);
  const std::string text = Canonical(j);
  EXPECT_EQ(text, std::string(20000, '[') + "1" + std::string(20000, ']'));
}

TEST(CanonicalJsonTest, ParseThenCanonicalIsIdentityOnCanonicalText) {
  for (const std::string& text :
       {std::string(R"({"a":[1,-2,0.5,"x",true,false,null],"b":{},"c":[]})"),
        std::string(R"({"":"empty","1":{"\n":56,"f":{"F":5,"f":"hi"}},"10":{},"A":{},"a":{}})"),
        std::string(R"([333333333.3333333,1e+30,4.5,0.002,1e-27,9007199254740991,-0.000001])"),
        std::string(
            "{\"\\u001f\":\"\\\"\\\\\\b\\f\\n\\r\\t\",\"\xE2\x82\xAC\":\"\xF0\x9F\x98\x82\"}"),
        std::string("\"plain\""), std::string("0"), std::string("null")}) {
    const std::string round = Canonical(MustParse(text));
    EXPECT_EQ(round, text);
    EXPECT_EQ(Canonical(MustParse(round)), round);
  }
}

}  // namespace
}  // namespace dlsys::core
