// Reading a running server's Prometheus metrics (dlsys monitor --url): the text exposition
// format 0.0.4, an HTTP scraper, and PromQL's rate() and histogram_quantile() computed exactly
// as Prometheus 2.42 computes them, so what monitor shows is what a dashboard over the same
// samples shows.
//
// Everything a server sends is hostile: bodies, lines, samples and labels per sample are
// bounded (PromLimits), names and UTF-8 are validated, and a malformed line fails the whole
// scrape naming its line number, as Prometheus fails a scrape.
//
// Pure functions are thread-safe; ScrapeWindow is not (one per monitor loop).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.h"

namespace dlsys::monitor {

// ---- The text exposition format 0.0.4 ------------------------------------------------------

struct PromLimits {
  std::size_t max_body_bytes = 16 << 20;  // a larger body fails the scrape
  std::size_t max_line_bytes = 64 << 10;
  std::size_t max_samples = 200000;
  std::size_t max_labels = 64;  // per sample
};

struct PromLabel {
  std::string name;
  std::string value;  // unescaped; valid UTF-8
};

struct PromSample {
  std::string name;
  std::vector<PromLabel> labels;  // as given; names are unique
  double value = 0;
  std::optional<std::int64_t> timestamp_ms;
  // The value of label `name`, "" when absent (as PromQL treats a missing label).
  std::string_view Label(std::string_view name) const;
};

enum class PromType { kUntyped, kCounter, kGauge, kHistogram, kSummary };

struct PromExposition {
  std::vector<PromSample> samples;                       // in the body's order
  std::vector<std::pair<std::string, PromType>> types;  // the # TYPE lines
};

// Parses a body as Prometheus 2.42's text parser does (model/textparse/promparse.go): blank
// lines; "# HELP name text" (valid UTF-8) and "# TYPE name counter|gauge|histogram|summary|
// untyped"; other "#" lines are comments; samples `name{label="value",...} value [timestamp]`
// with names [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]*, spaces or tabs
// between tokens, a trailing comma allowed, label values with the escapes \\ \" \n (other
// escapes kept as written) and valid UTF-8, values as Go's strconv.ParseFloat reads them
// (NaN, +Inf, -Inf, 1e-3; no hex, no '_'), timestamps as decimal milliseconds. Stricter than
// Prometheus: a NUL byte (which ends Prometheus's input silently) and a repeated label name
// are errors. kInvalid naming the 1-based line and what is wrong there, or a limit exceeded.
[[nodiscard]] Result<PromExposition> ParsePromText(std::string_view body,
                                                   const PromLimits& limits = {});

// strconv.ParseFloat(text, 64) as PromQL applies it to `le` labels: decimal, [+-]Inf(inity),
// NaN (any case), and hexadecimal with a p exponent; nullopt if Go would fail (syntax, or
// overflow). Underscores (which Go allows only after a base prefix) are refused.
std::optional<double> ParseGoFloat(std::string_view text);

// ---- PromQL --------------------------------------------------------------------------------

struct PromBucket {
  double upper_bound = 0;  // the `le` label
  double count = 0;        // cumulative
};

// histogram_quantile over classic buckets: bucketQuantile of promql/quantile.go at v2.42.
// q NaN -> NaN, q < 0 -> -Inf, q > 1 -> +Inf; buckets sorted by upper bound; NaN without a
// +Inf bucket; equal bounds coalesced (counts added); counts made monotonic (each at least the
// one below); NaN with fewer than two buckets or zero observations; a rank in the +Inf bucket
// gives the second-highest bound; a rank in a first bucket with bound <= 0 gives that bound;
// otherwise linear interpolation in the bucket (from 0 in a first bucket with a positive
// bound). Not the later small-delta tolerance (v2.49+), which 2.42 does not have. An empty
// list or a NaN bound gives NaN (Prometheus's result there depends on its sort's internals).
double HistogramQuantile(double q, std::vector<PromBucket> buckets);

struct PromPoint {
  std::int64_t t_ms = 0;
  double value = 0;
};

// rate(x[range]) and increase(x[range]) evaluated at range_end_ms for a counter's points in
// ascending time: extrapolatedRate of promql/functions.go at v2.42. Points in
// [range_start_ms, range_end_ms] (both ends included, as 2.42 selects) are used; a decrease is
// a counter reset (the value before it is added back); the increase is extrapolated to each
// boundary when the first/last point is within 1.1 average intervals of it (otherwise by half
// an interval), and towards the start no further than where the counter would have been 0.
// nullopt with fewer than two points in range (PromQL then has no result for the series).
std::optional<double> Increase(std::span<const PromPoint> points, std::int64_t range_start_ms,
                               std::int64_t range_end_ms);
std::optional<double> Rate(std::span<const PromPoint> points, std::int64_t range_start_ms,
                           std::int64_t range_end_ms);

// ---- Scraping ------------------------------------------------------------------------------

struct ScrapeUrl {
  std::string host;    // a name, an IPv4 address, or an IPv6 address without brackets
  std::uint16_t port = 80;
  std::string target;  // path and query; "/metrics" when the URL has no path
  std::string text;    // the URL as given
};

// Parses http://HOST[:PORT][/PATH[?QUERY]] strictly. kUsage for https:// (not supported: say
// what to do), any other scheme, user info, an empty or malformed host, a port outside
// 1..65535, a fragment, or a character outside printable ASCII.
[[nodiscard]] Result<ScrapeUrl> ParseScrapeUrl(std::string_view url);

struct ScrapeResponse {
  std::string body;
  std::string content_type;
  std::int64_t time_ms = 0;  // wall clock when the scrape started (Prometheus's sample time)
};

// One GET with Accept: text/plain;version=0.0.4 (this parser's format; Prometheus also offers
// OpenMetrics) within `timeout` for resolve, connect, request and response together.
// kUnavailable when the server cannot be reached (the message asks whether dlsys serve runs
// there), times out, or answers other than 200 (the status and the start of the body are
// named); kInvalid when the body exceeds max_body_bytes, is compressed, or is OpenMetrics or
// protobuf.
[[nodiscard]] Result<ScrapeResponse> Scrape(const ScrapeUrl& url,
                                            std::chrono::milliseconds timeout,
                                            std::size_t max_body_bytes = PromLimits{}.max_body_bytes);

// ---- Per model version, from the scrapes of a window -------------------------------------

struct PromGroupOptions {
  // Labels that key the groups; "model_version" is read as the label "version" (the log's
  // field name for it).
  std::vector<std::string> by = {"model", "version"};
  // LABEL=VALUE: only series whose label equals VALUE (a missing label is "", so never
  // matches a non-empty VALUE).
  std::vector<std::pair<std::string, std::string>> where;
  std::size_t max_groups = 1000;  // the rest are dropped, groups_capped says so
};

// NaN marks a value PromQL would not give (no series with two points in range, 0/0, a
// histogram without observations).
struct PromWindowStats {
  double requests_per_s;  // sum of rate() over success and failure counters
  double failures_per_s;
  double error_rate;  // failures_per_s / requests_per_s
  double p50_s, p95_s, p99_s;  // histogram_quantile(q, sum by (le) (rate(request_duration_bucket)))
  double mean_s;               // rate(_sum) / rate(_count)
  double batch_size_mean;      // rate(dlsys_inference_count_total) / rate(exec_count_total)
};

struct PromTotals {  // the last scrape's counters: since the server (re)started
  double successes, failures, requests;
  std::vector<std::pair<std::string, double>> failures_by_reason;  // by reason label
  double latency_count;
  double p50_s, p95_s, p99_s;  // histogram_quantile(q, sum by (le) (request_duration_bucket))
  double mean_s;               // _sum / _count
  double inferences, executions, batch_size_mean;
  double queue_depth, executing;  // gauges (NaN if absent)
};

struct PromGroup {
  std::vector<std::string> key;  // one label value per `by` ("" when absent)
  PromWindowStats window;
  PromTotals total;
};

struct PromSummary {
  std::int64_t range_start_ms = 0;  // the rate() range: [range_start_ms, range_end_ms]
  std::int64_t range_end_ms = 0;    // the last scrape's time
  std::size_t scrapes_in_range = 0;
  std::vector<PromGroup> groups;  // by descending total requests, then key
  bool groups_capped = false;
};

// The dlsys_* series of the scrapes of the last `window_ms` (at most max_scrapes points per
// series, at most max_series series), and the summary PromQL would give over them. The rate()
// range ends at the last scrape and starts window_ms before it, or at the first scrape when
// fewer than window_ms have passed since (so two scrapes 2 s apart give rate(x[2s]), not a
// 1 m range mostly empty). A sample's own timestamp is used when it has one.
class ScrapeWindow {
 public:
  ScrapeWindow(std::int64_t window_ms, std::size_t max_scrapes, std::size_t max_series = 100000);
  ~ScrapeWindow();
  ScrapeWindow(const ScrapeWindow&) = delete;
  ScrapeWindow& operator=(const ScrapeWindow&) = delete;

  void Add(const PromExposition& exposition, std::int64_t scrape_time_ms);
  std::size_t scrapes() const;  // added so far
  PromSummary Summarize(const PromGroupOptions& options) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dlsys::monitor
