// The HTML report of `dlsys monitor --report FILE.html`: one self-contained page for people who
// were not at the terminal (a post-mortem, a release review, an attachment to a ticket).
//
// The caller fills a ReportData from whatever it measured (plain values, no scan types, so this
// file does not change when the scanner does) and RenderHtmlReport turns it into one HTML5 file:
// inline CSS, inline SVG charts, no script, no URL of any kind, and a Content-Security-Policy
// that forbids every fetch, so opening the file never touches the network even if a string got
// through. Every string in ReportData is treated as hostile (it comes from logs): it is shown
// with control and bidi characters made visible (core::TerminalSafe), HTML-escaped and cut to a
// bounded length. The output size is bounded whatever the input (the kReport* caps below); what
// a cap leaves out is said on the page.
//
// Non-finite numbers (NaN, ±inf) are never drawn: a chart skips such a point (the line breaks
// there) and a table shows "–". A line also breaks where more than 1.5 × window_us passes
// between two points (no requests), and points stamped outside the years 0001..9999 are not
// drawn.
//
// Pure functions; thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"

namespace dlsys::monitor {

// What a verdict means, for its colour and icon (the verdict's text is always shown too, so
// colour is never the only signal).
enum class ReportLevel {
  kNeutral,  // no data, or nothing to judge
  kOk,       // no significant difference / no drift
  kWarn,     // worth a look (e.g. moderate drift)
  kBad,      // significantly worse / drifted
};

// One time bucket of a group's requests, [t_us, t_us + ReportData::window_us).
struct ReportSeriesPoint {
  std::int64_t t_us = 0;       // bucket start, µs since the Unix epoch (UTC)
  std::uint64_t requests = 0;  // requests in the bucket
  double requests_per_s = 0;   // requests / bucket width in seconds
  double error_rate = 0;       // 5xx / requests in the bucket, 0..1
  double p50_ms = 0;           // latency quantiles of the bucket's requests (NaN = none)
  double p95_ms = 0;
  double p99_ms = 0;
};

// One row of the summary: the requests of one group key (e.g. one model version).
struct ReportGroup {
  std::vector<std::string> key;  // one value per ReportData::by field
  std::uint64_t requests = 0;
  std::uint64_t status_4xx = 0;
  std::uint64_t status_5xx = 0;
  double error_rate = 0;            // 5xx / requests, 0..1
  double rate_per_s = 0;            // requests per second over the group's time span (0 = unknown)
  std::uint64_t latency_count = 0;  // requests with a latency; 0: the latency columns show "–"
  double p50_ms = 0;
  double p95_ms = 0;
  double p99_ms = 0;
  double max_ms = 0;
  double mean_ms = 0;
  std::optional<double> batch_size_mean;  // nullopt: no request had a batch size
  std::vector<ReportSeriesPoint> series;  // any order; drawn sorted by time
};

// --compare: canary against stable (see monitor/compare.h for the tests behind the numbers).
struct ReportComparison {
  std::string field;   // the key field that tells the arms apart, e.g. "model_version"
  std::string stable;  // its value for each arm
  std::string canary;
  std::uint64_t stable_requests = 0;
  std::uint64_t canary_requests = 0;
  double stable_error_rate = 0;  // 5xx / requests, 0..1
  double canary_error_rate = 0;
  double z = 0;              // two-proportion z statistic
  double rate_p = 1;         // its two-sided p-value
  std::string rate_verdict;  // e.g. "worse", "no significant difference", "no data"
  ReportLevel rate_level = ReportLevel::kNeutral;
  double ks_d = 0;              // Kolmogorov-Smirnov D between the latency distributions
  double latency_p = 1;         // its p-value
  std::string latency_verdict;  // e.g. "slower", "faster", "no significant difference"
  ReportLevel latency_level = ReportLevel::kNeutral;
  // Requests per arm (in total, not more) that would show a difference of the size seen;
  // nullopt when no finite number would. Shown only while it exceeds what each arm has.
  std::optional<std::uint64_t> rate_needed;
  std::optional<std::uint64_t> latency_needed;
  double stable_p50_ms = 0;
  double canary_p50_ms = 0;
  double stable_p99_ms = 0;
  double canary_p99_ms = 0;
};

// One bin of a drift histogram: the share of each sample that falls in it (0..1).
struct ReportDriftBin {
  std::string label;  // e.g. "[0.5, 1)" or a category
  double baseline_fraction = 0;
  double current_fraction = 0;
};

// One feature (or the prediction) compared between a baseline and the current window.
struct ReportDrift {
  std::string feature;
  std::string kind;  // "numeric" or "categorical"
  std::uint64_t n_baseline = 0;
  std::uint64_t n_current = 0;
  std::optional<double> psi;     // population stability index
  std::optional<double> ks_d;    // Kolmogorov-Smirnov D (numeric features)
  std::optional<double> ks_p;    // its p-value
  std::optional<double> js;      // Jensen-Shannon distance
  std::optional<double> chi2_p;  // chi-square test of homogeneity of the two histograms
  std::string verdict;           // e.g. "drift", "no drift", "insufficient data"
  ReportLevel level = ReportLevel::kNeutral;
  std::vector<ReportDriftBin> bins;  // in axis order (numeric) or by baseline share
};

// An alert rule that held for a group.
struct ReportAlert {
  std::string rule;   // as the user wrote it, e.g. "p99_ms > 50"
  std::string group;  // the group's key as shown to people, e.g. "mlp16 1.1.0"
  double value = 0;   // the metric's value for that group
};

struct ReportData {
  std::string title;                // page title; empty: "dlsys monitor report"
  std::vector<std::string> inputs;  // log files read ("-" = standard input)
  std::vector<std::string> by;      // the group key fields, e.g. {"model", "model_version"}
  std::int64_t generated_us = 0;    // when the report was made, µs since the Unix epoch
  std::int64_t first_us = 0;        // earliest and latest request stamp (0 = none seen)
  std::int64_t last_us = 0;
  std::uint64_t requests = 0;
  std::uint64_t bad_lines = 0;
  std::uint64_t other_records = 0;  // valid records that are not requests (server events)
  std::int64_t window_us = 0;       // width of a series bucket (0 = no series)
  bool groups_capped = false;       // the scan itself folded keys into "(other)"
  std::vector<ReportGroup> groups;  // in the order to show, busiest first
  std::optional<ReportComparison> comparison;
  std::vector<ReportDrift> drift;
  std::vector<ReportAlert> alerts;
  std::string dlsys_version;
};

// Caps that bound the page size (a few MB at most). Beyond them the page says what it left out.
inline constexpr std::size_t kReportMaxTableGroups = 200;  // rows of the summary table
inline constexpr std::size_t kReportMaxChartGroups = 12;   // groups with their own charts
inline constexpr std::size_t kReportMaxOverviewLines = 6;  // groups overlaid on one chart
// Points per line: a longer series has runs of adjacent points merged into this many (rates
// and p50 averaged, p95/p99 the highest so a spike stays visible, error rate weighted by
// requests).
inline constexpr std::size_t kReportMaxPoints = 500;
inline constexpr std::size_t kReportMaxDriftFeatures = 50;
inline constexpr std::size_t kReportMaxDriftBins = 60;
inline constexpr std::size_t kReportMaxAlerts = 500;
inline constexpr std::size_t kReportMaxInputs = 50;
inline constexpr std::size_t kReportMaxTextChars = 120;  // longer strings are cut with "…"

// The whole HTML document (UTF-8).
std::string RenderHtmlReport(const ReportData& data);

// Renders and writes the report to `path` atomically (core::AtomicFile: a temporary file in the
// same directory, flushed, then renamed): a failure at any point leaves nothing under `path`
// and no temporary file behind. Only ever writes a regular file: kInvalid if `path` is a
// directory, symbolic link, FIFO or device (even with overwrite); kExists if it exists and
// !overwrite; kNotFound if the directory does not exist; kInvalid or kInternal (with the
// system's reason) if the directory is not writable or the write fails.
[[nodiscard]] Result<void> WriteHtmlReport(const std::string& path, const ReportData& data,
                                           bool overwrite);

}  // namespace dlsys::monitor
