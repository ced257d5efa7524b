#include "monitor/drift.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>

#include "monitor/compare.h"

namespace dlsys::monitor {
namespace {

constexpr std::size_t kHeadValues = 8;  // serve logs at most 8 values of a tensor
// Added to every bin count on both sides before PSI's fractions: the Jeffreys (Krichevsky-
// Trofimov) estimate, so an empty bin costs about as much as a bin with one value in a sample
// of the same size instead of an arbitrary epsilon that dominates PSI at large n.
constexpr double kPsiPseudoCount = 0.5;

// The longest prefix of at most `max` bytes that does not end inside a UTF-8 sequence.
std::string_view CutUtf8(std::string_view s, std::size_t max) {
  if (s.size() <= max) return s;
  std::size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return s.substr(0, n);
}

// splitmix64: a small, seedable generator, so a baseline's reservoir is reproducible.
std::uint64_t NextRandom(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9e3779b97f4a7c15);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
  z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
  return z ^ (z >> 31);
}

std::uint64_t Fnv1a(std::string_view s) {
  std::uint64_t h = 0xcbf29ce484222325;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3;
  return h;
}

// Moves a uniformly random subset of k elements to the front and drops the rest.
void KeepRandom(std::vector<double>& v, std::size_t k, std::uint64_t& rng) {
  k = std::min(k, v.size());
  for (std::size_t i = 0; i < k; ++i) {
    const std::size_t j = i + NextRandom(rng) % (v.size() - i);
    std::swap(v[i], v[j]);
  }
  v.resize(k);
}

std::string Number(double v) {
  std::array<char, 32> buf;
  auto r = std::to_chars(buf.data(), buf.data() + buf.size(), v);
  return std::string(buf.data(), r.ptr);
}

double Sum(std::span<const std::uint64_t> v) {
  double s = 0;
  for (auto x : v) s += static_cast<double>(x);
  return s;
}

// The regularized upper incomplete gamma function Q(a, x): a series for x < a + 1, else a
// continued fraction (modified Lentz), as in Numerical Recipes, 3rd ed., section 6.2.
double GammaQ(double a, double x) {
  if (x <= 0) return 1;
  const double log_prefix = -x + a * std::log(x) - std::lgamma(a);
  constexpr double kEps = 1e-15;
  if (x < a + 1) {
    double term = 1 / a, sum = term;
    for (int n = 1; n < 10000 && std::fabs(term) > std::fabs(sum) * kEps; ++n) {
      term *= x / (a + n);
      sum += term;
    }
    return std::clamp(1 - sum * std::exp(log_prefix), 0.0, 1.0);
  }
  constexpr double kTiny = 1e-300;
  double b = x + 1 - a, c = 1 / kTiny, d = 1 / b, h = d;
  for (int i = 1; i < 10000; ++i) {
    const double an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (std::fabs(d) < kTiny) d = kTiny;
    c = b + an / c;
    if (std::fabs(c) < kTiny) c = kTiny;
    d = 1 / d;
    const double delta = d * c;
    h *= delta;
    if (std::fabs(delta - 1) < kEps) break;
  }
  return std::clamp(std::exp(log_prefix) * h, 0.0, 1.0);
}

}  // namespace

const char* FeatureKindName(FeatureKind kind) {
  return kind == FeatureKind::kNumeric ? "numeric" : "categorical";
}

const char* DriftVerdictName(DriftVerdict v) {
  switch (v) {
    case DriftVerdict::kInsufficientData:
      return "insufficient data";
    case DriftVerdict::kNoDrift:
      return "no drift";
    case DriftVerdict::kDrift:
      return "drift";
  }
  return "insufficient data";
}

void AddTensorFeatures(DriftSink& sink, std::string_view feature, std::span<const double> head,
                       std::uint64_t count, bool with_argmax) {
  head = head.first(std::min(head.size(), kHeadValues));
  std::array<double, kHeadValues> finite{};
  std::size_t n = 0;
  std::optional<std::size_t> best;
  for (std::size_t i = 0; i < head.size(); ++i) {
    if (!std::isfinite(head[i])) continue;
    finite[n++] = head[i];
    if (!best || head[i] > head[*best]) best = i;
  }
  sink.AddNumbers(feature, std::span<const double>(finite.data(), n));
  if (with_argmax && best && count >= 2 && count <= kHeadValues && head.size() == count) {
    sink.AddCategory(std::string(feature) + ".argmax", std::to_string(*best));
  }
}

// ---- the baseline's bins ----------------------------------------------------------------------

std::size_t BaselineFeature::BinOf(double value) const {
  return static_cast<std::size_t>(std::lower_bound(edges.begin(), edges.end(), value) -
                                  edges.begin());
}

std::size_t BaselineFeature::BinOf(std::string_view category) const {
  auto it = category_bin.find(CutUtf8(category, kMaxCategoryBytes));
  return it == category_bin.end() ? categories.size() - 1 : it->second;
}

std::optional<std::size_t> DriftBaseline::Find(std::string_view feature) const {
  auto it = index_.find(feature);
  if (it == index_.end()) return std::nullopt;
  return it->second;
}

// ---- BaselineBuilder --------------------------------------------------------------------------

namespace {

struct Collected {
  std::string name;
  FeatureKind kind = FeatureKind::kNumeric;
  std::uint64_t values = 0;
  std::uint64_t records = 0;  // numeric: AddNumbers calls with a finite value
  std::uint64_t mismatched = 0;
  std::uint64_t non_finite = 0;
  std::uint64_t rng = 0;
  std::vector<double> sample;  // a uniform sample of the finite values (Algorithm R)
  std::unordered_map<std::string, std::uint64_t, BaselineFeature::Hash, std::equal_to<>> seen;
  std::uint64_t other = 0;  // categories beyond kMaxCollectedCategories, or kOtherCategory

  void Sample(double v) {
    ++values;
    if (sample.size() < kMaxBaselineSample) {
      sample.push_back(v);
      return;
    }
    const std::uint64_t j = NextRandom(rng) % values;
    if (j < kMaxBaselineSample) sample[j] = v;
  }
  void Count(std::string_view value, std::uint64_t n) {
    values += n;
    value = CutUtf8(value, kMaxCategoryBytes);
    if (value == kOtherCategory) {
      other += n;
      return;
    }
    if (auto it = seen.find(value); it != seen.end()) {
      it->second += n;
    } else if (seen.size() < kMaxCollectedCategories) {
      seen.emplace(std::string(value), n);
    } else {
      other += n;
    }
  }
};

// Equal-frequency edges of sorted values: just below the minimum, the type-1 quantiles
// x[ceil(k n / parts) - 1] for k = 1 .. parts - 1, and the maximum; without repeats.
std::vector<double> QuantileEdges(const std::vector<double>& sorted, int parts) {
  const std::size_t n = sorted.size();
  std::vector<double> edges{std::nextafter(sorted.front(), -INFINITY)};
  for (int k = 1; k < parts; ++k) {
    const std::size_t rank = (static_cast<std::size_t>(k) * n + parts - 1) / parts;
    edges.push_back(sorted[rank - 1]);
  }
  edges.push_back(sorted.back());
  edges.erase(std::unique(edges.begin(), edges.end()), edges.end());
  return edges;
}

void FinalizeNumeric(const Collected& c, BaselineFeature& f) {
  std::vector<double> sorted = c.sample;
  std::sort(sorted.begin(), sorted.end());
  f.sample = sorted.size();
  if (sorted.empty()) {  // only non-finite values: one bin, no verdict possible
    f.counts = {0};
    f.psi_bin = {0};
    return;
  }
  f.edges = QuantileEdges(sorted, kKsBins);
  const std::vector<double> coarse = QuantileEdges(sorted, kPsiBins);
  f.counts.assign(f.edges.size() + 1, 0);
  for (double v : sorted) ++f.counts[f.BinOf(v)];
  // Every coarse edge is a fine edge (the same ranks), so a PSI bin is a run of fine bins.
  for (std::size_t i = 0; i <= f.edges.size(); ++i) {
    const auto j = i == f.edges.size() ? coarse.end()
                                       : std::lower_bound(coarse.begin(), coarse.end(), f.edges[i]);
    f.psi_bin.push_back(static_cast<std::uint32_t>(j - coarse.begin()));
  }
}

void FinalizeCategorical(const Collected& c, BaselineFeature& f) {
  std::vector<std::pair<std::string, std::uint64_t>> by_count(c.seen.begin(), c.seen.end());
  std::sort(by_count.begin(), by_count.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  std::uint64_t other = c.other;
  for (std::size_t i = 0; i < by_count.size(); ++i) {
    if (i < kMaxCategories) {
      f.category_bin.emplace(by_count[i].first, static_cast<std::uint32_t>(i));
      f.categories.push_back(by_count[i].first);
      f.counts.push_back(by_count[i].second);
    } else {
      other += by_count[i].second;
    }
  }
  f.categories.emplace_back(kOtherCategory);
  f.counts.push_back(other);
  f.sample = c.values;
}

}  // namespace

struct BaselineBuilder::Impl {
  std::vector<Collected> features;
  std::unordered_map<std::string, std::size_t, BaselineFeature::Hash, std::equal_to<>> index;
  std::uint64_t dropped = 0;

  // The feature, created with `kind` if new; nullptr beyond the caps.
  Collected* Lookup(std::string_view name, FeatureKind kind) {
    if (auto it = index.find(name); it != index.end()) return &features[it->second];
    if (name.size() > kMaxFeatureNameBytes || features.size() >= kMaxDriftFeatures) {
      return nullptr;
    }
    index.emplace(std::string(name), features.size());
    Collected& c = features.emplace_back();
    c.name = std::string(name);
    c.kind = kind;
    c.rng = Fnv1a(name);
    return &c;
  }
};

BaselineBuilder::BaselineBuilder() : impl_(std::make_unique<Impl>()) {}
BaselineBuilder::~BaselineBuilder() = default;
BaselineBuilder::BaselineBuilder(BaselineBuilder&&) noexcept = default;
BaselineBuilder& BaselineBuilder::operator=(BaselineBuilder&&) noexcept = default;

void BaselineBuilder::AddNumber(std::string_view feature, double value) {
  AddNumbers(feature, std::span<const double>(&value, 1));
}

void BaselineBuilder::AddNumbers(std::string_view feature, std::span<const double> values) {
  if (values.empty()) return;
  Collected* c = impl_->Lookup(feature, FeatureKind::kNumeric);
  if (c == nullptr) {
    impl_->dropped += values.size();
  } else if (c->kind != FeatureKind::kNumeric) {
    c->mismatched += values.size();
  } else {
    bool any = false;
    for (double v : values) {
      if (std::isfinite(v)) {
        c->Sample(v);
        any = true;
      } else {
        ++c->non_finite;
      }
    }
    c->records += any;
  }
}

void BaselineBuilder::AddCategory(std::string_view feature, std::string_view value) {
  Collected* c = impl_->Lookup(feature, FeatureKind::kCategorical);
  if (c == nullptr) {
    ++impl_->dropped;
  } else if (c->kind != FeatureKind::kCategorical) {
    ++c->mismatched;
  } else {
    c->Count(value, 1);
  }
}

void BaselineBuilder::Merge(const BaselineBuilder& other) {
  impl_->dropped += other.impl_->dropped;
  for (const Collected& o : other.impl_->features) {
    Collected* c = impl_->Lookup(o.name, o.kind);
    if (c == nullptr) {
      impl_->dropped += o.values + o.mismatched + o.non_finite;
      continue;
    }
    if (c->kind != o.kind) {
      c->mismatched += o.values + o.mismatched;
      continue;
    }
    c->mismatched += o.mismatched;
    c->non_finite += o.non_finite;
    if (o.kind == FeatureKind::kCategorical) {
      for (const auto& [value, n] : o.seen) c->Count(value, n);
      c->values += o.other;
      c->other += o.other;
      continue;
    }
    const std::uint64_t total = c->values + o.values;
    if (c->sample.size() + o.sample.size() > kMaxBaselineSample) {
      // Each side keeps a share of the reservoir in proportion to the values it stands for.
      const double share = static_cast<double>(c->values) / static_cast<double>(total);
      const auto mine = std::min<std::size_t>(
          c->sample.size(), static_cast<std::size_t>(std::llround(share * kMaxBaselineSample)));
      std::vector<double> theirs = o.sample;
      KeepRandom(c->sample, mine, c->rng);
      KeepRandom(theirs, kMaxBaselineSample - mine, c->rng);
      c->sample.insert(c->sample.end(), theirs.begin(), theirs.end());
    } else {
      c->sample.insert(c->sample.end(), o.sample.begin(), o.sample.end());
    }
    c->values = total;
    c->records += o.records;
  }
}

void BaselineBuilder::MergeFrom(const DriftSink& other) {
  if (const auto* o = dynamic_cast<const BaselineBuilder*>(&other)) Merge(*o);
}

std::uint64_t BaselineBuilder::dropped_values() const { return impl_->dropped; }

DriftBaseline BaselineBuilder::Finalize() const {
  DriftBaseline b;
  b.dropped_values_ = impl_->dropped;
  std::vector<const Collected*> sorted;
  for (const auto& c : impl_->features) sorted.push_back(&c);
  std::sort(sorted.begin(), sorted.end(),
            [](const Collected* x, const Collected* y) { return x->name < y->name; });
  for (const Collected* c : sorted) {
    BaselineFeature& f = b.features_.emplace_back();
    f.name = c->name;
    f.kind = c->kind;
    f.values = c->values;
    f.records = c->kind == FeatureKind::kNumeric ? c->records : c->values;
    f.mismatched = c->mismatched;
    f.non_finite = c->non_finite;
    if (c->kind == FeatureKind::kNumeric) {
      FinalizeNumeric(*c, f);
    } else {
      FinalizeCategorical(*c, f);
    }
    b.index_.emplace(f.name, b.features_.size() - 1);
  }
  return b;
}

// ---- DriftCounts ------------------------------------------------------------------------------

DriftCounts::DriftCounts(const DriftBaseline& baseline) : baseline_(&baseline) {
  for (const auto& f : baseline.features())
    features_.push_back({std::vector<std::uint64_t>(f.bins())});
}

DriftCounts::Feature* DriftCounts::Lookup(std::string_view feature, std::uint64_t n,
                                          FeatureKind kind) {
  if (auto i = baseline_->Find(feature)) {
    Feature& f = features_[*i];
    if (baseline_->features()[*i].kind == kind) return &f;
    f.mismatched += n;
    return nullptr;
  }
  for (auto& [name, count] : unknown_) {
    if (name == feature) {
      count += n;
      return nullptr;
    }
  }
  if (unknown_.size() < kMaxDriftFeatures && feature.size() <= kMaxFeatureNameBytes) {
    unknown_.emplace_back(std::string(feature), n);
  } else {
    dropped_values_ += n;
  }
  return nullptr;
}

void DriftCounts::AddNumber(std::string_view feature, double value) {
  AddNumbers(feature, std::span<const double>(&value, 1));
}

void DriftCounts::AddNumbers(std::string_view feature, std::span<const double> values) {
  if (values.empty()) return;
  Feature* f = Lookup(feature, values.size(), FeatureKind::kNumeric);
  if (f == nullptr) return;
  const BaselineFeature& b = baseline_->features()[static_cast<std::size_t>(f - features_.data())];
  bool any = false;
  for (double v : values) {
    if (std::isfinite(v)) {
      ++f->counts[b.BinOf(v)];
      ++f->values;
      any = true;
    } else {
      ++f->non_finite;
    }
  }
  f->records += any;
}

void DriftCounts::AddCategory(std::string_view feature, std::string_view value) {
  Feature* f = Lookup(feature, 1, FeatureKind::kCategorical);
  if (f == nullptr) return;
  const BaselineFeature& b = baseline_->features()[static_cast<std::size_t>(f - features_.data())];
  ++f->counts[b.BinOf(value)];
  ++f->values;
  ++f->records;
}

void DriftCounts::MergeFrom(const DriftSink& other) {
  if (const auto* o = dynamic_cast<const DriftCounts*>(&other)) Merge(*o);
}

bool DriftCounts::Merge(const DriftCounts& other) {
  if (other.baseline_ != baseline_) return false;
  for (std::size_t i = 0; i < features_.size(); ++i) {
    Feature& f = features_[i];
    const Feature& o = other.features_[i];
    for (std::size_t b = 0; b < f.counts.size(); ++b) f.counts[b] += o.counts[b];
    f.values += o.values;
    f.records += o.records;
    f.mismatched += o.mismatched;
    f.non_finite += o.non_finite;
  }
  dropped_values_ += other.dropped_values_;
  for (const auto& entry : other.unknown_) {
    const std::string& name = entry.first;
    const std::uint64_t n = entry.second;
    auto it = std::find_if(unknown_.begin(), unknown_.end(),
                           [&name](const auto& u) { return u.first == name; });
    if (it != unknown_.end()) {
      it->second += n;
    } else if (unknown_.size() < kMaxDriftFeatures) {
      unknown_.emplace_back(name, n);
    } else {
      dropped_values_ += n;
    }
  }
  return true;
}

// ---- statistics -------------------------------------------------------------------------------

double PopulationStabilityIndex(std::span<const std::uint64_t> baseline,
                                std::span<const std::uint64_t> current) {
  const double bins = static_cast<double>(baseline.size());
  const double nb = Sum(baseline) + kPsiPseudoCount * bins;
  const double nc = Sum(current) + kPsiPseudoCount * bins;
  double psi = 0;
  for (std::size_t i = 0; i < baseline.size(); ++i) {
    const double p = (static_cast<double>(baseline[i]) + kPsiPseudoCount) / nb;
    const double q = (static_cast<double>(current[i]) + kPsiPseudoCount) / nc;
    psi += (q - p) * std::log(q / p);
  }
  return psi;
}

double JensenShannonDistance(std::span<const std::uint64_t> baseline,
                             std::span<const std::uint64_t> current) {
  const double nb = Sum(baseline);
  const double nc = Sum(current);
  if (nb == 0 || nc == 0) return 0;
  double js = 0;
  for (std::size_t i = 0; i < baseline.size(); ++i) {
    const double p = static_cast<double>(baseline[i]) / nb;
    const double q = static_cast<double>(current[i]) / nc;
    const double m = (p + q) / 2;
    if (p > 0) js += p * std::log2(p / m) / 2;
    if (q > 0) js += q * std::log2(q / m) / 2;
  }
  return std::sqrt(std::clamp(js, 0.0, 1.0));
}

double ChiSquareSurvival(double x, double df) {
  if (df <= 0) return 1;
  return GammaQ(df / 2, x / 2);
}

double ChiSquareHomogeneityP(std::span<const std::uint64_t> baseline,
                             std::span<const std::uint64_t> current) {
  return ChiSquareP(baseline, current, 1, 1);
}

double ChiSquareP(std::span<const std::uint64_t> baseline, std::span<const std::uint64_t> current,
                  double per_b, double per_c) {
  const double nb = Sum(baseline) / per_b;
  const double nc = Sum(current) / per_c;
  if (nb == 0 || nc == 0) return 1;
  double chi2 = 0;
  int used = 0;
  for (std::size_t i = 0; i < baseline.size(); ++i) {
    const double b = static_cast<double>(baseline[i]) / per_b;
    const double c = static_cast<double>(current[i]) / per_c;
    if (b + c == 0) continue;
    ++used;
    const double eb = (b + c) * nb / (nb + nc);
    const double ec = (b + c) * nc / (nb + nc);
    chi2 += (b - eb) * (b - eb) / eb + (c - ec) * (c - ec) / ec;
  }
  return ChiSquareSurvival(chi2, used - 1);
}

double MaxCdfGap(std::span<const std::uint64_t> baseline, std::span<const std::uint64_t> current) {
  const double nb = Sum(baseline);
  const double nc = Sum(current);
  if (nb == 0 || nc == 0) return 0;
  double cb = 0, cc = 0, d = 0;
  for (std::size_t i = 0; i < baseline.size(); ++i) {
    cb += static_cast<double>(baseline[i]);
    cc += static_cast<double>(current[i]);
    d = std::max(d, std::fabs(cb / nb - cc / nc));
  }
  return d;
}

// ---- CompareDrift -----------------------------------------------------------------------------

namespace {

std::vector<std::uint64_t> PsiCounts(const BaselineFeature& f,
                                     const std::vector<std::uint64_t>& fine) {
  if (f.kind == FeatureKind::kCategorical) return fine;
  std::vector<std::uint64_t> coarse(f.psi_bins(), 0);
  for (std::size_t i = 0; i < fine.size(); ++i) coarse[f.psi_bin[i]] += fine[i];
  return coarse;
}

// The PSI bins of a numeric feature as intervals: "< min", "= c" or "[min, b]", "(a, b]",
// "> max".
std::vector<DriftBin> NumericBins(const BaselineFeature& f) {
  if (f.edges.empty()) return {DriftBin{"all", -INFINITY, INFINITY}};
  std::vector<double> upper;  // the PSI edges: fine edges where the PSI bin changes
  for (std::size_t i = 0; i < f.edges.size(); ++i) {
    if (f.psi_bin[i + 1] != f.psi_bin[i]) upper.push_back(f.edges[i]);
  }
  const double min = std::nextafter(f.edges.front(), INFINITY);
  std::vector<DriftBin> bins;
  double lower = -INFINITY;
  for (double u : upper) {
    DriftBin b{"", lower, u};
    if (bins.empty()) {
      b.label = "< " + Number(min);
    } else if (bins.size() == 1) {
      b.label = u == min ? "= " + Number(min) : "[" + Number(min) + ", " + Number(u) + "]";
    } else {
      b.label = "(" + Number(lower) + ", " + Number(u) + "]";
    }
    bins.push_back(std::move(b));
    lower = u;
  }
  bins.push_back(DriftBin{"> " + Number(lower), lower, INFINITY});
  return bins;
}

FeatureDrift CompareFeature(const BaselineFeature& b, const DriftCounts::Feature& c,
                            const DriftThresholds& t) {
  FeatureDrift r;
  r.feature = b.name;
  r.kind = b.kind;
  r.n_baseline = b.values;
  r.n_baseline_sample = b.sample;
  r.n_current = c.values;
  r.mismatched = c.mismatched;
  r.non_finite = c.non_finite;
  const auto pb = PsiCounts(b, b.counts);
  const auto pc = PsiCounts(b, c.counts);
  if (b.kind == FeatureKind::kNumeric) {
    r.bins = NumericBins(b);
  } else {
    for (const auto& name : b.categories) r.bins.push_back(DriftBin{name});
  }
  const double nb = static_cast<double>(b.sample);
  const double nc = static_cast<double>(c.values);
  for (std::size_t i = 0; i < r.bins.size(); ++i) {
    r.bins[i].baseline = nb > 0 ? static_cast<double>(pb[i]) / nb : 0;
    r.bins[i].current = nc > 0 ? static_cast<double>(pc[i]) / nc : 0;
  }
  if (nb == 0 || nc == 0) return r;
  r.psi = PopulationStabilityIndex(pb, pc);
  r.js = JensenShannonDistance(pb, pc);
  // The tests count records, not values: the values of one tensor (a request's inputs, its
  // scores) are not independent, and counting each would call sampling noise drift. Values
  // per record (>= 1) scale each side's counts down to its number of records.
  const double per_b = b.records > 0 ? std::max(1.0, static_cast<double>(b.values) /
                                                         static_cast<double>(b.records))
                                     : 1.0;
  const double per_c = c.records > 0 ? std::max(1.0, static_cast<double>(c.values) /
                                                         static_cast<double>(c.records))
                                     : 1.0;
  r.chi2_p = ChiSquareP(pb, pc, per_b, per_c);
  if (b.kind == FeatureKind::kNumeric) {
    // D at the fine edges only: the exact D can be larger by at most the mass either side has
    // inside one fine bin (about 1% of the baseline).
    r.ks_d = MaxCdfGap(b.counts, c.counts);
    const double eb = nb / per_b;
    const double ec = nc / per_c;
    const double root = std::sqrt(eb * ec / (eb + ec));
    r.ks_p = KolmogorovSurvival((root + 0.12 + 0.11 / root) * *r.ks_d);  // Stephens' correction
  }
  if (b.sample < t.min_values || c.values < t.min_values) return r;
  const double alpha = t.significance / (r.ks_p ? 2 : 1);
  const bool significant = r.chi2_p < alpha;
  r.psi_drift = significant && r.psi > t.psi;
  r.psi_major = significant && r.psi > t.psi_major;
  r.js_drift = significant && r.js > t.js;
  r.ks_drift = r.ks_p && *r.ks_p < alpha && *r.ks_d >= t.ks_min_d;
  r.verdict =
      r.psi_drift || r.js_drift || r.ks_drift ? DriftVerdict::kDrift : DriftVerdict::kNoDrift;
  return r;
}

}  // namespace

DriftReport CompareDrift(const DriftCounts& current, const DriftThresholds& thresholds) {
  DriftReport report;
  const auto& features = current.baseline().features();
  for (std::size_t i = 0; i < features.size(); ++i) {
    report.features.push_back(CompareFeature(features[i], current.features()[i], thresholds));
    report.drifted |= report.features.back().verdict == DriftVerdict::kDrift;
  }
  report.unknown = current.unknown();
  report.dropped_values = current.dropped_values();
  return report;
}

}  // namespace dlsys::monitor
