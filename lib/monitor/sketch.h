// A fixed-memory, mergeable quantile sketch for latencies (DDSketch: Masson, Rim and Lee,
// "DDSketch: A Fast and Fully-Mergeable Quantile Sketch with Relative-Error Guarantees",
// VLDB 2019), as Datadog and OpenTelemetry's exponential histograms use.
//
// Values are counted in logarithmic buckets: bucket i holds (gamma^(i-1), gamma^i] with
// gamma = (1 + a) / (1 - a), a = kRelativeAccuracy. A quantile is answered with the value
// 2 gamma^i / (gamma + 1) of the bucket holding the rank, which is within a relative error a
// of the true value of that rank (the "lower" quantile: rank floor(q * (n - 1)) of the sorted
// values, 0-based) for every value in [kMinValue, kMaxValue]. Values below kMinValue (and 0,
// negative or NaN values) count in a bucket answered as 0; values above kMaxValue count in
// the top bucket and are answered as kMaxValue. Count, sum, min and max are exact.
//
// Memory is bounded (at most kBuckets counters, ~9 KiB) whatever the number of values: only the
// range of buckets between the smallest and largest value seen is stored (latencies spanning
// two decades take ~230 counters, ~2 KiB). Merge adds two sketches bucket by bucket, so
// per-thread and per-window sketches combine without error beyond a. Not thread-safe: one per
// thread, then Merge.
#pragma once

#include <cstdint>
#include <vector>

namespace dlsys::monitor {

class QuantileSketch {
 public:
  static constexpr double kRelativeAccuracy = 0.01;
  static constexpr double kMinValue = 1e-3;  // 1 µs when values are milliseconds
  static constexpr double kMaxValue = 1e7;   // ~2.8 hours in milliseconds
  static constexpr int kBuckets = 1160;      // ceil(log_gamma(kMaxValue / kMinValue)) + 2

  void Add(double value) { AddAt(BucketOf(value), value); }
  // The bucket of a value (a logarithm): computed once when a value goes into two sketches.
  static int BucketOf(double value);
  void AddAt(int bucket, double value);
  void Merge(const QuantileSketch& other);
  // q in [0, 1]; 0 when empty.
  double Quantile(double q) const;
  // The largest distance between the two distributions' cumulative fractions at the bucket
  // edges (the two-sample Kolmogorov-Smirnov statistic at the sketch's resolution); 0 if
  // either is empty.
  double MaxCdfDistance(const QuantileSketch& other) const;

  std::uint64_t count() const { return count_; }
  double sum() const { return sum_; }
  double min() const { return count_ ? min_ : 0; }
  double max() const { return count_ ? max_ : 0; }
  double mean() const { return count_ ? sum_ / static_cast<double>(count_) : 0; }

 private:
  // Buckets [lo_, lo_ + counts_.size()); bucket 0 = below kMinValue.
  void Cover(int from, int to);
  std::uint64_t At(int bucket) const {
    const int i = bucket - lo_;
    return i >= 0 && i < static_cast<int>(counts_.size()) ? counts_[static_cast<std::size_t>(i)]
                                                           : 0;
  }
  std::vector<std::uint64_t> counts_;
  int lo_ = 0;
  std::uint64_t count_ = 0;
  double sum_ = 0;
  double min_ = 0;
  double max_ = 0;
};

}  // namespace dlsys::monitor
