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
double ValueOf(int bucket) {
  if (bucket == 0) return 0;
  const double upper = std::exp(kLogMin + (bucket - 1) * kLogGamma);
  return std::min(2 * upper / (kGamma + 1), QuantileSketch::kMaxValue);
}

}  // namespace

void QuantileSketch::Cover(int from, int to) {
  if (counts_.empty()) {
    lo_ = from;
    counts_.assign(static_cast<std::size_t>(to - from + 1), 0);
    return;
  }
  if (from < lo_) {
    counts_.insert(counts_.begin(), static_cast<std::size_t>(lo_ - from), 0);
    lo_ = from;
  }
  const int hi = lo_ + static_cast<int>(counts_.size()) - 1;
  if (to > hi) counts_.resize(counts_.size() + static_cast<std::size_t>(to - hi), 0);
}

int QuantileSketch::BucketOf(double v) {
  if (!(v >= kMinValue)) return 0;  // also NaN
  const double i = std::ceil((std::log(v) - kLogMin) / kLogGamma) + 1;
  return static_cast<int>(std::min<double>(i, kBuckets - 1));
}

void QuantileSketch::AddAt(int b, double value) {
  if (b < lo_ || b >= lo_ + static_cast<int>(counts_.size())) Cover(b, b);
  ++counts_[static_cast<std::size_t>(b - lo_)];
  if (count_ == 0 || value < min_) min_ = value;
  if (count_ == 0 || value > max_) max_ = value;
  ++count_;
  sum_ += value;
}

void QuantileSketch::Merge(const QuantileSketch& other) {
  if (other.count_ == 0) return;
  Cover(other.lo_, other.lo_ + static_cast<int>(other.counts_.size()) - 1);
  const auto shift = static_cast<std::size_t>(other.lo_ - lo_);
  for (std::size_t i = 0; i < other.counts_.size(); ++i) counts_[shift + i] += other.counts_[i];
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
  for (std::size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (seen > rank) return std::clamp(ValueOf(lo_ + static_cast<int>(i)), min_, max_);
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
  const int from = std::min(lo_, other.lo_);
  const int to = std::max(lo_ + static_cast<int>(counts_.size()),
                          other.lo_ + static_cast<int>(other.counts_.size()));
  for (int i = from; i < to; ++i) {
    a += At(i);
    b += other.At(i);
    d = std::max(d, std::fabs(static_cast<double>(a) / n1 - static_cast<double>(b) / n2));
  }
  return d;
}

}  // namespace dlsys::monitor
