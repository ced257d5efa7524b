#include "monitor/sketch.h"

#include <algorithm>
#include <cmath>

namespace dlsys::monitor {
namespace {

constexpr double kGamma = (1 + QuantileSketch::kRelativeAccuracy) /
                          (1 - QuantileSketch::kRelativeAccuracy);
const double kLogGamma = std::log(kGamma);
const double kLogMin = std::log(QuantileSketch::kMinValue);

// Bucket 1 holds (kMinValue / gamma, kMinValue], bucket i (gamma^(i-2) kMinValue,
// gamma^(i-1) kMinValue]; the last bucket also holds everything above kMaxValue.
int BucketOf(double v) {
  if (!(v >= QuantileSketch::kMinValue)) return 0;  // also NaN
  const double i = std::ceil((std::log(v) - kLogMin) / kLogGamma) + 1;
  return static_cast<int>(std::min<double>(i, QuantileSketch::kBuckets - 1));
}

double ValueOf(int bucket) {
  if (bucket == 0) return 0;
  const double upper = std::exp(kLogMin + (bucket - 1) * kLogGamma);
  return std::min(2 * upper / (kGamma + 1), QuantileSketch::kMaxValue);
}

}  // namespace

void QuantileSketch::Add(double value) {
  ++buckets_[static_cast<std::size_t>(BucketOf(value))];
  if (count_ == 0 || value < min_) min_ = value;
  if (count_ == 0 || value > max_) max_ = value;
  ++count_;
  sum_ += value;
}

void QuantileSketch::Merge(const QuantileSketch& other) {
  if (other.count_ == 0) return;
  for (std::size_t i = 0; i < buckets_.size(); ++i) buckets_[i] += other.buckets_[i];
  min_ = count_ ? std::min(min_, other.min_) : other.min_;
  max_ = count_ ? std::max(max_, other.max_) : other.max_;
  count_ += other.count_;
  sum_ += other.sum_;
}

double QuantileSketch::Quantile(double q) const {
  if (count_ == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  const auto rank = static_cast<std::uint64_t>(std::floor(q * static_cast<double>(count_ - 1)));
  // The extremes are known exactly.
  if (rank == 0) return min_;
  if (rank == count_ - 1) return max_;
  std::uint64_t seen = 0;
  for (int i = 0; i < kBuckets; ++i) {
    seen += buckets_[static_cast<std::size_t>(i)];
    if (seen > rank) return std::clamp(ValueOf(i), min_, max_);
  }
  return max_;
}

double QuantileSketch::MaxCdfDistance(const QuantileSketch& other) const {
  if (count_ == 0 || other.count_ == 0) return 0;
  const double n1 = static_cast<double>(count_);
  const double n2 = static_cast<double>(other.count_);
  std::uint64_t a = 0;
  std::uint64_t b = 0;
  double d = 0;
  for (std::size_t i = 0; i < buckets_.size(); ++i) {
    a += buckets_[i];
    b += other.buckets_[i];
    d = std::max(d, std::fabs(static_cast<double>(a) / n1 - static_cast<double>(b) / n2));
  }
  return d;
}

}  // namespace dlsys::monitor
