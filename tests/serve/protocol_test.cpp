#include "serve/protocol.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "serve/internal/protocol_float.h"

namespace dlsys::serve {
namespace {

using runtime::DType;
using Parsed = tl::expected<InferRequest, ProtocolError>;

std::span<const std::byte> Bytes(std::string_view text) {
  return std::as_bytes(std::span<const char>(text.data(), text.size()));
}

// x: FP32 [-1,4], ids: INT64 [-1]; outputs y: FP32 [-1,2], p: INT32 [-1].
ModelSchema Schema() {
  ModelSchema schema;
  schema.inputs = {{"x", DType::kFloat32, {-1, 4}}, {"ids", DType::kInt64, {-1}}};
  schema.outputs = {{"y", DType::kFloat32, {-1, 2}}, {"p", DType::kInt32, {-1}}};
  return schema;
}

ModelSchema OneInput(DType dtype, std::vector<std::int64_t> shape) {
  ModelSchema schema;
  schema.inputs = {{"t", dtype, std::move(shape)}};
  schema.outputs = {{"out", dtype, {-1}}};
  return schema;
}

Parsed Parse(std::string_view json, const ModelSchema& schema = Schema(),
             const ParseLimits& limits = {}) {
  return ParseInferRequest(Bytes(json), std::nullopt, schema, limits);
}

constexpr std::string_view kGood =
    R"({"id":"r1","inputs":[{"name":"x","shape":[2,4],"datatype":"FP32",)"
    R"("data":[1,2,3,4,5,6,7,8.5]},{"name":"ids","shape":[2],"datatype":"INT64","data":[7,-9]}]})";

template <typename T>
std::vector<T> Values(const InputTensor& tensor) {
  std::vector<T> out(tensor.data.size() / sizeof(T));
  std::memcpy(out.data(), tensor.data.data(), out.size() * sizeof(T));
  return out;
}

template <typename T>
std::vector<std::byte> ToBytes(const std::vector<T>& values) {
  std::vector<std::byte> out(values.size() * sizeof(T));
  std::memcpy(out.data(), values.data(), out.size());
  return out;
}

// The error message of a request that must fail with 400.
std::string Error400(const Parsed& parsed) {
  if (parsed) return "<parsed OK>";
  EXPECT_EQ(parsed.error().status, 400) << parsed.error().message;
  return parsed.error().message;
}

std::string OneInputJson(std::string_view datatype, std::string_view shape, std::string_view data) {
  return R"({"inputs":[{"name":"t","datatype":")" + std::string(datatype) + R"(","shape":)" +
         std::string(shape) + R"(,"data":)" + std::string(data) + "}]}";
}

::testing::AssertionResult ContainsFormat(const char* text_expr, const char* part_expr,
                                          const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << text_expr << " is \"" << text << "\"\n  which lacks "
                                       << part_expr << " = \"" << part << "\"";
}
#define EXPECT_CONTAINS(text, part) EXPECT_PRED_FORMAT2(ContainsFormat, text, part)

// --- Parsing: the happy path -------------------------------------------------------------

TEST(ProtocolParseTest, DecodesInputsInSchemaOrderWithDefaults) {
  const auto parsed =
      Parse(R"({"inputs":[{"name":"ids","shape":[2],"datatype":"INT64","data":[7,-9]},)"
            R"({"name":"x","shape":[2,4],"datatype":"FP32","data":[1,2,3,4,5,6,7,8.5]}]})");
  ASSERT_TRUE(parsed) << parsed.error().message;
  ASSERT_EQ(parsed->inputs.size(), 2u);
  EXPECT_EQ(parsed->inputs[0].name, "x");
  EXPECT_EQ(parsed->inputs[0].dtype, DType::kFloat32);
  EXPECT_EQ(parsed->inputs[0].shape, (std::vector<std::int64_t>{2, 4}));
  EXPECT_EQ(Values<float>(parsed->inputs[0]), (std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8.5f}));
  EXPECT_EQ(parsed->inputs[1].name, "ids");
  EXPECT_EQ(Values<std::int64_t>(parsed->inputs[1]), (std::vector<std::int64_t>{7, -9}));
  EXPECT_EQ(parsed->batch_size, 2);
  EXPECT_EQ(parsed->id, "");
  EXPECT_FALSE(parsed->timeout_us);
  ASSERT_EQ(parsed->outputs.size(), 2u);
  EXPECT_EQ(parsed->outputs[0].name, "y");
  EXPECT_FALSE(parsed->outputs[0].binary);
  EXPECT_EQ(parsed->outputs[1].name, "p");
  EXPECT_FALSE(parsed->outputs[1].binary);
}

TEST(ProtocolParseTest, DataLivesInStorageEightByteAligned) {
  auto parsed = Parse(kGood);
  ASSERT_TRUE(parsed) << parsed.error().message;
  for (const InputTensor& input : parsed->inputs) {
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(input.data.data()) % 8, 0u) << input.name;
    EXPECT_GE(input.data.data(), parsed->storage.data());
    EXPECT_LE(input.data.data() + input.data.size(),
              parsed->storage.data() + parsed->storage.size());
  }
  EXPECT_EQ(parsed->inputs[0].data.size(), 32u);
  EXPECT_EQ(parsed->inputs[1].data.size(), 16u);
  // Moving the request keeps the views valid.
  InferRequest moved = std::move(*parsed);
  EXPECT_EQ(Values<std::int64_t>(moved.inputs[1]), (std::vector<std::int64_t>{7, -9}));
}

TEST(ProtocolParseTest, EchoesIdAndReadsTimeout) {
  const auto parsed =
      Parse(R"({"id":"req-\u00e9\"1","parameters":{"timeout":2500,"other":{"x":[1]}},)"
            R"("inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]},)"
            R"({"name":"ids","shape":[1],"datatype":"INT64","data":[1]}]})");
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->id, "req-\xc3\xa9\"1");
  EXPECT_EQ(parsed->timeout_us, 2500u);
}

TEST(ProtocolParseTest, NestedDataEqualsFlat) {
  const auto flat = Parse(kGood);
  const auto nested = Parse(
      R"({"inputs":[{"name":"x","shape":[2,4],"datatype":"FP32",)"
      R"("data":[[1,2,3,4],[5,6,7,8.5]]},{"name":"ids","shape":[2],"datatype":"INT64","data":[7,-9]}]})");
  ASSERT_TRUE(flat && nested);
  EXPECT_EQ(Values<float>(flat->inputs[0]), Values<float>(nested->inputs[0]));
  // Nesting is a convenience: only the total count and row-major order matter.
  const auto ragged = Parse(
      R"({"inputs":[{"name":"x","shape":[2,4],"datatype":"FP32",)"
      R"("data":[[1,[2,3]],4,[[5,6,7],8.5]]},{"name":"ids","shape":[2],"datatype":"INT64","data":[[7],[-9]]}]})");
  ASSERT_TRUE(ragged) << ragged.error().message;
  EXPECT_EQ(Values<float>(ragged->inputs[0]), Values<float>(flat->inputs[0]));
  EXPECT_EQ(Values<std::int64_t>(ragged->inputs[1]), (std::vector<std::int64_t>{7, -9}));
}

TEST(ProtocolParseTest, ScalarAndEmptyTensors) {
  const auto scalar = Parse(OneInputJson("INT32", "[]", "[42]"), OneInput(DType::kInt32, {}));
  ASSERT_TRUE(scalar) << scalar.error().message;
  EXPECT_EQ(Values<std::int32_t>(scalar->inputs[0]), (std::vector<std::int32_t>{42}));
  EXPECT_EQ(scalar->batch_size, 1);  // rank 0: no batch dimension
  const auto empty = Parse(OneInputJson("FP32", "[0,3]", "[]"), OneInput(DType::kFloat32, {-1, 3}));
  ASSERT_TRUE(empty) << empty.error().message;
  EXPECT_TRUE(empty->inputs[0].data.empty());
  EXPECT_EQ(empty->batch_size, 0);
}

TEST(ProtocolParseTest, NoBatchingUnlessEveryInputHasVariableDim0) {
  ModelSchema schema;
  schema.inputs = {{"a", DType::kFloat32, {-1, 2}}, {"b", DType::kFloat32, {3}}};
  schema.outputs = {{"o", DType::kFloat32, {-1}}};
  const auto parsed =
      Parse(R"({"inputs":[{"name":"a","shape":[2,2],"datatype":"FP32","data":[1,2,3,4]},)"
            R"({"name":"b","shape":[3],"datatype":"FP32","data":[1,2,3]}]})",
            schema);
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->batch_size, 1);
}

// --- Every datatype: JSON in -> bytes, bytes -> JSON out ----------------------------------

struct DTypeCase {
  DType dtype;
  std::string_view json;            // the "data" array sent
  std::vector<std::byte> bytes;     // what it decodes to
  std::vector<double> json_values;  // what the response carries (for floats: exact values)
};

std::vector<DTypeCase> DTypeCases() {
  return {
      {DType::kBool, "[true,false,true]", ToBytes(std::vector<std::uint8_t>{1, 0, 1}), {}},
      {DType::kUInt8, "[0,255,7]", ToBytes(std::vector<std::uint8_t>{0, 255, 7}), {0, 255, 7}},
      {DType::kInt8,
       "[-128,127,0]",
       ToBytes(std::vector<std::int8_t>{-128, 127, 0}),
       {-128, 127, 0}},
      {DType::kInt16,
       "[-32768,32767,1]",
       ToBytes(std::vector<std::int16_t>{-32768, 32767, 1}),
       {-32768, 32767, 1}},
      {DType::kInt32,
       "[-2147483648,2147483647,5]",
       ToBytes(std::vector<std::int32_t>{-2147483647 - 1, 2147483647, 5}),
       {-2147483648.0, 2147483647, 5}},
      {DType::kInt64,
       "[-9223372036854775808,9223372036854775807,3]",
       ToBytes(std::vector<std::int64_t>{std::numeric_limits<std::int64_t>::min(),
                                         std::numeric_limits<std::int64_t>::max(), 3}),
       {}},
      {DType::kFloat16,
       "[1,-2.5,0.1]",
       ToBytes(std::vector<std::uint16_t>{0x3C00, 0xC100, 0x2E66}),
       {1, -2.5, 0.0999755859375}},
      {DType::kBFloat16,
       "[1,-2.5,0.1]",
       ToBytes(std::vector<std::uint16_t>{0x3F80, 0xC020, 0x3DCD}),
       {1, -2.5, 0.10009765625}},
      {DType::kFloat32,
       "[1,-2.5,0.1]",
       ToBytes(std::vector<float>{1, -2.5f, 0.1f}),
       {1, -2.5, static_cast<double>(0.1f)}},
      {DType::kFloat64, "[1,-2.5,0.1]", ToBytes(std::vector<double>{1, -2.5, 0.1}), {1, -2.5, 0.1}},
  };
}

TEST(ProtocolRoundTripTest, EveryDatatype) {
  for (const DTypeCase& c : DTypeCases()) {
    const std::string name = KServeDTypeName(c.dtype);
    SCOPED_TRACE(name);
    const auto parsed = Parse(OneInputJson(name, "[3]", c.json), OneInput(c.dtype, {-1}));
    ASSERT_TRUE(parsed) << parsed.error().message;
    EXPECT_EQ(parsed->inputs[0].dtype, c.dtype);
    const std::vector<std::byte> got(parsed->inputs[0].data.begin(), parsed->inputs[0].data.end());
    EXPECT_EQ(got, c.bytes);

    const OutputView view{"out", c.dtype, {3}, c.bytes};
    const auto response =
        EncodeInferResponse("m", "1", "", {{"out", false}}, std::span<const OutputView>(&view, 1));
    EXPECT_FALSE(response.json_length);
    const auto json = nlohmann::json::parse(response.body);
    const auto& out = json["outputs"][0];
    EXPECT_EQ(out["name"], "out");
    EXPECT_EQ(out["datatype"], name);
    EXPECT_EQ(out["shape"], nlohmann::json::array({3}));
    if (c.dtype == DType::kBool) {
      EXPECT_EQ(out["data"], nlohmann::json::array({true, false, true}));
    } else if (c.dtype == DType::kInt64) {
      EXPECT_EQ(out["data"], nlohmann::json::parse(c.json));
    } else {
      ASSERT_EQ(out["data"].size(), 3u);
      for (std::size_t i = 0; i < 3; ++i) {
        // Shortest float text: exact once read back as a float (FP16/BF16 via float).
        if (c.dtype == DType::kFloat64 || runtime::DTypeSize(c.dtype) == 1 ||
            c.dtype == DType::kInt16 || c.dtype == DType::kInt32) {
          EXPECT_EQ(out["data"][i].get<double>(), c.json_values[i]) << i;
        } else {
          EXPECT_EQ(static_cast<float>(out["data"][i].get<double>()),
                    static_cast<float>(c.json_values[i]))
              << i;
        }
      }
      // Integers are printed as integers, floats in the shortest form that round-trips.
      if (c.dtype == DType::kFloat32 || c.dtype == DType::kFloat64) {
        EXPECT_CONTAINS(response.body, std::string("\"data\":[1,-2.5,0.1]"));
      }
    }
  }
}

TEST(ProtocolRoundTripTest, FloatTypesAcceptIntegerLiteralsAndExponents) {
  const auto parsed = Parse(OneInputJson("FP64", "[3]", "[9007199254740993,1e3,-0.0]"),
                            OneInput(DType::kFloat64, {-1}));
  ASSERT_TRUE(parsed) << parsed.error().message;
  const auto values = Values<double>(parsed->inputs[0]);
  EXPECT_EQ(values[0], 9007199254740992.0);
  EXPECT_EQ(values[1], 1000.0);
  EXPECT_TRUE(std::signbit(values[2]));
}

// --- FP16 / BF16 conversions ----------------------------------------------------------------

TEST(ProtocolFloatTest, HalfRoundsToNearestEven) {
  using internal::DoubleToHalfBits;
  EXPECT_EQ(DoubleToHalfBits(0.0), 0x0000);
  EXPECT_EQ(DoubleToHalfBits(-0.0), 0x8000);
  EXPECT_EQ(DoubleToHalfBits(1.0), 0x3C00);
  EXPECT_EQ(DoubleToHalfBits(0.1), 0x2E66);
  EXPECT_EQ(DoubleToHalfBits(1.0 / 3), 0x3555);
  EXPECT_EQ(DoubleToHalfBits(65504.0), 0x7BFF);
  EXPECT_EQ(DoubleToHalfBits(65519.99), 0x7BFF);
  EXPECT_EQ(DoubleToHalfBits(65520.0), std::nullopt);  // ties to even: rounds to infinity
  EXPECT_EQ(DoubleToHalfBits(-1e10), std::nullopt);
  EXPECT_EQ(DoubleToHalfBits(1.0 + std::ldexp(1, -11)), 0x3C00);      // tie -> even
  EXPECT_EQ(DoubleToHalfBits(1.0 + 3 * std::ldexp(1, -11)), 0x3C02);  // tie -> even (up)
  EXPECT_EQ(DoubleToHalfBits(1.0 + std::ldexp(1, -11) + std::ldexp(1, -40)), 0x3C01);
  EXPECT_EQ(DoubleToHalfBits(std::ldexp(1, -14)), 0x0400);  // smallest normal
  EXPECT_EQ(DoubleToHalfBits(std::ldexp(1, -24)), 0x0001);  // smallest subnormal
  EXPECT_EQ(DoubleToHalfBits(std::ldexp(1, -25)), 0x0000);  // tie -> even (zero)
  EXPECT_EQ(DoubleToHalfBits(std::ldexp(1.5, -25)), 0x0001);
  EXPECT_EQ(DoubleToHalfBits(std::ldexp(3, -25)), 0x0002);       // tie -> even (up)
  EXPECT_EQ(DoubleToHalfBits(std::ldexp(1023.5, -24)), 0x0400);  // carry into normal
  EXPECT_EQ(DoubleToHalfBits(-std::ldexp(1, -30)), 0x8000);
  EXPECT_EQ(DoubleToHalfBits(1e-320), 0x0000);
  EXPECT_EQ(DoubleToHalfBits(std::numeric_limits<double>::infinity()), 0x7C00);
}

TEST(ProtocolFloatTest, BFloat16RoundsOnceFromTheDouble) {
  using internal::DoubleToBFloat16Bits;
  EXPECT_EQ(DoubleToBFloat16Bits(1.0), 0x3F80);
  EXPECT_EQ(DoubleToBFloat16Bits(-2.5), 0xC020);
  EXPECT_EQ(DoubleToBFloat16Bits(0.1), 0x3DCD);
  EXPECT_EQ(DoubleToBFloat16Bits(1.0 + std::ldexp(1, -8)), 0x3F80);  // tie -> even
  // Via float this would round twice (to 1 + 2^-8, then to even 0x3F80).
  EXPECT_EQ(DoubleToBFloat16Bits(1.0 + std::ldexp(1, -8) + std::ldexp(1, -30)), 0x3F81);
  EXPECT_EQ(DoubleToBFloat16Bits(3.3895313892515355e38), 0x7F7F);  // largest finite
  EXPECT_EQ(DoubleToBFloat16Bits(3.4e38), std::nullopt);
  EXPECT_EQ(DoubleToBFloat16Bits(std::ldexp(1, -133)), 0x0001);  // smallest subnormal
}

TEST(ProtocolFloatTest, SixteenBitFormatsToFloatAreExact) {
  EXPECT_EQ(runtime::HalfBitsToFloat(0x3C00), 1.0f);
  EXPECT_EQ(runtime::HalfBitsToFloat(0x2E66), 0.0999755859375f);
  EXPECT_EQ(runtime::HalfBitsToFloat(0x7BFF), 65504.0f);
  EXPECT_EQ(runtime::HalfBitsToFloat(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(runtime::HalfBitsToFloat(0x8001), -std::ldexp(1.0f, -24));
  EXPECT_TRUE(std::isinf(runtime::HalfBitsToFloat(0xFC00)));
  EXPECT_TRUE(std::isnan(runtime::HalfBitsToFloat(0x7E00)));
  EXPECT_EQ(runtime::BFloat16BitsToFloat(0x3DCD), 0.10009765625f);
  for (std::uint32_t bits = 0; bits < 0x7C00; ++bits) {  // every finite positive half
    ASSERT_EQ(internal::DoubleToHalfBits(runtime::HalfBitsToFloat(bits)), bits);
  }
}

// --- Data values --------------------------------------------------------------------------

TEST(ProtocolDataTest, OutOfRangeNamesInputElementAndDatatype) {
  const struct {
    DType dtype;
    std::string_view data;
    std::string_view shown;
  } cases[] = {
      {DType::kInt8, "[0,128]", "(128)"},
      {DType::kInt8, "[0,-129]", "(-129)"},
      {DType::kUInt8, "[0,-1]", "(-1)"},
      {DType::kUInt8, "[0,256]", "(256)"},
      {DType::kInt16, "[0,40000]", "(40000)"},
      {DType::kInt32, "[0,2147483648]", "(2147483648)"},
      {DType::kInt64, "[0,9223372036854775808]", "(9223372036854775808)"},
      {DType::kFloat32, "[0,1e39]", "(1e+39)"},
      {DType::kFloat16, "[0,65520]", "(65520)"},
      {DType::kBFloat16, "[0,-3.4e38]", "(-3.4e+38)"},
  };
  for (const auto& c : cases) {
    const std::string name = KServeDTypeName(c.dtype);
    SCOPED_TRACE(name + " " + std::string(c.data));
    const std::string message =
        Error400(Parse(OneInputJson(name, "[2]", c.data), OneInput(c.dtype, {-1})));
    EXPECT_CONTAINS(message, std::string("input 't': element 1 " + std::string(c.shown) +
                                         " is out of range for " + name));
  }
}

TEST(ProtocolDataTest, IntegersMustBeJsonIntegers) {
  for (const std::string_view bad : {"1.5", "1.0", "1e2", "true", "\"1\"", "null"}) {
    SCOPED_TRACE(bad);
    const std::string message =
        Error400(Parse(OneInputJson("INT32", "[2]", "[0," + std::string(bad) + "]"),
                       OneInput(DType::kInt32, {-1})));
    EXPECT_CONTAINS(message, std::string("input 't': element 1"));
    EXPECT_CONTAINS(message, std::string("INT32 data must be integers"));
  }
}

TEST(ProtocolDataTest, FloatsMustBeNumbers) {
  for (const std::string_view bad : {"true", "\"1.5\"", "null", "{}", "{\"a\":1}"}) {
    SCOPED_TRACE(bad);
    const std::string message =
        Error400(Parse(OneInputJson("FP32", "[2]", "[0," + std::string(bad) + "]"),
                       OneInput(DType::kFloat32, {-1})));
    EXPECT_CONTAINS(message, std::string("input 't': element 1 is "));
    EXPECT_CONTAINS(message, std::string("FP32 data must be numbers"));
  }
}

TEST(ProtocolDataTest, BoolsMustBeTrueOrFalse) {
  for (const std::string_view bad : {"1", "0", "\"true\"", "null"}) {
    SCOPED_TRACE(bad);
    const std::string message =
        Error400(Parse(OneInputJson("BOOL", "[2]", "[true," + std::string(bad) + "]"),
                       OneInput(DType::kBool, {-1})));
    EXPECT_CONTAINS(message, std::string("input 't': element 1 is "));
    EXPECT_CONTAINS(message, std::string("BOOL data must be true or false"));
  }
}

TEST(ProtocolDataTest, ElementCountMustMatchShape) {
  EXPECT_CONTAINS(
      Error400(Parse(OneInputJson("FP32", "[2,2]", "[1,2,3]"), OneInput(DType::kFloat32, {-1, 2}))),
      std::string("input 't': \"data\" has 3 elements but shape [2,2] needs 4"));
  EXPECT_CONTAINS(Error400(Parse(OneInputJson("FP32", "[2,2]", "[[1,2],[3,4],[5]]"),
                                 OneInput(DType::kFloat32, {-1, 2}))),
                  std::string("input 't': \"data\" has 5 elements but shape [2,2] needs 4"));
  // A shape far larger than the text could hold is refused before anything is allocated.
  EXPECT_CONTAINS(Error400(Parse(OneInputJson("FP32", "[100000000,2]", "[[1,2]]"),
                                 OneInput(DType::kFloat32, {-1, 2}))),
                  std::string("\"data\" has 2 elements but shape [100000000,2] needs 200000000"));
  EXPECT_CONTAINS(
      Error400(Parse(OneInputJson("FP32", "[1]", "5"), OneInput(DType::kFloat32, {-1}))),
      std::string("input 't': \"data\" must be an array"));
}

// --- Validation against the schema ------------------------------------------------------------

TEST(ProtocolValidateTest, InputNames) {
  EXPECT_CONTAINS(
      Error400(Parse(R"({"inputs":[{"name":"q","shape":[1],"datatype":"FP32","data":[1]}]})")),
      std::string("unknown input 'q'; model inputs: x, ids"));
  EXPECT_CONTAINS(
      Error400(
          Parse(R"({"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]})")),
      std::string("missing input 'ids'"));
  EXPECT_CONTAINS(
      Error400(Parse(R"({"inputs":[{"name":"ids","shape":[1],"datatype":"INT64","data":[1]},)"
                     R"({"name":"ids","shape":[1],"datatype":"INT64","data":[1]}]})")),
      std::string("input 'ids' is given twice"));
  EXPECT_CONTAINS(Error400(Parse(R"({"inputs":[{"shape":[1],"datatype":"INT64","data":[1]}]})")),
                  std::string("input #0: missing \"name\""));
  EXPECT_CONTAINS(Error400(Parse(R"({"id":"a"})")), std::string("missing \"inputs\""));
}

TEST(ProtocolValidateTest, Datatypes) {
  EXPECT_CONTAINS(
      Error400(
          Parse(R"({"inputs":[{"name":"x","shape":[1,4],"datatype":"INT64","data":[1,2,3,4]}]})")),
      std::string("input 'x': datatype INT64 does not match the model's FP32"));
  for (const std::string_view unsupported : {"UINT16", "UINT32", "UINT64", "BYTES"}) {
    EXPECT_CONTAINS(
        Error400(Parse(OneInputJson(unsupported, "[1]", "[1]"), OneInput(DType::kFloat32, {-1}))),
        std::string("input 't': datatype '" + std::string(unsupported) + "' is not supported"));
  }
  EXPECT_CONTAINS(
      Error400(Parse(OneInputJson("float32", "[1]", "[1]"), OneInput(DType::kFloat32, {-1}))),
      std::string("input 't': datatype 'float32' is unknown"));
}

TEST(ProtocolValidateTest, Shapes) {
  EXPECT_CONTAINS(
      Error400(Parse(
          R"({"inputs":[{"name":"x","shape":[2,5],"datatype":"FP32","data":[1,2,3,4,5,6,7,8,9,0]},)"
          R"({"name":"ids","shape":[2],"datatype":"INT64","data":[1,2]}]})")),
      std::string("input 'x': shape [2,5] does not match [-1,4]"));
  EXPECT_CONTAINS(
      Error400(
          Parse(R"({"inputs":[{"name":"x","shape":[8],"datatype":"FP32","data":[1,2,3,4,5,6,7,8]},)"
                R"({"name":"ids","shape":[2],"datatype":"INT64","data":[1,2]}]})")),
      std::string("input 'x': shape [8] does not match [-1,4]"));
  EXPECT_CONTAINS(
      Error400(Parse(OneInputJson("FP32", "[-1,2]", "[1,2]"), OneInput(DType::kFloat32, {-1, 2}))),
      std::string("input 't': shape [-1,2] has a negative dimension"));
  EXPECT_CONTAINS(
      Error400(Parse(OneInputJson("FP32", "[1.0,2]", "[1,2]"), OneInput(DType::kFloat32, {-1, 2}))),
      std::string("input 't': \"shape\" must be an array of integers"));
  EXPECT_CONTAINS(
      Error400(Parse(
          R"({"inputs":[{"name":"x","shape":[2,4],"datatype":"FP32","data":[1,2,3,4,5,6,7,8]},)"
          R"({"name":"ids","shape":[3],"datatype":"INT64","data":[1,2,3]}]})")),
      std::string("input 'ids': dim 0 (the batch size) is 3 but input 'x' has 2"));
}

TEST(ProtocolValidateTest, ElementLimits) {
  ParseLimits limits;
  limits.max_elements = 4;
  EXPECT_CONTAINS(Error400(Parse(OneInputJson("FP32", "[5]", "[1,2,3,4,5]"),
                                 OneInput(DType::kFloat32, {-1}), limits)),
                  std::string("input 't': shape [5] has 5 elements, more than the limit of 4"));
  EXPECT_CONTAINS(Error400(Parse(OneInputJson("FP32", "[4294967296,4294967296,4294967296]", "[1]"),
                                 OneInput(DType::kFloat32, {-1, -1, -1}))),
                  std::string("has too many elements"));
  EXPECT_CONTAINS(Error400(Parse(OneInputJson("FP32", "[18446744073709551615]", "[1]"),
                                 OneInput(DType::kFloat32, {-1}))),
                  std::string("input 't': \"shape\" dimension 18446744073709551615 is too large"));
}

TEST(ProtocolValidateTest, OutputsSelectionAndBinaryFlags) {
  const std::string inputs =
      R"("inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]},)"
      R"({"name":"ids","shape":[1],"datatype":"INT64","data":[1]}])";
  auto parsed = Parse("{" + inputs + R"(,"outputs":[{"name":"p"}]})");
  ASSERT_TRUE(parsed) << parsed.error().message;
  ASSERT_EQ(parsed->outputs.size(), 1u);
  EXPECT_EQ(parsed->outputs[0].name, "p");
  EXPECT_FALSE(parsed->outputs[0].binary);

  // Schema order, per-output binary_data over the request-level default.
  parsed = Parse("{" + inputs +
                 R"(,"parameters":{"binary_data_output":true},)"
                 R"("outputs":[{"name":"p","parameters":{"binary_data":false}},{"name":"y"}]})");
  ASSERT_TRUE(parsed) << parsed.error().message;
  ASSERT_EQ(parsed->outputs.size(), 2u);
  EXPECT_EQ(parsed->outputs[0].name, "y");
  EXPECT_TRUE(parsed->outputs[0].binary);
  EXPECT_EQ(parsed->outputs[1].name, "p");
  EXPECT_FALSE(parsed->outputs[1].binary);

  parsed = Parse("{" + inputs + R"(,"parameters":{"binary_data_output":true}})");
  ASSERT_TRUE(parsed);
  ASSERT_EQ(parsed->outputs.size(), 2u);
  EXPECT_TRUE(parsed->outputs[0].binary && parsed->outputs[1].binary);

  parsed = Parse("{" + inputs + R"(,"outputs":[{"name":"y","parameters":{"binary_data":true}}]})");
  ASSERT_TRUE(parsed);
  ASSERT_EQ(parsed->outputs.size(), 1u);
  EXPECT_TRUE(parsed->outputs[0].binary);

  EXPECT_CONTAINS(Error400(Parse("{" + inputs + R"(,"outputs":[{"name":"z"}]})")),
                  std::string("unknown output 'z'; model outputs: y, p"));
  EXPECT_CONTAINS(Error400(Parse("{" + inputs + R"(,"outputs":[{"name":"y"},{"name":"y"}]})")),
                  std::string("output 'y' is requested twice"));
  EXPECT_CONTAINS(
      Error400(
          Parse("{" + inputs + R"(,"outputs":[{"name":"y","parameters":{"classification":3}}]})")),
      std::string("output 'y': classification is not supported"));
  EXPECT_CONTAINS(Error400(Parse("{" + inputs +
                                 R"(,"outputs":[{"name":"y","parameters":{"binary_data":1}}]})")),
                  std::string("output 'y': \"binary_data\" must be true or false"));
  EXPECT_CONTAINS(Error400(Parse("{" + inputs + R"(,"parameters":{"binary_data_output":"yes"}})")),
                  std::string("\"binary_data_output\" must be true or false"));
  EXPECT_CONTAINS(Error400(Parse("{" + inputs + R"(,"parameters":{"timeout":-5}})")),
                  std::string("\"timeout\" must be a non-negative integer"));
  EXPECT_CONTAINS(Error400(Parse("{" + inputs + R"(,"parameters":{"timeout":"5"}})")),
                  std::string("\"timeout\" must be a non-negative integer"));
}

TEST(ProtocolValidateTest, FieldTypes) {
  EXPECT_CONTAINS(Error400(Parse(R"({"id":7,"inputs":[]})")),
                  std::string("\"id\" must be a string"));
  EXPECT_CONTAINS(Error400(Parse(R"({"inputs":{}})")), std::string("\"inputs\" must be an array"));
  EXPECT_CONTAINS(Error400(Parse(R"({"inputs":[3]})")),
                  std::string("input #0 must be a JSON object"));
  EXPECT_CONTAINS(Error400(Parse(R"({"parameters":[],"inputs":[]})")),
                  std::string("\"parameters\" must be a JSON object"));
  EXPECT_CONTAINS(Error400(Parse(R"({"inputs":[],"outputs":{}})", ModelSchema{})),
                  std::string("\"outputs\" must be an array"));
  EXPECT_CONTAINS(Error400(Parse(R"({"inputs":[{"name":"t","datatype":"FP32","shape":[1],)"
                                 R"("parameters":{"binary_data_size":-4}}]})",
                                 OneInput(DType::kFloat32, {-1}))),
                  std::string("input 't': \"binary_data_size\" must be a non-negative integer"));
  EXPECT_CONTAINS(Error400(Parse(R"({"inputs":[{"name":"t","datatype":"FP32","data":[1]}]})",
                                 OneInput(DType::kFloat32, {-1}))),
                  std::string("input 't': missing \"shape\""));
  EXPECT_CONTAINS(Error400(Parse(R"({"inputs":[{"name":"t","shape":[1],"data":[1]}]})",
                                 OneInput(DType::kFloat32, {-1}))),
                  std::string("input 't': missing \"datatype\""));
  // Unknown keys and parameters are tolerated.
  EXPECT_TRUE(Parse(R"({"inputs":[{"name":"t","datatype":"FP32","shape":[1],"data":[1],)"
                    R"("parameters":{"x":"y"},"extra":null}],"extra":{"a":[true]}})",
                    OneInput(DType::kFloat32, {-1})));
}

// --- Strict JSON ------------------------------------------------------------------------------

TEST(ProtocolJsonTest, DuplicateKeysAreRefused) {
  EXPECT_CONTAINS(Error400(Parse(R"({"inputs":[],"inputs":[]})")),
                  std::string("duplicate key \"inputs\" in the request"));
  EXPECT_CONTAINS(Error400(Parse(OneInputJson("FP32", "[1],\"shape\":[1]", "[1]"),
                                 OneInput(DType::kFloat32, {-1}))),
                  std::string("input #0: duplicate key \"shape\""));
  EXPECT_CONTAINS(Error400(Parse(R"({"parameters":{"timeout":1,"timeout":2},"inputs":[]})")),
                  std::string("duplicate key \"timeout\" in \"parameters\""));
  // Many keys: the sorted path.
  std::string many = R"({"parameters":{)";
  for (int i = 0; i < 40; ++i) many += "\"k" + std::to_string(i) + "\":1,";
  many += R"("k7":2},"inputs":[]})";
  EXPECT_CONTAINS(Error400(Parse(many)), std::string("duplicate key \"k7\" in \"parameters\""));
}

TEST(ProtocolJsonTest, MalformedJsonIsRefusedEvenWhereIgnored) {
  EXPECT_CONTAINS(Error400(Parse("{\"id\":\"a\xff\",\"inputs\":[]}")),
                  std::string("not valid UTF-8"));
  EXPECT_CONTAINS(Error400(Parse(R"({"parameters":{"ignored":[1 2]},"inputs":[]})")),
                  std::string("not valid JSON"));
  EXPECT_CONTAINS(Error400(Parse(std::string(kGood) + "x")), std::string("not valid JSON"));
  EXPECT_CONTAINS(Error400(Parse(R"({"inputs":[],})")), std::string("not valid JSON"));
  EXPECT_CONTAINS(Error400(Parse("")), std::string("empty"));
  EXPECT_CONTAINS(Error400(Parse("[1,2]")), std::string("must be a JSON object"));
}

TEST(ProtocolJsonTest, DepthIsBounded) {
  ParseLimits limits;
  limits.max_json_depth = 6;
  const ModelSchema schema = OneInput(DType::kFloat32, {-1});
  // Root, inputs, input object, data: depth 4 with a flat array.
  EXPECT_TRUE(Parse(OneInputJson("FP32", "[1]", "[1]"), schema, limits));
  EXPECT_CONTAINS(Error400(Parse(OneInputJson("FP32", "[1]", "[[[[[[1]]]]]]"), schema, limits)),
                  std::string("nested deeper than the limit of 6 levels"));
}

TEST(ProtocolJsonTest, JsonSizeLimitIs413) {
  ParseLimits limits;
  limits.max_json_bytes = 16;
  const auto parsed = Parse(kGood, Schema(), limits);
  ASSERT_FALSE(parsed);
  EXPECT_EQ(parsed.error().status, 413);
  EXPECT_CONTAINS(parsed.error().message, std::string("more than the limit of 16"));
}

// --- Binary extension -----------------------------------------------------------------------

std::string BinaryBody(std::string_view json, const std::vector<std::vector<std::byte>>& parts,
                       std::size_t* json_length) {
  std::string body(json);
  *json_length = body.size();
  for (const auto& part : parts)
    body.append(reinterpret_cast<const char*>(part.data()), part.size());
  return body;
}

TEST(ProtocolBinaryTest, InputsTakeBytesInRequestOrder) {
  // ids first in the request: its bytes come first in the binary section.
  const std::string json =
      R"({"inputs":[{"name":"ids","shape":[2],"datatype":"INT64","parameters":{"binary_data_size":16}},)"
      R"({"name":"x","shape":[2,4],"datatype":"FP32","parameters":{"binary_data_size":32}}]})";
  const auto ids = ToBytes(std::vector<std::int64_t>{5, -6});
  const auto x = ToBytes(std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8});
  std::size_t json_length = 0;
  const std::string body = BinaryBody(json, {ids, x}, &json_length);
  const auto parsed = ParseInferRequest(Bytes(body), json_length, Schema());
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(Values<float>(parsed->inputs[0]), (std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8}));
  EXPECT_EQ(Values<std::int64_t>(parsed->inputs[1]), (std::vector<std::int64_t>{5, -6}));
  // Binary inputs view the body itself.
  EXPECT_EQ(reinterpret_cast<const char*>(parsed->inputs[1].data.data()),
            body.data() + json_length);
  EXPECT_TRUE(parsed->storage.empty());
}

TEST(ProtocolBinaryTest, MixesBinaryAndJsonInputs) {
  const std::string json =
      R"({"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","parameters":{"binary_data_size":16}},)"
      R"({"name":"ids","shape":[1],"datatype":"INT64","data":[9]}]})";
  std::size_t json_length = 0;
  const std::string body =
      BinaryBody(json, {ToBytes(std::vector<float>{1, 2, 3, 4})}, &json_length);
  const auto parsed = ParseInferRequest(Bytes(body), json_length, Schema());
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(Values<float>(parsed->inputs[0]), (std::vector<float>{1, 2, 3, 4}));
  EXPECT_EQ(Values<std::int64_t>(parsed->inputs[1]), (std::vector<std::int64_t>{9}));
  // Same JSON, no binary input: the header is allowed with an empty binary section.
  const auto plain = ParseInferRequest(Bytes(kGood), kGood.size(), Schema());
  EXPECT_TRUE(plain) << plain.error().message;
}

TEST(ProtocolBinaryTest, FramingErrors) {
  const std::string json =
      R"({"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","parameters":{"binary_data_size":16}},)"
      R"({"name":"ids","shape":[1],"datatype":"INT64","data":[9]}]})";
  const auto x = ToBytes(std::vector<float>{1, 2, 3, 4});
  std::size_t json_length = 0;
  const std::string exact = BinaryBody(json, {x}, &json_length);
  ASSERT_TRUE(ParseInferRequest(Bytes(exact), json_length, Schema()));

  const std::string short_body = exact.substr(0, exact.size() - 1);
  EXPECT_CONTAINS(Error400(ParseInferRequest(Bytes(short_body), json_length, Schema())),
                  std::string("is 15 bytes but the inputs' binary_data_size add up to more"));
  const std::string long_body = exact + "z";
  EXPECT_CONTAINS(Error400(ParseInferRequest(Bytes(long_body), json_length, Schema())),
                  std::string("is 17 bytes but the inputs' binary_data_size add up to 16"));
  EXPECT_CONTAINS(Error400(ParseInferRequest(Bytes(json), std::nullopt, Schema())),
                  std::string("input 'x': binary_data_size given without "
                              "Inference-Header-Content-Length header"));
  EXPECT_CONTAINS(Error400(ParseInferRequest(Bytes(exact), exact.size() + 1, Schema())),
                  std::string("Inference-Header-Content-Length is " +
                              std::to_string(exact.size() + 1) + " but the body has only"));
  // Trailing bytes after a JSON-only request with the header.
  const std::string trailing = std::string(kGood) + "abc";
  EXPECT_CONTAINS(Error400(ParseInferRequest(Bytes(trailing), kGood.size(), Schema())),
                  std::string("is 3 bytes but the inputs' binary_data_size add up to 0"));

  std::string both = json;
  both.replace(both.find(R"("parameters")"), 0, R"("data":[1,2,3,4],)");
  std::size_t both_length = 0;
  const std::string both_body = BinaryBody(both, {x}, &both_length);
  EXPECT_CONTAINS(Error400(ParseInferRequest(Bytes(both_body), both_length, Schema())),
                  std::string("input 'x': both \"data\" and \"binary_data_size\" given"));

  std::string wrong_size = json;
  wrong_size.replace(wrong_size.find("16"), 2, "12");
  std::size_t wrong_length = 0;
  const std::string wrong_body =
      BinaryBody(wrong_size, {std::vector<std::byte>(12)}, &wrong_length);
  EXPECT_CONTAINS(
      Error400(ParseInferRequest(Bytes(wrong_body), wrong_length, Schema())),
      std::string("input 'x': binary_data_size is 12 but shape [1,4] of FP32 needs 16 bytes"));

  EXPECT_CONTAINS(Error400(Parse(R"({"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32"}]})")),
                  std::string("input 'x': no \"data\" and no \"binary_data_size\""));
}

TEST(ProtocolBinaryTest, LargeBinarySectionServesAsPadding) {
  // The JSON part is parsed in place when at least SIMDJSON_PADDING bytes follow it.
  const std::string json =
      R"({"inputs":[{"name":"t","shape":[256],"datatype":"FP32","parameters":{"binary_data_size":1024}}]})";
  std::vector<float> values(256);
  for (int i = 0; i < 256; ++i) values[i] = static_cast<float>(i) * 0.5f;
  std::size_t json_length = 0;
  const std::string body = BinaryBody(json, {ToBytes(values)}, &json_length);
  const auto parsed = ParseInferRequest(Bytes(body), json_length, OneInput(DType::kFloat32, {-1}));
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(Values<float>(parsed->inputs[0]), values);
}

TEST(ProtocolBinaryTest, BigJsonRequestParses) {
  constexpr int kCount = 1 << 20;
  std::string json = R"({"inputs":[{"name":"t","shape":[1048576],"datatype":"FP32","data":[)";
  json.reserve(kCount * 12);
  for (int i = 0; i < kCount; ++i) {
    if (i) json += ',';
    json += std::to_string(i % 1000) + ".25";
  }
  json += "]}]}";
  const auto parsed = Parse(json, OneInput(DType::kFloat32, {-1}));
  ASSERT_TRUE(parsed) << parsed.error().message;
  const auto values = Values<float>(parsed->inputs[0]);
  ASSERT_EQ(values.size(), static_cast<std::size_t>(kCount));
  EXPECT_EQ(values[0], 0.25f);
  EXPECT_EQ(values[kCount - 1], static_cast<float>((kCount - 1) % 1000) + 0.25f);
}

// --- Responses ----------------------------------------------------------------------------------

TEST(ProtocolEncodeTest, JsonAndBinaryOutputs) {
  const auto y = ToBytes(std::vector<float>{0.1f, -2, 3, 4});
  const auto p = ToBytes(std::vector<std::int32_t>{7, 8});
  const OutputView views[] = {{"y", DType::kFloat32, {2, 2}, y}, {"p", DType::kInt32, {2}, p}};
  const auto response =
      EncodeInferResponse("mlp", "3", "req\"1", {{"p", true}, {"y", false}}, views);
  ASSERT_TRUE(response.json_length);
  const std::string json = response.body.substr(0, *response.json_length);
  EXPECT_EQ(json,
            R"({"model_name":"mlp","model_version":"3","id":"req\"1","outputs":[)"
            R"({"name":"p","datatype":"INT32","shape":[2],"parameters":{"binary_data_size":8}},)"
            R"({"name":"y","datatype":"FP32","shape":[2,2],"data":[0.1,-2,3,4]}]})");
  EXPECT_EQ(response.body.substr(*response.json_length),
            std::string(reinterpret_cast<const char*>(p.data()), p.size()));

  const auto two_binary = EncodeInferResponse("m", "1", "", {{"y", true}, {"p", true}}, views);
  ASSERT_TRUE(two_binary.json_length);
  EXPECT_EQ(two_binary.body.size(), *two_binary.json_length + 24);
  EXPECT_EQ(two_binary.body.substr(*two_binary.json_length, 16),
            std::string(reinterpret_cast<const char*>(y.data()), 16));
  EXPECT_EQ(
      nlohmann::json::parse(two_binary.body.substr(0, *two_binary.json_length)).contains("id"),
      false);
}

TEST(ProtocolEncodeTest, NonFiniteFloatsAreNull) {
  const auto y =
      ToBytes(std::vector<float>{std::numeric_limits<float>::quiet_NaN(),
                                 std::numeric_limits<float>::infinity(), -0.0f, 3.4028235e38f});
  const auto d = ToBytes(std::vector<double>{-std::numeric_limits<double>::infinity(), 1e-300});
  const OutputView views[] = {{"y", DType::kFloat32, {4}, y}, {"d", DType::kFloat64, {2}, d}};
  const auto response = EncodeInferResponse("m", "1", "", {{"y", false}, {"d", false}}, views);
  EXPECT_FALSE(response.json_length);
  EXPECT_CONTAINS(response.body, std::string("\"data\":[null,null,-0,3.4028235e+38]"));
  EXPECT_CONTAINS(response.body, std::string("\"data\":[null,1e-300]"));
  EXPECT_TRUE(nlohmann::json::parse(response.body).is_object());
}

TEST(ProtocolEncodeTest, SkipsOutputsTheCallerDidNotProvideOrSizedWrong) {
  const auto y = ToBytes(std::vector<float>{1, 2, 3});
  const OutputView views[] = {{"y", DType::kFloat32, {2, 2}, y}};
  const auto response = EncodeInferResponse("m", "1", "", {{"y", false}, {"zz", false}}, views);
  EXPECT_EQ(nlohmann::json::parse(response.body)["outputs"], nlohmann::json::array());
}

TEST(ProtocolEncodeTest, ErrorIsEscapedAscii) {
  const std::string message = "bad \"x\" \\ \n\t\x01 \xc3\xa9 \xf0\x9f\x99\x82 \xff end";
  const std::string encoded = EncodeError(message);
  EXPECT_EQ(encoded, R"({"error":"bad \"x\" \\ \n\t\u0001 \u00e9 \ud83d\ude42 \ufffd end"})");
  for (const char c : encoded) EXPECT_LT(static_cast<unsigned char>(c), 0x80u);
  const auto parsed = nlohmann::json::parse(encoded);
  EXPECT_EQ(parsed["error"], "bad \"x\" \\ \n\t\x01 \xc3\xa9 \xf0\x9f\x99\x82 \xef\xbf\xbd end");
}

TEST(ProtocolEncodeTest, ModelMetadata) {
  const std::vector<std::string> versions = {"1", "2"};
  const std::string encoded = EncodeModelMetadata("mlp", versions, "pytorch_torchscript", Schema());
  const auto json = nlohmann::json::parse(encoded);
  EXPECT_EQ(json["name"], "mlp");
  EXPECT_EQ(json["versions"], nlohmann::json::array({"1", "2"}));
  EXPECT_EQ(json["platform"], "pytorch_torchscript");
  EXPECT_EQ(json["inputs"],
            nlohmann::json::parse(R"([{"name":"x","datatype":"FP32","shape":[-1,4]},)"
                                  R"({"name":"ids","datatype":"INT64","shape":[-1]}])"));
  EXPECT_EQ(json["outputs"],
            nlohmann::json::parse(R"([{"name":"y","datatype":"FP32","shape":[-1,2]},)"
                                  R"({"name":"p","datatype":"INT32","shape":[-1]}])"));
}

TEST(ProtocolDTypeTest, KServeNames) {
  for (const DTypeCase& c : DTypeCases()) {
    EXPECT_EQ(ParseKServeDType(KServeDTypeName(c.dtype)), c.dtype);
  }
  EXPECT_EQ(ParseKServeDType("float32"), std::nullopt);
  EXPECT_EQ(ParseKServeDType("UINT32"), std::nullopt);
}

}  // namespace
}  // namespace dlsys::serve

namespace dlsys::serve {
namespace {

// Found by tests/fuzz/infer_fuzz.cpp: an empty body reached simdjson with a null pointer.
TEST(ProtocolParseTest, EmptyBodyIsA400) {
  for (std::optional<std::size_t> length :
       {std::optional<std::size_t>(), std::optional<std::size_t>(0)}) {
    auto parsed = ParseInferRequest({}, length, Schema());
    ASSERT_FALSE(parsed.has_value());
    EXPECT_EQ(parsed.error().status, 400);
    EXPECT_NE(parsed.error().message.find("empty"), std::string::npos) << parsed.error().message;
  }
}

}  // namespace
}  // namespace dlsys::serve
