// KServe datatype names, FP16/BF16 conversions and JSON text helpers of the inference protocol.
#include "serve/protocol.h"

#include <bit>
#include <charconv>
#include <cmath>
#include <cstring>

#include "core/utf8.h"
#include "serve/internal/protocol_float.h"
#include "serve/internal/protocol_json.h"

namespace dlsys::serve {

const char* KServeDTypeName(runtime::DType dtype) {
  switch (dtype) {
    case runtime::DType::kFloat32:
      return "FP32";
    case runtime::DType::kFloat64:
      return "FP64";
    case runtime::DType::kFloat16:
      return "FP16";
    case runtime::DType::kBFloat16:
      return "BF16";
    case runtime::DType::kInt8:
      return "INT8";
    case runtime::DType::kUInt8:
      return "UINT8";
    case runtime::DType::kInt16:
      return "INT16";
    case runtime::DType::kInt32:
      return "INT32";
    case runtime::DType::kInt64:
      return "INT64";
    case runtime::DType::kBool:
      return "BOOL";
  }
  return "FP32";  // unreachable for valid enum values
}

std::optional<runtime::DType> ParseKServeDType(std::string_view name) {
  using runtime::DType;
  static constexpr DType kAll[] = {
      DType::kBool,  DType::kUInt8,   DType::kInt8,    DType::kInt16,   DType::kInt32,
      DType::kInt64, DType::kFloat16, DType::kFloat32, DType::kFloat64, DType::kBFloat16};
  for (DType dtype : kAll) {
    if (name == KServeDTypeName(dtype)) return dtype;
  }
  return std::nullopt;
}

namespace internal {
namespace {

// Rounds a double to a binary floating-point format with `exp_bits` exponent bits and
// `mant_bits` stored mantissa bits (IEEE layout, with subnormals), to nearest, ties to even.
std::optional<std::uint16_t> RoundDouble(double value, int exp_bits, int mant_bits) {
  const auto bits = std::bit_cast<std::uint64_t>(value);
  const std::uint32_t sign = static_cast<std::uint32_t>(bits >> 63) << (exp_bits + mant_bits);
  const int exp = static_cast<int>((bits >> 52) & 0x7FF);
  const std::uint64_t frac = bits & ((std::uint64_t{1} << 52) - 1);
  const int bias = (1 << (exp_bits - 1)) - 1;
  const std::uint32_t inf = ((std::uint32_t{1} << exp_bits) - 1) << mant_bits;
  if (exp == 0x7FF) {
    if (frac == 0) return static_cast<std::uint16_t>(sign | inf);
    return static_cast<std::uint16_t>(sign | inf | (std::uint32_t{1} << (mant_bits - 1)));
  }
  // Zero, or a double subnormal (< 2^-1022): far below half the smallest target subnormal.
  if (exp == 0) return static_cast<std::uint16_t>(sign);
  const int e = exp - 1023;
  if (e > bias) return std::nullopt;  // >= 2^(bias+1), above the largest finite value
  const std::uint64_t m = frac | (std::uint64_t{1} << 52);
  const int emin = 1 - bias;
  const int shift = 52 - mant_bits + (e < emin ? emin - e : 0);
  std::uint64_t q = 0;
  if (shift < 64) {
    q = m >> shift;
    const std::uint64_t rem = m & ((std::uint64_t{1} << shift) - 1);
    const std::uint64_t halfway = std::uint64_t{1} << (shift - 1);
    if (rem > halfway || (rem == halfway && (q & 1))) ++q;
  }
  // A normal q is in [2^mant_bits, 2^(mant_bits+1)]; adding it to (biased exponent - 1) lets a
  // rounding carry bump the exponent. A subnormal q (biased exponent 0) may round up to the
  // smallest normal the same way.
  const std::uint64_t magnitude =
      e < emin ? q : (static_cast<std::uint64_t>(e + bias - 1) << mant_bits) + q;
  if (magnitude >= inf) return std::nullopt;
  return static_cast<std::uint16_t>(sign | magnitude);
}

}  // namespace

std::optional<std::uint16_t> DoubleToHalfBits(double value) { return RoundDouble(value, 5, 10); }

std::optional<std::uint16_t> DoubleToBFloat16Bits(double value) { return RoundDouble(value, 8, 7); }

void AppendShape(std::string& out, std::span<const std::int64_t> shape) {
  out.push_back('[');
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) out.push_back(',');
    char buf[24];
    const auto result = std::to_chars(buf, buf + sizeof buf, shape[i]);
    out.append(buf, result.ptr);
  }
  out.push_back(']');
}

}  // namespace internal
}  // namespace dlsys::serve
