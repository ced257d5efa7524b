#include "core/checked.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>

namespace dlsys::core {
namespace {

constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();

TEST(CheckedTest, AddAndMulReportOverflow) {
  EXPECT_EQ(CheckedAdd(2, 3), 5u);
  EXPECT_EQ(CheckedAdd(kMax, 0), kMax);
  EXPECT_EQ(CheckedAdd(kMax, 1), std::nullopt);
  EXPECT_EQ(CheckedAdd(kMax / 2 + 1, kMax / 2 + 1), std::nullopt);
  EXPECT_EQ(CheckedMul(6, 7), 42u);
  EXPECT_EQ(CheckedMul(kMax, 0), 0u);
  EXPECT_EQ(CheckedMul(kMax, 1), kMax);
  EXPECT_EQ(CheckedMul(std::uint64_t{1} << 32, std::uint64_t{1} << 32), std::nullopt);
  EXPECT_EQ(CheckedMul(3, kMax / 2), std::nullopt);
}

TEST(ByteSizeTest, ExactArithmetic) {
  ByteSize s;
  EXPECT_EQ(s.value(), 0u);
  s += ByteSize(40);
  s += ByteSize(24);
  EXPECT_EQ(s.value(), 64u);
  EXPECT_EQ((ByteSize(4) * 6).value(), 24u);
  EXPECT_EQ((6 * ByteSize(4)).value(), 24u);
  EXPECT_TRUE(ByteSize(10).FitsIn(10));
  EXPECT_FALSE(ByteSize(11).FitsIn(10));
  EXPECT_EQ(ByteSize(7).Saturated(), 7u);
  EXPECT_FALSE(ByteSize(7).overflowed());
}

TEST(ByteSizeTest, OverflowIsStickyAndNeverWraps) {
  // The wrapped sum would be 1: a memory requirement that passes everywhere.
  ByteSize sum = ByteSize(kMax) + ByteSize(2);
  EXPECT_TRUE(sum.overflowed());
  EXPECT_EQ(sum.value(), std::nullopt);
  EXPECT_FALSE(sum.FitsIn(kMax));
  EXPECT_EQ(sum.Saturated(), kMax);
  sum += ByteSize(0);
  EXPECT_TRUE(sum.overflowed());
  EXPECT_TRUE((sum * 0).overflowed());  // once lost, the exact value cannot come back
  EXPECT_TRUE((ByteSize(std::uint64_t{1} << 40) * (std::uint64_t{1} << 30)).overflowed());
  EXPECT_TRUE((ByteSize(1) + ByteSize::Overflowed()).overflowed());
}

TEST(ByteSizeTest, OverflowComparesGreaterThanEverySize) {
  const ByteSize big = ByteSize(kMax) + ByteSize(1);
  EXPECT_GT(big, ByteSize(kMax));
  EXPECT_GT(big, kMax);
  EXPECT_NE(big, kMax);
  EXPECT_EQ(big, ByteSize::Overflowed());
  EXPECT_LT(ByteSize(1), ByteSize(2));
  EXPECT_EQ(ByteSize(3), 3u);
  EXPECT_LT(ByteSize(3), 4u);
  EXPECT_GT(ByteSize(5), 4u);
}

TEST(ByteSizeTest, IsConstexpr) {
  static_assert((ByteSize(2) + ByteSize(3)).value() == 5u);
  static_assert((ByteSize(kMax) * 2).overflowed());
  static_assert(!CheckedAdd(kMax, 1).has_value());
}

}  // namespace
}  // namespace dlsys::core
