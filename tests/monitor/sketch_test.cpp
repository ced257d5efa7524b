#include "monitor/sketch.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

namespace dlsys::monitor {
namespace {

// The sketch's answer for q must be within the relative accuracy of the exact lower quantile.
void ExpectWithinBound(const std::vector<double>& values, const QuantileSketch& s) {
  std::vector<double> sorted = values;
  std::sort(sorted.begin(), sorted.end());
  for (double q : {0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0}) {
    const auto rank = static_cast<std::size_t>(std::floor(q * static_cast<double>(sorted.size() - 1)));
    const double exact = sorted[rank];
    const double got = s.Quantile(q);
    EXPECT_LE(std::abs(got - exact), QuantileSketch::kRelativeAccuracy * exact + 1e-12)
        << "q=" << q << " exact=" << exact << " sketch=" << got;
  }
}

TEST(QuantileSketch, QuantilesAreWithinTheRelativeAccuracyOnSeveralDistributions) {
  std::mt19937_64 gen(42);
  std::lognormal_distribution<double> lognormal(-1.5, 0.8);
  std::exponential_distribution<double> exponential(0.1);
  std::uniform_real_distribution<double> uniform(0.01, 5000);
  for (int d = 0; d < 3; ++d) {
    SCOPED_TRACE("distribution " + std::to_string(d));
    QuantileSketch s;
    std::vector<double> values;
    for (int i = 0; i < 100000; ++i) {
      const double v = d == 0 ? lognormal(gen) : d == 1 ? exponential(gen) : uniform(gen);
      values.push_back(std::max(v, QuantileSketch::kMinValue));
      s.Add(values.back());
    }
    ExpectWithinBound(values, s);
    EXPECT_EQ(s.count(), values.size());
    EXPECT_DOUBLE_EQ(s.min(), *std::min_element(values.begin(), values.end()));
    EXPECT_DOUBLE_EQ(s.max(), *std::max_element(values.begin(), values.end()));
  }
}

TEST(QuantileSketch, SmallSetsAndExtremesAreExact) {
  QuantileSketch s;
  EXPECT_EQ(s.Quantile(0.5), 0);
  EXPECT_EQ(s.count(), 0u);
  s.Add(3.0);
  EXPECT_EQ(s.Quantile(0), 3.0);
  EXPECT_EQ(s.Quantile(0.99), 3.0);
  s.Add(7.0);
  EXPECT_EQ(s.Quantile(0), 3.0);
  EXPECT_EQ(s.Quantile(1), 7.0);
  EXPECT_DOUBLE_EQ(s.mean(), 5.0);
}

TEST(QuantileSketch, MergingEqualsAddingEverythingToOne) {
  std::mt19937_64 gen(7);
  std::lognormal_distribution<double> dist(0, 1);
  QuantileSketch all, a, b;
  std::vector<double> values;
  for (int i = 0; i < 50000; ++i) {
    const double v = dist(gen);
    values.push_back(v);
    all.Add(v);
    (i % 3 ? a : b).Add(v);
  }
  a.Merge(b);
  for (double q : {0.0, 0.5, 0.9, 0.99, 1.0}) EXPECT_EQ(a.Quantile(q), all.Quantile(q)) << q;
  EXPECT_EQ(a.count(), all.count());
  EXPECT_NEAR(a.sum(), all.sum(), 1e-6 * all.sum());
  ExpectWithinBound(values, a);
  QuantileSketch empty;
  a.Merge(empty);
  EXPECT_EQ(a.count(), all.count());
  empty.Merge(b);
  EXPECT_EQ(empty.min(), b.min());
}

TEST(QuantileSketch, OutOfRangeValuesAreCountedNotLost) {
  QuantileSketch s;
  for (int i = 0; i < 98; ++i) s.Add(1.0);
  s.Add(0.0);
  s.Add(1e12);  // above kMaxValue
  EXPECT_EQ(s.count(), 100u);
  EXPECT_EQ(s.Quantile(0), 0.0);
  EXPECT_EQ(s.Quantile(1), 1e12);  // max is exact
  EXPECT_NEAR(s.Quantile(0.5), 1.0, 0.01);
  s.Add(std::nan(""));  // counted in the lowest bucket, not a crash
  EXPECT_EQ(s.count(), 101u);
}

}  // namespace
}  // namespace dlsys::monitor
