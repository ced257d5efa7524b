#include "monitor/compare.h"

#include <cmath>

namespace dlsys::monitor {
namespace {

constexpr double kZAlpha = 1.959963984540054;  // two-sided 0.05
constexpr double kZPower = 0.8416212335729143;  // power 0.8
constexpr double kKsCritical = 1.3580986393225505;  // Kolmogorov quantile at 0.95

}  // namespace

const char* VerdictName(Verdict v) {
  switch (v) {
    case Verdict::kNoDifference:
      return "no significant difference";
    case Verdict::kWorse:
      return "worse";
    case Verdict::kBetter:
      return "better";
    case Verdict::kNoData:
      return "no data";
  }
  return "no data";
}

RateComparison CompareErrorRates(std::uint64_t stable_errors, std::uint64_t stable_requests,
                                 std::uint64_t canary_errors, std::uint64_t canary_requests) {
  RateComparison r;
  if (stable_requests == 0 || canary_requests == 0) return r;
  const double n1 = static_cast<double>(stable_requests);
  const double n2 = static_cast<double>(canary_requests);
  r.stable = static_cast<double>(stable_errors) / n1;
  r.canary = static_cast<double>(canary_errors) / n2;
  const double pooled = static_cast<double>(stable_errors + canary_errors) / (n1 + n2);
  const double se = std::sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2));
  if (se > 0) {
    r.z = (r.canary - r.stable) / se;
    r.p_value = std::erfc(std::fabs(r.z) / std::sqrt(2.0));
  }
  r.verdict = r.p_value >= kSignificance ? Verdict::kNoDifference
              : r.canary > r.stable       ? Verdict::kWorse
                                          : Verdict::kBetter;
  const double diff = r.canary - r.stable;
  if (r.verdict == Verdict::kNoDifference && diff != 0) {
    const double mean = (r.stable + r.canary) / 2;
    const double a = kZAlpha * std::sqrt(2 * mean * (1 - mean));
    const double b =
        kZPower * std::sqrt(r.stable * (1 - r.stable) + r.canary * (1 - r.canary));
    r.needed_per_arm = static_cast<std::uint64_t>(std::ceil((a + b) * (a + b) / (diff * diff)));
  }
  return r;
}

double KolmogorovSurvival(double x) {
  if (x <= 0) return 1;
  if (x < 0.2) return 1;  // the series converges slowly there; the value is 1 to 1e-10
  double sum = 0;
  for (int k = 1; k <= 100; ++k) {
    const double term = std::exp(-2.0 * k * k * x * x);
    sum += (k % 2 ? 2 : -2) * term;
    if (term < 1e-16) break;
  }
  return std::fmin(1.0, std::fmax(0.0, sum));
}

LatencyComparison CompareLatencies(const QuantileSketch& stable, const QuantileSketch& canary) {
  LatencyComparison r;
  if (stable.count() == 0 || canary.count() == 0) return r;
  r.d = stable.MaxCdfDistance(canary);
  const double n1 = static_cast<double>(stable.count());
  const double n2 = static_cast<double>(canary.count());
  const double ne = n1 * n2 / (n1 + n2);
  // Stephens' small-sample correction of the asymptotic statistic.
  const double root = std::sqrt(ne);
  r.p_value = KolmogorovSurvival((root + 0.12 + 0.11 / root) * r.d);
  const double m1 = stable.mean();
  const double m2 = canary.mean();
  r.verdict = r.p_value >= kSignificance ? Verdict::kNoDifference
              : m2 > m1                   ? Verdict::kWorse
              : m2 < m1                   ? Verdict::kBetter
                                          : Verdict::kNoDifference;
  if (r.verdict == Verdict::kNoDifference && r.d > 0) {
    // Equal arms of n: ne = n / 2, significant when sqrt(n / 2) D > the critical value.
    const double n = 2 * (kKsCritical / r.d) * (kKsCritical / r.d);
    r.needed_per_arm = static_cast<std::uint64_t>(std::ceil(n));
  }
  return r;
}

}  // namespace dlsys::monitor
