// Drift: the statistics against hand-computed values, drift found on shifted distributions and
// not on resamples, categorical features, edge cases (constant, tiny baselines) and the bounds.
#include "monitor/drift.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <span>
#include <string_view>
#include <string>
#include <vector>

namespace dlsys::monitor {
namespace {

using Counts = std::vector<std::uint64_t>;

// Each value a record of its own (independent observations).
void AddEach(DriftSink& sink, std::string_view name, std::span<const double> values) {
  for (const double v : values) sink.AddNumber(name, v);
}

DriftBaseline NumericBaseline(const std::vector<double>& values, const std::string& name = "x") {
  BaselineBuilder b;
  AddEach(b, name, values);
  return b.Finalize();
}

std::vector<double> Normal(std::size_t n, double mean, std::uint32_t seed) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<double> dist(mean, 1.0);
  std::vector<double> v(n);
  for (auto& x : v) x = dist(gen);
  return v;
}

// Draws n categories with the given probabilities of "a", "b", "c", ...
void AddCategories(DriftSink& sink, std::size_t n, const std::vector<double>& weights,
                   std::uint32_t seed) {
  std::mt19937_64 gen(seed);
  std::discrete_distribution<int> dist(weights.begin(), weights.end());
  for (std::size_t i = 0; i < n; ++i) {
    sink.AddCategory("c", std::string(1, static_cast<char>('a' + dist(gen))));
  }
}

FeatureDrift Compare(const DriftBaseline& baseline, const std::vector<double>& current) {
  DriftCounts counts(baseline);
  AddEach(counts, "x", current);
  DriftReport r = CompareDrift(counts);
  EXPECT_EQ(r.features.size(), 1u);
  return r.features.empty() ? FeatureDrift{} : r.features[0];
}

// ---- statistics on known histograms ---------------------------------------------------------

TEST(DriftStatsTest, PsiAndJsMatchHandComputedValues) {
  const Counts b = {50, 30, 20, 0};
  const Counts c = {30, 30, 40, 0};
  // PSI: fractions (count + 0.5) / (100 + 4 * 0.5): p = 50.5/102, 30.5/102, 20.5/102, 0.5/102;
  // q = 30.5/102, 30.5/102, 40.5/102, 0.5/102; sum (q - p) ln(q / p)
  //   = (-20/102) ln(30.5/50.5) + 0 + (20/102) ln(40.5/20.5) + 0 = 0.232377...
  const double psi = (-20.0 / 102) * std::log(30.5 / 50.5) + (20.0 / 102) * std::log(40.5 / 20.5);
  EXPECT_NEAR(psi, 0.23237720404629, 1e-12);
  EXPECT_NEAR(PopulationStabilityIndex(b, c), psi, 1e-12);
  // JS on 0.5/0.3/0.2 and 0.3/0.3/0.4 (m = 0.4/0.3/0.3), log base 2, then the square root.
  const double js = 0.5 * (0.5 * std::log2(0.5 / 0.4) + 0.2 * std::log2(0.2 / 0.3)) +
                    0.5 * (0.3 * std::log2(0.3 / 0.4) + 0.4 * std::log2(0.4 / 0.3));
  EXPECT_NEAR(std::sqrt(js), 0.2067308603321408, 1e-12);
  EXPECT_NEAR(JensenShannonDistance(b, c), std::sqrt(js), 1e-12);
  // Symmetric, 0 on equal fractions, 1 on disjoint supports.
  EXPECT_NEAR(JensenShannonDistance(c, b), std::sqrt(js), 1e-12);
  EXPECT_NEAR(JensenShannonDistance(b, Counts{500, 300, 200, 0}), 0, 1e-12);
  EXPECT_NEAR(JensenShannonDistance(Counts{10, 0}, Counts{0, 10}), 1, 1e-12);
  EXPECT_EQ(JensenShannonDistance(Counts{10, 0}, Counts{0, 0}), 0);
}

TEST(DriftStatsTest, PsiOfEqualHistogramsIsZeroAndEmptyBinsAreSmoothed) {
  EXPECT_NEAR(PopulationStabilityIndex(Counts{40, 60}, Counts{40, 60}), 0, 1e-15);
  // A bin empty in the baseline stays finite: both sides have 100 + 3 * 0.5 = 101.5, so
  // p = 0.5/101.5 and q = 10.5/101.5 on the third bin.
  const double psi = PopulationStabilityIndex(Counts{50, 50, 0}, Counts{45, 45, 10});
  const double expected =
      (-5.0 / 101.5) * std::log(45.5 / 50.5) * 2 + (10.0 / 101.5) * std::log(10.5 / 0.5);
  EXPECT_NEAR(psi, expected, 1e-12);
}

TEST(DriftStatsTest, ChiSquareSurvivalMatchesTables) {
  EXPECT_NEAR(ChiSquareSurvival(3.841458820694124, 1), 0.05, 1e-9);
  EXPECT_NEAR(ChiSquareSurvival(18.307038053275146, 10), 0.05, 1e-9);
  EXPECT_NEAR(ChiSquareSurvival(6.634896601021214, 1), 0.01, 1e-9);
  EXPECT_NEAR(ChiSquareSurvival(5.0, 2), std::exp(-2.5), 1e-12);  // df 2: exp(-x / 2)
  EXPECT_NEAR(ChiSquareSurvival(0.5, 2), std::exp(-0.25), 1e-12);
  EXPECT_EQ(ChiSquareSurvival(0, 3), 1);
  // 2x2 table 30/70 vs 50/50: chi2 = 8.333..., df 1 -> p = 0.00389.
  EXPECT_NEAR(ChiSquareHomogeneityP(Counts{30, 70}, Counts{50, 50}), 0.0038924171227, 1e-9);
  EXPECT_EQ(ChiSquareHomogeneityP(Counts{10, 0}, Counts{20, 0}), 1);  // one bin left
}

TEST(DriftStatsTest, KsOnAKnownCase) {
  // 0..999 against 60..1059: the CDFs differ by exactly 0.06 from 60 to 999, and every fine
  // edge (each 10th value) lies there or below, so the binned D is the exact D.
  std::vector<double> base, cur;
  for (int i = 0; i < 1000; ++i) {
    base.push_back(i);
    cur.push_back(i + 60);
  }
  FeatureDrift r = Compare(NumericBaseline(base), cur);
  ASSERT_TRUE(r.ks_d && r.ks_p);
  EXPECT_NEAR(*r.ks_d, 0.06, 1e-12);
  // n = m = 1000: sqrt(500) = 22.36; lambda = (22.36 + 0.12 + 0.11 / 22.36) * 0.06 = 1.349;
  // Kolmogorov survival 2 (e^-2l^2 - e^-8l^2 + ...) = 0.0525.
  EXPECT_NEAR(*r.ks_p, 0.0525, 0.001);
  EXPECT_FALSE(r.ks_drift);  // p > 0.05
  // Shifted by 65: D = 0.065, p = 0.028, significant alone but not at 0.05 / 2 (a numeric
  // feature has two tests), even with the D floor lowered.
  for (auto& v : cur) v += 5;
  DriftThresholds low_floor;
  low_floor.ks_min_d = 0.05;
  {
    const DriftBaseline baseline = NumericBaseline(base);
    DriftCounts c(baseline);
    AddEach(c, "x", cur);
    r = CompareDrift(c, low_floor).features[0];
  }
  EXPECT_NEAR(*r.ks_d, 0.065, 1e-12);
  EXPECT_NEAR(*r.ks_p, 0.028, 0.001);
  EXPECT_FALSE(r.ks_drift);
  // 0..99 against 50..149: D = 0.5, p tiny.
  base.resize(100);
  cur.assign(base.begin(), base.end());
  for (auto& v : cur) v += 50;
  r = Compare(NumericBaseline(base), cur);
  EXPECT_NEAR(*r.ks_d, 0.5, 1e-12);
  EXPECT_LT(*r.ks_p, 1e-9);
  EXPECT_TRUE(r.ks_drift);
  // The same values: D = 0, p = 1.
  r = Compare(NumericBaseline(base), base);
  EXPECT_EQ(*r.ks_d, 0);
  EXPECT_EQ(*r.ks_p, 1);
  EXPECT_EQ(r.verdict, DriftVerdict::kNoDrift);
}

// ---- numeric features -------------------------------------------------------------------------

TEST(DriftTest, ShiftedNormalDriftsOnAllThree) {
  const DriftBaseline baseline = NumericBaseline(Normal(20000, 0, 1));
  const FeatureDrift r = Compare(baseline, Normal(10000, 0.5, 2));
  EXPECT_EQ(r.verdict, DriftVerdict::kDrift);
  EXPECT_TRUE(r.psi_drift) << r.psi;
  EXPECT_TRUE(r.js_drift) << r.js;
  EXPECT_TRUE(r.ks_drift) << *r.ks_d;
  // The population values on deciles of N(0, 1) shifted by 0.5: PSI 0.238, JS distance 0.205;
  // KS D = 2 Phi(0.25) - 1 = 0.197.
  EXPECT_NEAR(r.psi, 0.238, 0.03);
  EXPECT_NEAR(r.js, 0.205, 0.02);
  EXPECT_NEAR(*r.ks_d, 0.197, 0.02);
  EXPECT_LT(r.chi2_p, 1e-10);
  EXPECT_FALSE(r.psi_major);  // 0.238 < 0.25
  EXPECT_EQ(r.n_baseline, 20000u);
  EXPECT_EQ(r.n_current, 10000u);
  ASSERT_EQ(r.bins.size(), 12u);  // below the range, 10 deciles, above the range
  EXPECT_EQ(r.bins.front().baseline, 0);
  EXPECT_EQ(r.bins.back().baseline, 0);
  for (std::size_t i = 1; i + 1 < r.bins.size(); ++i) EXPECT_NEAR(r.bins[i].baseline, 0.1, 1e-4);
  double sum = 0;
  for (const auto& bin : r.bins) sum += bin.current;
  EXPECT_NEAR(sum, 1, 1e-12);
  EXPECT_TRUE(std::isinf(r.bins.front().lower));
  EXPECT_TRUE(std::isinf(r.bins.back().upper));
}

TEST(DriftTest, ResamplesOfTheBaselineDoNotDrift) {
  int drifted = 0, runs = 0;
  for (std::size_t n : {5000u, 20000u, 50000u}) {
    for (std::uint32_t seed = 0; seed < 20; ++seed) {
      const DriftBaseline baseline = NumericBaseline(Normal(n, 0, 1000 + seed));
      const FeatureDrift r = Compare(baseline, Normal(n, 0, 5000 + seed));
      ++runs;
      EXPECT_EQ(r.verdict == DriftVerdict::kInsufficientData, false);
      if (r.verdict == DriftVerdict::kDrift) {
        ++drifted;
        ADD_FAILURE() << "n " << n << " seed " << seed << ": psi " << r.psi << " js " << r.js
                      << " D " << *r.ks_d << " p " << *r.ks_p;
      }
      // Far from the thresholds, not just under them.
      EXPECT_LT(r.psi, 0.03);
      EXPECT_LT(r.js, 0.06);
      EXPECT_LT(*r.ks_d, 0.05);
    }
  }
  EXPECT_EQ(runs, 60);
  EXPECT_LE(drifted, 1);
}

TEST(DriftTest, ResampleOfAHeavilyTiedFeatureDoesNotDrift) {
  // 90% zeros and a tail: deciles repeat, so edges are deduplicated.
  auto sample = [](std::size_t n, std::uint32_t seed, double zeros = 0.9) {
    std::mt19937_64 gen(seed);
    std::bernoulli_distribution zero(zeros);
    std::exponential_distribution<double> tail(1.0);
    std::vector<double> v(n);
    for (auto& x : v) x = zero(gen) ? 0 : tail(gen);
    return v;
  };
  const DriftBaseline baseline = NumericBaseline(sample(20000, 1));
  const auto& f = baseline.features()[0];
  EXPECT_TRUE(std::is_sorted(f.edges.begin(), f.edges.end()));
  EXPECT_EQ(std::adjacent_find(f.edges.begin(), f.edges.end()), f.edges.end());
  int drifted = 0;
  for (std::uint32_t seed = 2; seed < 22; ++seed) {
    drifted += Compare(baseline, sample(20000, seed)).verdict == DriftVerdict::kDrift;
  }
  EXPECT_LE(drifted, 1);
  // 70% zeros instead of 90% is drift: PSI = 0.2 ln(9/7) + 0.2 ln 3 = 0.27, D = 0.2.
  const FeatureDrift fewer = Compare(baseline, sample(20000, 99, 0.7));
  EXPECT_EQ(fewer.verdict, DriftVerdict::kDrift);
  EXPECT_NEAR(fewer.psi, 0.27, 0.03);
  EXPECT_NEAR(*fewer.ks_d, 0.2, 0.02);
  // 95% is not (PSI 0.037, D 0.05: below every threshold, though significant at this n).
  const FeatureDrift more = Compare(baseline, sample(20000, 98, 0.95));
  EXPECT_EQ(more.verdict, DriftVerdict::kNoDrift);
  EXPECT_LT(more.chi2_p, 0.05);
  EXPECT_LT(more.ks_p.value_or(1), 0.05);
}

TEST(DriftTest, ConstantBaselineHasBinsAroundTheConstant) {
  const DriftBaseline baseline = NumericBaseline(std::vector<double>(1000, 3.0));
  const auto& f = baseline.features()[0];
  EXPECT_EQ(f.edges.size(), 2u);  // just below 3, and 3
  FeatureDrift same = Compare(baseline, std::vector<double>(500, 3.0));
  ASSERT_EQ(same.bins.size(), 3u);
  EXPECT_EQ(same.bins[0].label, "< 3");
  EXPECT_EQ(same.bins[1].label, "= 3");
  EXPECT_EQ(same.bins[2].label, "> 3");
  EXPECT_EQ(same.verdict, DriftVerdict::kNoDrift);
  // Not 0: the empty bins' 0.5 is a different fraction of 1000 and of 500 values.
  EXPECT_LT(same.psi, 0.001);
  EXPECT_EQ(same.js, 0);
  EXPECT_EQ(*same.ks_d, 0);
  for (double shifted : {2.5, 3.5}) {
    FeatureDrift r = Compare(baseline, std::vector<double>(500, shifted));
    EXPECT_EQ(r.verdict, DriftVerdict::kDrift) << shifted;
    EXPECT_TRUE(r.psi_drift && r.psi_major && r.js_drift && r.ks_drift) << shifted;
    EXPECT_EQ(r.bins[shifted < 3 ? 0 : 2].current, 1);
  }
}

TEST(DriftTest, TinyBaselinesGiveNoVerdict) {
  for (std::size_t n : {1u, 2u, 10u, 29u}) {
    std::vector<double> values;
    for (std::size_t i = 0; i < n; ++i) values.push_back(static_cast<double>(i));
    const DriftBaseline baseline = NumericBaseline(values);
    FeatureDrift r = Compare(baseline, Normal(5000, 100, 7));  // far away
    EXPECT_EQ(r.verdict, DriftVerdict::kInsufficientData) << n;
    EXPECT_FALSE(r.psi_drift || r.js_drift || r.ks_drift) << n;
    EXPECT_GT(r.psi, 1) << n;  // the numbers are still there to see
    EXPECT_EQ(r.bins.back().current, 1) << n;
  }
  // And too few current values, with a large baseline.
  FeatureDrift r = Compare(NumericBaseline(Normal(5000, 0, 1)), Normal(29, 10, 2));
  EXPECT_EQ(r.verdict, DriftVerdict::kInsufficientData);
  // A feature the current side never saw.
  r = Compare(NumericBaseline(Normal(5000, 0, 1)), {});
  EXPECT_EQ(r.verdict, DriftVerdict::kInsufficientData);
  EXPECT_EQ(r.n_current, 0u);
  EXPECT_EQ(r.psi, 0);
}

TEST(DriftTest, SmallSamplesNeedASignificantChiSquare) {
  // 40 values each side from the same distribution: PSI on 12 bins is noisy (about
  // 9 * (1/40 + 1/40) = 0.45 expected), but the chi-square test does not call it drift.
  int psi_over = 0, drifted = 0;
  for (std::uint32_t seed = 0; seed < 20; ++seed) {
    FeatureDrift r = Compare(NumericBaseline(Normal(40, 0, 300 + seed)), Normal(40, 0, 400 + seed));
    psi_over += r.psi > 0.1;
    drifted += r.verdict == DriftVerdict::kDrift;
  }
  EXPECT_GT(psi_over, 10);  // what the gate is for
  EXPECT_LE(drifted, 2);
}

TEST(DriftTest, NonFiniteAndMismatchedValuesAreCountedNotBinned) {
  BaselineBuilder b;
  AddEach(b, "x", Normal(100, 0, 1));
  b.AddNumber("x", NAN);
  b.AddCategory("x", "cat");
  b.AddCategory("label", "cat");
  b.AddNumber("label", 1.0);
  const DriftBaseline baseline = b.Finalize();
  ASSERT_EQ(baseline.features().size(), 2u);
  const auto& label = baseline.features()[0];  // sorted by name
  const auto& x = baseline.features()[1];
  EXPECT_EQ(label.kind, FeatureKind::kCategorical);
  EXPECT_EQ(label.mismatched, 1u);
  EXPECT_EQ(x.kind, FeatureKind::kNumeric);
  EXPECT_EQ(x.values, 100u);
  EXPECT_EQ(x.non_finite, 1u);
  EXPECT_EQ(x.mismatched, 1u);

  DriftCounts c(baseline);
  c.AddNumber("x", INFINITY);
  c.AddCategory("x", "dog");
  c.AddNumber("x", 0.0);
  c.AddNumber("label", 2.0);
  DriftReport r = CompareDrift(c);
  EXPECT_EQ(r.features[1].n_current, 1u);
  EXPECT_EQ(r.features[1].non_finite, 1u);
  EXPECT_EQ(r.features[1].mismatched, 1u);
  EXPECT_EQ(r.features[0].mismatched, 1u);
  EXPECT_EQ(r.features[0].n_current, 0u);
}

// ---- categorical features ---------------------------------------------------------------------

TEST(DriftTest, CategoricalShiftFoundResampleNot) {
  BaselineBuilder b;
  AddCategories(b, 10000, {0.7, 0.3}, 1);
  const DriftBaseline baseline = b.Finalize();
  ASSERT_EQ(baseline.features()[0].kind, FeatureKind::kCategorical);
  ASSERT_EQ(baseline.features()[0].categories,
            (std::vector<std::string>{"a", "b", std::string(kOtherCategory)}));

  DriftCounts shifted(baseline);
  AddCategories(shifted, 5000, {0.4, 0.6}, 2);
  FeatureDrift r = CompareDrift(shifted).features[0];
  EXPECT_EQ(r.verdict, DriftVerdict::kDrift);
  EXPECT_TRUE(r.psi_drift && r.psi_major && r.js_drift);
  EXPECT_FALSE(r.ks_d.has_value());  // no order, no KS
  EXPECT_NEAR(r.psi, 0.376, 0.03);   // 0.3 ln(7/4) + 0.3 ln 2
  EXPECT_NEAR(r.bins[0].baseline, 0.7, 0.02);
  EXPECT_NEAR(r.bins[0].current, 0.4, 0.02);

  int drifted = 0;
  for (std::uint32_t seed = 10; seed < 30; ++seed) {
    DriftCounts same(baseline);
    AddCategories(same, 5000, {0.7, 0.3}, seed);
    FeatureDrift s = CompareDrift(same).features[0];
    EXPECT_NE(s.verdict, DriftVerdict::kInsufficientData);
    EXPECT_LT(s.psi, 0.01);
    drifted += s.verdict == DriftVerdict::kDrift;
  }
  EXPECT_LE(drifted, 1);
}

TEST(DriftTest, UnseenCategoriesCountAsOtherAndAreDrift) {
  BaselineBuilder b;
  AddCategories(b, 1000, {0.5, 0.5}, 1);
  const DriftBaseline baseline = b.Finalize();
  DriftCounts c(baseline);
  AddCategories(c, 800, {0.5, 0.5}, 2);
  for (int i = 0; i < 200; ++i) c.AddCategory("c", "never-seen-" + std::to_string(i % 7));
  FeatureDrift r = CompareDrift(c).features[0];
  ASSERT_EQ(r.bins.size(), 3u);
  EXPECT_EQ(r.bins[2].label, kOtherCategory);
  EXPECT_EQ(r.bins[2].baseline, 0);
  EXPECT_DOUBLE_EQ(r.bins[2].current, 0.2);
  EXPECT_EQ(r.verdict, DriftVerdict::kDrift);
  // A value spelled "(other)" is the other bin, not a second one.
  DriftCounts o(baseline);
  o.AddCategory("c", kOtherCategory);
  EXPECT_EQ(o.features()[0].counts[2], 1u);
}

TEST(DriftTest, OnlyTheMostFrequentCategoriesAreBins) {
  BaselineBuilder b;
  // Category k appears 100 + k times, k = 0..79: the 50 most frequent are 30..79.
  for (int k = 0; k < 80; ++k) {
    for (int i = 0; i < 100 + k; ++i) b.AddCategory("c", "k" + std::to_string(k));
  }
  const DriftBaseline baseline = b.Finalize();
  const auto& f = baseline.features()[0];
  ASSERT_EQ(f.categories.size(), kMaxCategories + 1);
  EXPECT_EQ(f.categories.front(), "k79");
  EXPECT_EQ(f.categories[kMaxCategories - 1], "k30");
  EXPECT_EQ(f.categories.back(), kOtherCategory);
  std::uint64_t other = 0;
  for (int k = 0; k < 30; ++k) other += 100 + k;
  EXPECT_EQ(f.counts.back(), other);
  EXPECT_EQ(f.BinOf("k5"), kMaxCategories);  // folded into (other)
}

TEST(DriftTest, LongCategoriesAreCutOnACharacterBoundary) {
  BaselineBuilder b;
  // 127 ASCII bytes then a 2-byte character: the cut at 128 bytes would split it.
  const std::string value = std::string(127, 'x') + "\xc3\xa9" + "tail";
  for (int i = 0; i < 50; ++i) b.AddCategory("c", value);
  const DriftBaseline baseline = b.Finalize();
  EXPECT_EQ(baseline.features()[0].categories[0], std::string(127, 'x'));
  DriftCounts c(baseline);
  c.AddCategory("c", std::string(127, 'x') + "\xc3\xa9" + "other tail");  // same prefix
  EXPECT_EQ(c.features()[0].counts[0], 1u);
}

// ---- tensor summaries -------------------------------------------------------------------------

TEST(DriftTest, TensorFeaturesTakeFiniteHeadValuesAndArgmax) {
  BaselineBuilder b;
  const double head[] = {0.1, NAN, 0.7, 0.2};
  AddTensorFeatures(b, "prediction.scores", head, 4, true);
  AddTensorFeatures(b, "prediction.scores", head, 12, true);  // head is not the whole tensor
  const double one[] = {5};
  AddTensorFeatures(b, "prediction.value", one, 1, true);  // a scalar has no argmax
  AddTensorFeatures(b, "input.x", head, 4, false);
  const DriftBaseline baseline = b.Finalize();
  std::vector<std::string> names;
  for (const auto& f : baseline.features()) names.push_back(f.name);
  EXPECT_EQ(names, (std::vector<std::string>{"input.x", "prediction.scores",
                                             "prediction.scores.argmax", "prediction.value"}));
  const auto& argmax = baseline.features()[*baseline.Find("prediction.scores.argmax")];
  EXPECT_EQ(argmax.kind, FeatureKind::kCategorical);
  EXPECT_EQ(argmax.values, 1u);
  EXPECT_EQ(argmax.categories[0], "2");
  EXPECT_EQ(baseline.features()[*baseline.Find("prediction.scores")].values, 6u);
  EXPECT_EQ(baseline.features()[*baseline.Find("input.x")].values, 3u);
}

// ---- bounds and merging -----------------------------------------------------------------------

TEST(DriftBoundsTest, TenMillionDistinctCategoriesStayCapped) {
  BaselineBuilder b;
  constexpr std::uint64_t kN = 10'000'000;
  std::string value;
  for (std::uint64_t i = 0; i < kN; ++i) {
    value = "v";
    value += std::to_string(i);
    b.AddCategory("c", value);
  }
  const DriftBaseline baseline = b.Finalize();
  const auto& f = baseline.features()[0];
  EXPECT_EQ(f.values, kN);
  EXPECT_EQ(f.categories.size(), kMaxCategories + 1);
  EXPECT_EQ(f.counts.back(), kN - kMaxCategories);  // each kept value once, the rest other

  DriftCounts c(baseline);
  for (std::uint64_t i = 0; i < kN; i += 10) c.AddCategory("c", "w" + std::to_string(i));
  EXPECT_EQ(c.features()[0].counts.back(), kN / 10);
  EXPECT_EQ(c.features()[0].counts.size(), kMaxCategories + 1);
}

TEST(DriftBoundsTest, FeaturesBeyondTheCapAreDropped) {
  BaselineBuilder b;
  for (int i = 0; i < 1000; ++i) {
    b.AddNumber("f" + std::to_string(i), 1.0);
    b.AddCategory("g" + std::to_string(i), "a");
  }
  b.AddNumber(std::string(kMaxFeatureNameBytes + 1, 'n'), 1.0);
  const DriftBaseline baseline = b.Finalize();
  EXPECT_EQ(baseline.features().size(), kMaxDriftFeatures);
  EXPECT_EQ(baseline.dropped_values(), 2000 - kMaxDriftFeatures + 1);

  DriftCounts c(baseline);
  for (int i = 0; i < 1000; ++i) c.AddNumber("new" + std::to_string(i), 1.0);
  EXPECT_EQ(c.unknown().size(), kMaxDriftFeatures);
  EXPECT_EQ(c.dropped_values(), 1000 - kMaxDriftFeatures);
  DriftReport r = CompareDrift(c);
  EXPECT_EQ(r.unknown.size(), kMaxDriftFeatures);
  EXPECT_EQ(r.unknown[0], (std::pair<std::string, std::uint64_t>{"new0", 1}));
}

TEST(DriftBoundsTest, NumericBaselineKeepsADeterministicBoundedSample) {
  auto build = [] {
    BaselineBuilder b;  // a trend: the first values alone would misrepresent it
    for (int i = 0; i < 200000; ++i) b.AddNumber("x", i / 200000.0);
    return b.Finalize();
  };
  const DriftBaseline one = build();
  const DriftBaseline two = build();
  const auto& f = one.features()[0];
  EXPECT_EQ(f.values, 200000u);
  EXPECT_EQ(f.sample, kMaxBaselineSample);
  EXPECT_EQ(f.edges, two.features()[0].edges);
  // The sample is uniform over all values: its deciles are those of the whole trend.
  FeatureDrift r = Compare(one, std::vector<double>{0.5});
  for (std::size_t i = 1; i + 2 < r.bins.size(); ++i) EXPECT_NEAR(r.bins[i].upper, 0.1 * i, 0.01);
}

TEST(DriftMergeTest, MergedCountsEqualOneFedEverything) {
  const DriftBaseline baseline = [] {
    BaselineBuilder b;
    AddEach(b, "x", Normal(5000, 0, 1));
    AddCategories(b, 5000, {0.6, 0.3, 0.1}, 2);
    return b.Finalize();
  }();
  const auto values = Normal(9000, 0.3, 3);
  DriftCounts all(baseline), first(baseline), second(baseline);
  AddEach(all, "x", values);
  AddEach(first, "x", std::span(values).first(4000));
  AddEach(second, "x", std::span(values).subspan(4000));
  AddCategories(all, 3000, {0.2, 0.3, 0.5}, 4);
  AddCategories(first, 3000, {0.2, 0.3, 0.5}, 4);
  all.AddCategory("c", "zzz");
  second.AddCategory("c", "zzz");
  all.AddNumber("unknown", 1);
  second.AddNumber("unknown", 1);
  ASSERT_TRUE(first.Merge(second));
  ASSERT_EQ(first.features().size(), all.features().size());
  for (std::size_t i = 0; i < all.features().size(); ++i) {
    EXPECT_EQ(first.features()[i].counts, all.features()[i].counts) << i;
    EXPECT_EQ(first.features()[i].values, all.features()[i].values) << i;
  }
  EXPECT_EQ(first.unknown(), all.unknown());
  const DriftReport a = CompareDrift(all);
  const DriftReport m = CompareDrift(first);
  for (std::size_t i = 0; i < a.features.size(); ++i) {
    EXPECT_EQ(a.features[i].psi, m.features[i].psi);
    EXPECT_EQ(a.features[i].ks_d, m.features[i].ks_d);
  }
  // Counts of another baseline are refused.
  const DriftBaseline other = NumericBaseline({1, 2, 3});
  EXPECT_FALSE(first.Merge(DriftCounts(other)));
}

TEST(DriftMergeTest, MergedBuildersEqualOneFedEverythingUnderTheCap) {
  const auto values = Normal(8000, 0, 6);
  BaselineBuilder all, first, second;
  AddEach(all, "x", values);
  AddEach(first, "x", std::span(values).first(3000));
  AddEach(second, "x", std::span(values).subspan(3000));
  AddCategories(all, 2000, {0.5, 0.5}, 7);
  AddCategories(second, 2000, {0.5, 0.5}, 7);
  DriftSink& sink = first;  // as the log scanner merges its per-thread sinks
  sink.MergeFrom(second);
  const DriftBaseline a = all.Finalize();
  const DriftBaseline m = first.Finalize();
  ASSERT_EQ(a.features().size(), m.features().size());
  for (std::size_t i = 0; i < a.features().size(); ++i) {
    EXPECT_EQ(a.features()[i].edges, m.features()[i].edges);
    EXPECT_EQ(a.features()[i].counts, m.features()[i].counts);
    EXPECT_EQ(a.features()[i].categories, m.features()[i].categories);
  }
}

TEST(DriftMergeTest, MergedReservoirsStayBoundedAndRepresentative) {
  // 150k values around 0 and 50k around 10: the merged sample keeps the 3:1 proportion.
  BaselineBuilder low, high;
  AddEach(low, "x", Normal(150000, 0, 8));
  AddEach(high, "x", Normal(50000, 10, 9));
  low.Merge(high);
  const DriftBaseline b = low.Finalize();
  const auto& f = b.features()[0];
  EXPECT_EQ(f.values, 200000u);
  EXPECT_EQ(f.sample, kMaxBaselineSample);
  std::uint64_t below5 = 0;
  for (std::size_t i = 0; i < f.counts.size(); ++i) {
    if (i < f.edges.size() && f.edges[i] < 5) below5 += f.counts[i];
  }
  EXPECT_NEAR(static_cast<double>(below5) / kMaxBaselineSample, 0.75, 0.01);
}


// A request's tensor head holds values that move together (a row's scores); counted as
// independent values they would make sampling noise look significant.
TEST(DriftTest, ValuesOfOneRecordAreNotCountedAsIndependent) {
  std::mt19937_64 gen(5);
  std::normal_distribution<double> dist(0, 1);
  const auto record = [&] {  // 8 values: one draw and small jitter around it
    const double base = dist(gen);
    std::vector<double> v;
    for (int i = 0; i < 8; ++i) v.push_back(base + 0.01 * i);
    return v;
  };
  int false_alarms = 0;
  for (int round = 0; round < 20; ++round) {
    BaselineBuilder b;
    for (int i = 0; i < 60; ++i) b.AddNumbers("x", record());
    const DriftBaseline baseline = b.Finalize();
    DriftCounts c(baseline);
    for (int i = 0; i < 80; ++i) c.AddNumbers("x", record());
    const auto r = CompareDrift(c);
    EXPECT_EQ(r.features[0].n_current, 640u);
    false_alarms += r.features[0].verdict == DriftVerdict::kDrift;
  }
  EXPECT_LE(false_alarms, 2) << "records, not values, are the sample size of the tests";
}

}  // namespace
}  // namespace dlsys::monitor
