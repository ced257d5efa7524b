// Drift: does the distribution of what a model sees (inputs) and says (predictions) differ from
// a baseline? (docs/monitoring.md, "Drift".)
//
// Values arrive per FEATURE, a name such as "input.x", "prediction.scores" or
// "prediction.scores.argmax" (AddTensorFeatures derives them from a logged tensor summary).
// A feature is numeric or categorical by its first value; values of the other kind are counted
// as mismatched and otherwise ignored.
//
// Both sides are DriftSinks (monitor/drift_sink.h), so one log scanner feeds either.
//   BaselineBuilder  collects the reference values (an archive's examples, a reference window
//                    of a log), bounded: a deterministic reservoir sample per numeric feature,
//                    the distinct values of a categorical one up to a cap.
//   DriftBaseline    what Finalize() makes of them: fixed reference bins with the baseline's
//                    count in each. Immutable, so one baseline serves every scan thread.
//   DriftCounts      the current side: per feature, a count per reference bin and nothing per
//                    value (fixed memory), one per thread, merged exactly.
//   CompareDrift     PSI, Jensen-Shannon distance and a chi-square test on the PSI bins;
//                    the two-sample Kolmogorov-Smirnov test on finer bins for numeric
//                    features; per-feature verdicts under DriftThresholds.
//
// Numeric reference bins are (a, b] intervals between edges taken from the baseline sample:
// just below its minimum, its deciles (the PSI bins) or percentiles (the KS bins), and its
// maximum, with repeated edges removed; so there is always a bin for values below the baseline
// range and one above it, each empty in the baseline, and a constant feature has the three
// bins "< c", "= c", "> c". Categorical reference bins are the baseline's kMaxCategories most
// frequent values plus kOtherCategory for every other value (rarer baseline values and values
// the baseline never had).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "monitor/drift_sink.h"

namespace dlsys::monitor {

// Bounds: memory stays within them whatever the input.
inline constexpr std::size_t kMaxDriftFeatures = 64;          // further features are dropped
inline constexpr std::size_t kMaxFeatureNameBytes = 256;      // longer names are dropped
inline constexpr std::size_t kMaxBaselineSample = 50000;      // numeric values kept per feature
inline constexpr std::size_t kMaxCollectedCategories = 1000;  // distinct values collected
inline constexpr std::size_t kMaxCategories = 50;             // of which the most frequent are bins
inline constexpr std::size_t kMaxCategoryBytes = 128;         // longer values are cut (UTF-8 safe)
inline constexpr std::string_view kOtherCategory = "(other)";
inline constexpr int kPsiBins = 10;  // equal-frequency bins of the baseline (deciles)
inline constexpr int kKsBins = 100;  // finer bins (percentiles) for the KS statistic

enum class FeatureKind { kNumeric, kCategorical };
const char* FeatureKindName(FeatureKind kind);  // "numeric", "categorical"

// The features of one logged tensor summary (docs/logging.md, "Sampled inputs and
// predictions"): every finite value of `head` (non-finite = JSON null) as the numeric feature
// `feature`, and, when `with_argmax` and the head is the whole tensor (2 <= count <= 8,
// head.size() == count), the index of its largest finite value ("0".."7", the first on a tie)
// as the categorical feature `feature` + ".argmax". Serve's records give `count` and `head`.
void AddTensorFeatures(DriftSink& sink, std::string_view feature, std::span<const double> head,
                       std::uint64_t count, bool with_argmax);

// One feature of a finalized baseline.
struct BaselineFeature {
  std::string name;
  FeatureKind kind = FeatureKind::kNumeric;
  std::uint64_t values = 0;      // values seen (numeric: finite ones)
  std::uint64_t records = 0;     // records (AddNumbers calls) they came in
  std::uint64_t mismatched = 0;  // values of the other kind, ignored
  std::uint64_t non_finite = 0;  // NaN and infinities, ignored (numeric)
  // Numeric: the KS edges, ascending and distinct; fine bin i is (edges[i-1], edges[i]], bin 0
  // is (-inf, edges[0]] and bin edges.size() is (edges.back(), +inf). psi_bin[i] is the PSI
  // bin holding fine bin i (the PSI edges are a subset of the KS edges).
  std::vector<double> edges;
  std::vector<std::uint32_t> psi_bin;
  // Categorical: the bins' values, by descending baseline count, kOtherCategory last.
  std::vector<std::string> categories;
  // Baseline count per fine bin (numeric; of the sample) or per category.
  std::vector<std::uint64_t> counts;
  std::uint64_t sample = 0;  // values the counts hold: min(values, kMaxBaselineSample) or all

  std::size_t bins() const { return counts.size(); }
  std::size_t psi_bins() const { return psi_bin.empty() ? counts.size() : psi_bin.back() + 1; }
  // The fine bin (numeric) or category bin of a value.
  std::size_t BinOf(double value) const;
  std::size_t BinOf(std::string_view category) const;

  // Categorical: category -> bin, with heterogeneous lookup.
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, std::uint32_t, Hash, std::equal_to<>> category_bin;
};

// The finalized reference: bins and baseline counts per feature, sorted by name. Immutable;
// safe to share between threads.
class DriftBaseline {
 public:
  const std::vector<BaselineFeature>& features() const { return features_; }
  // Index into features(), or nullopt.
  std::optional<std::size_t> Find(std::string_view feature) const;
  std::uint64_t dropped_values() const { return dropped_values_; }  // beyond the feature caps

 private:
  friend class BaselineBuilder;
  std::vector<BaselineFeature> features_;
  std::unordered_map<std::string, std::size_t, BaselineFeature::Hash, std::equal_to<>> index_;
  std::uint64_t dropped_values_ = 0;
};

// Collects baseline values. Deterministic: the same values in the same order give the same
// baseline (the reservoir's random numbers are seeded by the feature name). Memory: at most
// kMaxDriftFeatures features of kMaxBaselineSample doubles or kMaxCollectedCategories strings of
// kMaxCategoryBytes each (~26 MB at worst). Values of features beyond the caps are counted in
// dropped_values(). Not thread-safe: one per thread, then Merge.
class BaselineBuilder final : public DriftSink {
 public:
  BaselineBuilder();
  ~BaselineBuilder() override;
  BaselineBuilder(BaselineBuilder&&) noexcept;
  BaselineBuilder& operator=(BaselineBuilder&&) noexcept;

  void AddNumber(std::string_view feature, double value) override;
  // The values of one record (AddNumber: a record of one value), looking the feature up once.
  void AddNumbers(std::string_view feature, std::span<const double> values) override;
  void AddCategory(std::string_view feature, std::string_view value) override;
  void MergeFrom(const DriftSink& other) override;  // Merge, if `other` is a BaselineBuilder
  // Adds another builder's values: counts exactly; numeric samples by a draw from each side in
  // proportion to its values when together they exceed kMaxBaselineSample.
  void Merge(const BaselineBuilder& other);

  std::uint64_t dropped_values() const;
  // Fixes the reference bins (the builder stays usable).
  DriftBaseline Finalize() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The current side against one baseline, which must outlive it: a count per reference bin.
// Values of features the baseline lacks are counted per name (the first kMaxDriftFeatures
// names; the rest in dropped_values()). Not thread-safe: one per thread, then Merge.
class DriftCounts final : public DriftSink {
 public:
  explicit DriftCounts(const DriftBaseline& baseline);
  explicit DriftCounts(DriftBaseline&&) = delete;  // it must outlive the counts

  void AddNumber(std::string_view feature, double value) override;
  void AddNumbers(std::string_view feature, std::span<const double> values) override;
  void AddCategory(std::string_view feature, std::string_view value) override;
  void MergeFrom(const DriftSink& other) override;  // Merge, if `other` is a DriftCounts
  // Adds counts of the same baseline (exact: equal to one DriftCounts fed everything, except
  // which unknown names are listed once more than kMaxDriftFeatures were seen). Counts of
  // another baseline are ignored (returns false).
  bool Merge(const DriftCounts& other);

  const DriftBaseline& baseline() const { return *baseline_; }
  struct Feature {
    std::vector<std::uint64_t> counts;  // per bin of the baseline feature
    std::uint64_t values = 0;
    std::uint64_t records = 0;  // AddNumbers calls with a finite value; categories: = values
    std::uint64_t mismatched = 0;
    std::uint64_t non_finite = 0;
  };
  const std::vector<Feature>& features() const { return features_; }  // as baseline().features()
  const std::vector<std::pair<std::string, std::uint64_t>>& unknown() const { return unknown_; }
  std::uint64_t dropped_values() const { return dropped_values_; }

 private:
  // The feature if the baseline has it with this kind; else counts the n values as mismatched
  // or unknown and returns nullptr.
  Feature* Lookup(std::string_view feature, std::uint64_t n, FeatureKind kind);
  const DriftBaseline* baseline_;
  std::vector<Feature> features_;
  std::vector<std::pair<std::string, std::uint64_t>> unknown_;
  std::uint64_t dropped_values_ = 0;
};

// Defaults and their sources: docs/monitoring.md, "Drift".
struct DriftThresholds {
  double psi = 0.1;         // drift when PSI > this (credit scoring: 0.1-0.25 "moderate")
  double psi_major = 0.25;  // PSI > this is a major shift (credit scoring: "significant")
  double js = 0.1;          // drift when the Jensen-Shannon distance > this
  double ks_min_d = 0.1;    // KS drift needs D >= this (large samples make tiny gaps significant)
  // Each flag also needs its test to be significant: PSI and JS the chi-square test of the PSI
  // bins (so that sampling noise in small samples is not called drift), KS its own p-value.
  // A numeric feature has two tests, each at significance / 2 (Bonferroni), so the chance of a
  // verdict of drift between samples of one distribution stays below `significance`.
  double significance = 0.05;
  std::uint64_t min_values = 30;  // fewer on either side: "insufficient data", no verdict
};

enum class DriftVerdict { kInsufficientData, kNoDrift, kDrift };
const char* DriftVerdictName(DriftVerdict v);  // "insufficient data", "no drift", "drift"

// One PSI bin, for drawing baseline against current.
struct DriftBin {
  std::string label;  // "< 0.1", "(0.1, 0.52]", "> 3.4", "= 0" or the category
  // Numeric: the interval (lower, upper] (lower = -inf for the first, upper = +inf for the
  // last); NaN for categorical bins.
  double lower = std::numeric_limits<double>::quiet_NaN();
  double upper = std::numeric_limits<double>::quiet_NaN();
  double baseline = 0;  // fraction of the baseline (sample) in the bin, unsmoothed
  double current = 0;   // fraction of the current values
};

struct FeatureDrift {
  std::string feature;
  FeatureKind kind = FeatureKind::kNumeric;
  std::uint64_t n_baseline = 0;         // baseline values (numeric: finite ones)
  std::uint64_t n_baseline_sample = 0;  // of which the bins hold (the reservoir)
  std::uint64_t n_current = 0;
  std::uint64_t mismatched = 0;  // current values of the other kind, ignored
  std::uint64_t non_finite = 0;  // current NaN/infinite values, ignored
  double psi = 0;                // natural log, 0.5 added to every bin count of both sides
  double js = 0;                 // Jensen-Shannon distance: sqrt(divergence, log base 2), in [0, 1]
  double chi2_p = 1;             // chi-square test of homogeneity on the PSI bins
  std::optional<double> ks_d;    // numeric only: a lower bound of the exact D (see .cpp)
  std::optional<double> ks_p;
  bool psi_drift = false;
  bool psi_major = false;
  bool js_drift = false;
  bool ks_drift = false;
  DriftVerdict verdict = DriftVerdict::kInsufficientData;
  std::vector<DriftBin> bins;  // the PSI bins
};

struct DriftReport {
  std::vector<FeatureDrift> features;  // the baseline's, by name
  // Features in the current data that the baseline lacks, with their value counts.
  std::vector<std::pair<std::string, std::uint64_t>> unknown;
  std::uint64_t dropped_values = 0;  // current values beyond the caps
  bool drifted = false;              // some feature's verdict is kDrift
};

DriftReport CompareDrift(const DriftCounts& current, const DriftThresholds& thresholds = {});

// The statistics on two histograms over the same bins (exposed for tests and reports).
// PSI = sum (q - p) ln(q / p) with p, q the fractions after adding 0.5 to every count.
double PopulationStabilityIndex(std::span<const std::uint64_t> baseline,
                                std::span<const std::uint64_t> current);
// sqrt(JS divergence) with log base 2 on the unsmoothed fractions; 0 if either side is empty.
double JensenShannonDistance(std::span<const std::uint64_t> baseline,
                             std::span<const std::uint64_t> current);
// p-value of Pearson's chi-square test that both histograms come from one distribution
// (bins empty on both sides left out; 1 when fewer than two bins remain).
double ChiSquareHomogeneityP(std::span<const std::uint64_t> baseline,
                             std::span<const std::uint64_t> current);
// The same with each side's counts divided by its values per record (>= 1): the test on the
// number of independent records rather than values.
double ChiSquareP(std::span<const std::uint64_t> baseline, std::span<const std::uint64_t> current,
                  double per_b, double per_c);
// The largest distance between the cumulative fractions at the bin edges; 0 if either is empty.
double MaxCdfGap(std::span<const std::uint64_t> baseline, std::span<const std::uint64_t> current);
// P(X > x) for X chi-square with df degrees of freedom.
double ChiSquareSurvival(double x, double df);

}  // namespace dlsys::monitor
