// Canary against stable: is the canary's error rate or latency different, and if no difference
// is visible yet, how many more requests per arm would show one of the size seen?
//
// Error rate (5xx / requests): two-proportion z-test (pooled), two-sided. Sample size: per arm,
// to detect the observed difference at significance 0.05 with power 0.8 (normal approximation).
// Latency: two-sample Kolmogorov-Smirnov test on the two sketches; D is the largest distance
// between the two empirical distributions at the sketch's bucket edges (so within the sketch's
// 1% resolution), the p-value from the asymptotic Kolmogorov distribution (with Stephens'
// correction). Sample size: per arm, for D to be significant at 0.05. Worse/better (slower,
// faster) says which way the means differ.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "monitor/sketch.h"

namespace dlsys::monitor {

inline constexpr double kSignificance = 0.05;

enum class Verdict { kNoDifference, kWorse, kBetter, kNoData };
const char* VerdictName(Verdict v);  // "no significant difference", "worse", "better", "no data"

struct RateComparison {
  double stable = 0;  // 5xx rate of each arm
  double canary = 0;
  double z = 0;
  double p_value = 1;
  Verdict verdict = Verdict::kNoData;
  // When no difference is significant: requests per arm to detect one of the size seen
  // (nullopt when the rates are equal: no finite sample shows a zero difference).
  std::optional<std::uint64_t> needed_per_arm;
};

RateComparison CompareErrorRates(std::uint64_t stable_errors, std::uint64_t stable_requests,
                                 std::uint64_t canary_errors, std::uint64_t canary_requests);

struct LatencyComparison {
  double d = 0;  // KS statistic
  double p_value = 1;
  Verdict verdict = Verdict::kNoData;  // kWorse = the canary is slower
  std::optional<std::uint64_t> needed_per_arm;
};

LatencyComparison CompareLatencies(const QuantileSketch& stable, const QuantileSketch& canary);

// P(K > x) for the Kolmogorov distribution (the asymptotic KS p-value of sqrt(n) D = x).
double KolmogorovSurvival(double x);

}  // namespace dlsys::monitor
