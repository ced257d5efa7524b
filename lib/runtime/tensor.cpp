// DType names, sizes and element counts: the torch-free half of the runtime interface.
#include <array>
#include <bit>
#include <cmath>
#include <cstring>
#include <string>
#include <string_view>

#include "runtime/runtime.h"

namespace dlsys::runtime {
namespace {

struct DTypeEntry {
  DType dtype;
  const char* name;         // manifest name
  const char* kserve_name;  // KServe v2 / Open Inference Protocol name
  std::size_t size_bytes;
};

constexpr std::array<DTypeEntry, 10> kDTypes = {{
    {DType::kFloat32, "float32", "FP32", 4},
    {DType::kFloat64, "float64", "FP64", 8},
    {DType::kFloat16, "float16", "FP16", 2},
    {DType::kBFloat16, "bfloat16", "BF16", 2},
    {DType::kInt8, "int8", "INT8", 1},
    {DType::kUInt8, "uint8", "UINT8", 1},
    {DType::kInt16, "int16", "INT16", 2},
    {DType::kInt32, "int32", "INT32", 4},
    {DType::kInt64, "int64", "INT64", 8},
    {DType::kBool, "bool", "BOOL", 1},
}};

const DTypeEntry& Entry(DType dtype) {
  for (const DTypeEntry& entry : kDTypes) {
    if (entry.dtype == dtype) return entry;
  }
  return kDTypes[0];  // unreachable for valid enum values
}

}  // namespace

const char* DTypeName(DType dtype) { return Entry(dtype).name; }

std::size_t DTypeSize(DType dtype) { return Entry(dtype).size_bytes; }

Result<DType> ParseDType(std::string_view name) {
  for (const DTypeEntry& entry : kDTypes) {
    if (name == entry.name || name == entry.kserve_name) return entry.dtype;
  }
  std::string valid;
  for (const DTypeEntry& entry : kDTypes) {
    if (!valid.empty()) valid += ", ";
    valid += entry.name;
  }
  valid += " (or the KServe names ";
  bool first = true;
  for (const DTypeEntry& entry : kDTypes) {
    if (!first) valid += ", ";
    valid += entry.kserve_name;
    first = false;
  }
  valid += ")";
  return Fail(Code::kInvalid, "unknown dtype '" + std::string(name) + "'; valid dtypes: " + valid);
}

// A scalar (empty shape) has one element. Returns -1 if a dimension is negative (dynamic) or
// the product overflows, so callers comparing against a byte count always see a mismatch.
std::int64_t ElementCount(const std::vector<std::int64_t>& shape) {
  std::int64_t count = 1;
  for (std::int64_t dim : shape) {
    if (dim < 0) return -1;
    if (__builtin_mul_overflow(count, dim, &count)) return -1;
  }
  return count;
}

float HalfBitsToFloat(std::uint16_t bits) {
  const std::uint32_t sign = static_cast<std::uint32_t>(bits >> 15) << 31;
  const std::uint32_t exp = (bits >> 10) & 0x1F;
  const std::uint32_t mant = bits & 0x3FF;
  if (exp == 0) {  // zero or subnormal: mant * 2^-24
    const float magnitude = std::ldexp(static_cast<float>(mant), -24);
    return sign ? -magnitude : magnitude;
  }
  if (exp == 0x1F) return std::bit_cast<float>(sign | 0x7F800000u | (mant << 13));
  return std::bit_cast<float>(sign | ((exp + 112) << 23) | (mant << 13));
}

float BFloat16BitsToFloat(std::uint16_t bits) {
  return std::bit_cast<float>(static_cast<std::uint32_t>(bits) << 16);
}

namespace {

template <typename T>
T Load(std::span<const std::byte> data, std::size_t i) {
  T v;
  std::memcpy(&v, data.data() + i * sizeof(T), sizeof(T));
  return v;
}

}  // namespace

double ElementAsDouble(DType dtype, std::span<const std::byte> data, std::size_t i) {
  switch (dtype) {
    case DType::kFloat32:
      return Load<float>(data, i);
    case DType::kFloat64:
      return Load<double>(data, i);
    case DType::kFloat16:
      return HalfBitsToFloat(Load<std::uint16_t>(data, i));
    case DType::kBFloat16:
      return BFloat16BitsToFloat(Load<std::uint16_t>(data, i));
    case DType::kInt8:
      return Load<std::int8_t>(data, i);
    case DType::kUInt8:
      return Load<std::uint8_t>(data, i);
    case DType::kBool:
      return Load<std::uint8_t>(data, i) != 0 ? 1.0 : 0.0;
    case DType::kInt16:
      return Load<std::int16_t>(data, i);
    case DType::kInt32:
      return Load<std::int32_t>(data, i);
    case DType::kInt64:
      return static_cast<double>(Load<std::int64_t>(data, i));
  }
  return 0;
}

}  // namespace dlsys::runtime
