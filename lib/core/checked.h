// Checked size and count arithmetic: sums and products of sizes from untrusted documents must
// never wrap around (a wrapped sum of weight bytes would make a memory check pass).
//
// Header-only and constexpr; no allocation, no exceptions, thread-compatible value types.
#pragma once

#include <compare>
#include <cstdint>
#include <limits>
#include <optional>

namespace dlsys::core {

// a + b, or nullopt when the result does not fit in 64 bits.
[[nodiscard]] constexpr std::optional<std::uint64_t> CheckedAdd(std::uint64_t a, std::uint64_t b) {
  std::uint64_t sum = 0;
  if (__builtin_add_overflow(a, b, &sum)) return std::nullopt;
  return sum;
}

// a * b, or nullopt when the result does not fit in 64 bits.
[[nodiscard]] constexpr std::optional<std::uint64_t> CheckedMul(std::uint64_t a, std::uint64_t b) {
  std::uint64_t product = 0;
  if (__builtin_mul_overflow(a, b, &product)) return std::nullopt;
  return product;
}

// A byte size or element count that cannot wrap. Arithmetic whose exact result exceeds
// 2^64 - 1 yields an *overflowed* value, which stays overflowed through further arithmetic and
// compares greater than every representable size, so a check such as `need > available` fails
// closed. Read it with value() (nullopt when overflowed), FitsIn() or Saturated().
class ByteSize {
 public:
  constexpr ByteSize() = default;
  constexpr explicit ByteSize(std::uint64_t bytes) : bytes_(bytes) {}
  static constexpr ByteSize Overflowed() {
    ByteSize s;
    s.overflowed_ = true;
    return s;
  }

  constexpr bool overflowed() const { return overflowed_; }
  // The exact size, or nullopt if some step overflowed.
  constexpr std::optional<std::uint64_t> value() const {
    if (overflowed_) return std::nullopt;
    return bytes_;
  }
  // True iff the exact size is known and at most `limit`.
  constexpr bool FitsIn(std::uint64_t limit) const { return !overflowed_ && bytes_ <= limit; }
  // The exact size, or 2^64 - 1 when overflowed (for reports that must show a number).
  constexpr std::uint64_t Saturated() const {
    return overflowed_ ? std::numeric_limits<std::uint64_t>::max() : bytes_;
  }

  constexpr ByteSize& operator+=(ByteSize other) {
    const auto sum = CheckedAdd(bytes_, other.bytes_);
    if (overflowed_ || other.overflowed_ || !sum) return *this = Overflowed();
    bytes_ = *sum;
    return *this;
  }
  // Multiplies by a count (elements, shards, ...).
  constexpr ByteSize& operator*=(std::uint64_t count) {
    const auto product = CheckedMul(bytes_, count);
    if (overflowed_ || !product) return *this = Overflowed();
    bytes_ = *product;
    return *this;
  }
  friend constexpr ByteSize operator+(ByteSize a, ByteSize b) { return a += b; }
  friend constexpr ByteSize operator*(ByteSize a, std::uint64_t count) { return a *= count; }
  friend constexpr ByteSize operator*(std::uint64_t count, ByteSize a) { return a *= count; }

  // Overflowed values are equal to each other and greater than every exact size.
  friend constexpr bool operator==(const ByteSize&, const ByteSize&) = default;
  friend constexpr std::strong_ordering operator<=>(const ByteSize&, const ByteSize&) = default;
  friend constexpr bool operator==(ByteSize a, std::uint64_t b) {
    return !a.overflowed_ && a.bytes_ == b;
  }
  friend constexpr std::strong_ordering operator<=>(ByteSize a, std::uint64_t b) {
    if (a.overflowed_) return std::strong_ordering::greater;
    return a.bytes_ <=> b;
  }

 private:
  // Declaration order matters: the defaulted comparisons compare overflowed_ first.
  bool overflowed_ = false;
  std::uint64_t bytes_ = 0;  // 0 whenever overflowed_
};

}  // namespace dlsys::core
