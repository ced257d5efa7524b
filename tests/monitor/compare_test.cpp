#include "monitor/compare.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace dlsys::monitor {
namespace {

TEST(CompareErrorRates, ZTestMatchesTheTextbookValue) {
  // 1% of 10,000 against 2% of 10,000: pooled p = 0.015, se = sqrt(0.015 * 0.985 * 2e-4),
  // z = 0.01 / se = 5.8186...
  const auto r = CompareErrorRates(100, 10000, 200, 10000);
  EXPECT_NEAR(r.z, 0.01 / std::sqrt(0.015 * 0.985 * 2e-4), 1e-9);
  EXPECT_LT(r.p_value, 1e-6);
  EXPECT_EQ(r.verdict, Verdict::kWorse);
  EXPECT_FALSE(r.needed_per_arm) << "already significant";
  EXPECT_EQ(CompareErrorRates(200, 10000, 100, 10000).verdict, Verdict::kBetter);
}

TEST(CompareErrorRates, SmallSamplesAskForMoreRequests) {
  // 1% vs 1.5% on 1,000 each is not significant; the classic formula asks for ~7,700 per arm.
  const auto r = CompareErrorRates(10, 1000, 15, 1000);
  EXPECT_EQ(r.verdict, Verdict::kNoDifference);
  EXPECT_GT(r.p_value, 0.05);
  ASSERT_TRUE(r.needed_per_arm);
  EXPECT_NEAR(static_cast<double>(*r.needed_per_arm), 7745, 60);
  // Equal rates: no sample size shows a zero difference.
  EXPECT_FALSE(CompareErrorRates(10, 1000, 10, 1000).needed_per_arm);
  EXPECT_EQ(CompareErrorRates(0, 0, 1, 10).verdict, Verdict::kNoData);
}

TEST(CompareLatencies, FindsAShiftAndNotAResample) {
  std::mt19937_64 gen(3);
  std::lognormal_distribution<double> base(0, 0.5), shifted(0.1, 0.5);
  QuantileSketch a, b, c;
  for (int i = 0; i < 20000; ++i) {
    a.Add(base(gen));
    b.Add(base(gen));     // a resample of the same distribution
    c.Add(shifted(gen));  // 10% slower
  }
  const auto same = CompareLatencies(a, b);
  EXPECT_EQ(same.verdict, Verdict::kNoDifference) << same.d << " " << same.p_value;
  EXPECT_LT(same.d, 0.02);
  const auto slower = CompareLatencies(a, c);
  EXPECT_EQ(slower.verdict, Verdict::kWorse);
  EXPECT_LT(slower.p_value, 1e-6);
  EXPECT_NEAR(slower.d, 0.08, 0.02);  // about the shift of the CDFs at the median
  EXPECT_EQ(CompareLatencies(c, a).verdict, Verdict::kBetter);
  EXPECT_EQ(CompareLatencies(a, QuantileSketch{}).verdict, Verdict::kNoData);
}

TEST(KolmogorovSurvival, KnownQuantiles) {
  EXPECT_NEAR(KolmogorovSurvival(1.3580986), 0.05, 1e-6);
  EXPECT_NEAR(KolmogorovSurvival(1.2238478), 0.10, 1e-6);
  EXPECT_EQ(KolmogorovSurvival(0), 1.0);
  EXPECT_LT(KolmogorovSurvival(3), 1e-7);
}

}  // namespace
}  // namespace dlsys::monitor
