// FP16 and BF16 conversions for the inference protocol: JSON numbers (doubles) to the 16-bit
// formats. Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <optional>

namespace dlsys::serve::internal {

// The IEEE 754 binary16 bits of `value` rounded to nearest, ties to even (directly from the
// double, not via float, so there is no double rounding). nullopt when a finite value rounds to
// infinity (|value| >= 65520). NaN and infinities map to themselves.
std::optional<std::uint16_t> DoubleToHalfBits(double value);

// The bfloat16 bits of `value` rounded to nearest, ties to even; nullopt when a finite value
// rounds to infinity. NaN and infinities map to themselves.
std::optional<std::uint16_t> DoubleToBFloat16Bits(double value);

// (The inverse conversions, bits to float, are runtime::HalfBitsToFloat / BFloat16BitsToFloat.)

}  // namespace dlsys::serve::internal
