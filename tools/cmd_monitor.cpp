// dlsys monitor: summarize requests in JSON-lines logs (dlsys serve's records or any JSON log)
// per model and version: rate, status classes, latency quantiles, batch size.
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string_view>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "core/file.h"
#include "core/text.h"
#include "log/log.h"
#include "monitor/alert.h"
#include "monitor/baseline.h"
#include "monitor/compare.h"
#include "monitor/drift.h"
#include "monitor/records.h"
#include "monitor/remote.h"
#include "monitor/report.h"
#include "monitor_url.h"
#include "monitor_view.h"
#include "monitor/scan.h"

namespace dlsys::cli {
namespace monitor_cmd {

using monitor_view::FitToTerminal;
using monitor_view::Fixed;
using monitor_view::InPlace;
using monitor_view::LocaleIsUtf8;
using monitor_view::Ms;
using monitor_view::Table;
using monitor_view::TermIsDumb;
using monitor_view::TerminalSize;

struct Options {
  std::vector<std::string> files;
  std::vector<std::string> by;
  std::vector<std::string> where;
  std::vector<std::string> alerts;
  std::vector<std::string> fields;  // NAME=PATH[*FACTOR]
  std::string compare;  // FIELD=STABLE,CANARY
  std::string level;
  std::string since;
  std::string window;  // empty: 1m, shown only when following
  std::string baseline;         // ARCHIVE.dlsys or a log
  std::string baseline_window;  // FROM/TO (RFC 3339) of a baseline log
  std::vector<std::string> trust;
  bool allow_unsigned = false;
  std::string report;  // FILE.html
  std::string url;     // http://HOST:PORT/metrics
  bool once = false;
  bool follow = false;
  bool records = false;
  bool ascii = false;
  std::string interval = "2s";
  bool json = false;
};

// --compare FIELD=STABLE,CANARY, parsed.
struct CompareSpec {
  std::string field, stable, canary;
};

// Ticks (each a sketch of at most ~9 KiB, typically ~2 KiB) kept per scan thread in all groups.
constexpr std::size_t kTickBudget = 12'000;

// Everything the options say, checked once.
struct Setup {
  monitor::ScanOptions scan;
  std::vector<monitor::AlertRule> rules;
  std::optional<CompareSpec> compare;
  std::int64_t window_us = 60'000'000;
  bool show_window = false;  // the window table and trends (following, or --window given)
  bool utf8 = true;          // sparklines in block characters, else ASCII
  // Drift (--baseline): the reference every scan thread's DriftCounts count against.
  std::shared_ptr<const monitor::DriftBaseline> baseline;
};

std::string Bytes(std::uint64_t n) {
  if (n >= 1000000000) return Fixed(static_cast<double>(n) / 1e9, 2) + " GB";
  if (n >= 1000000) return Fixed(static_cast<double>(n) / 1e6, 1) + " MB";
  if (n >= 1000) return Fixed(static_cast<double>(n) / 1e3, 1) + " kB";
  return std::to_string(n) + " B";
}

// --compare FIELD=STABLE,CANARY: the two arms, each merged over the other --by fields.
struct Comparison {
  std::string field, stable, canary;
  monitor::GroupStats s, c;
  monitor::RateComparison rate;
  monitor::LatencyComparison latency;
};

std::optional<Comparison> Compare(const Setup& setup, const monitor::ScanSummary& summary) {
  if (!setup.compare) return std::nullopt;
  const monitor::ScanOptions& so = setup.scan;
  Comparison cmp;
  cmp.field = setup.compare->field;
  cmp.stable = setup.compare->stable;
  cmp.canary = setup.compare->canary;
  std::size_t at = 0;
  while (at < so.by.size() && so.by[at] != cmp.field) ++at;
  for (const auto& g : summary.groups) {
    if (at >= g.key.size()) continue;
    if (g.key[at] == cmp.stable) cmp.s.Merge(g);
    if (g.key[at] == cmp.canary) cmp.c.Merge(g);
  }
  cmp.rate = monitor::CompareErrorRates(cmp.s.status_5xx, cmp.s.requests, cmp.c.status_5xx,
                                        cmp.c.requests);
  cmp.latency = monitor::CompareLatencies(cmp.s.latency_ms, cmp.c.latency_ms);
  return cmp;
}

std::string Percent(double v) { return Fixed(100 * v, 2) + "%"; }

std::string Needed(const std::optional<std::uint64_t>& n, std::uint64_t have) {
  if (!n) return "";
  if (*n <= have) return "";
  return "; ~" + std::to_string(*n - have) + " more requests per arm would show a difference this size";
}

std::string RenderComparisonText(const std::optional<Comparison>& cmp) {
  if (!cmp) return "";
  const auto& c = *cmp;
  const std::uint64_t have = std::min(c.s.requests, c.c.requests);
  std::string out = "canary " + core::TerminalSafe(c.field) + "=" + core::TerminalSafe(c.canary) +
                    " (" + std::to_string(c.c.requests) + " requests) vs stable " +
                    core::TerminalSafe(c.stable) + " (" + std::to_string(c.s.requests) + "):\n";
  out += "  5xx rate  " + Percent(c.rate.canary) + " vs " + Percent(c.rate.stable) + ": " +
         monitor::VerdictName(c.rate.verdict);
  if (c.rate.verdict != monitor::Verdict::kNoData) {
    out += " (z " + Fixed(c.rate.z, 2) + ", p " + Fixed(c.rate.p_value, 4) + ")" +
           Needed(c.rate.needed_per_arm, have);
  }
  out += "\n  latency   p50 " + Ms(c.c.latency_ms.Quantile(0.5)) + " vs " +
         Ms(c.s.latency_ms.Quantile(0.5)) + " ms, p99 " + Ms(c.c.latency_ms.Quantile(0.99)) +
         " vs " + Ms(c.s.latency_ms.Quantile(0.99)) + " ms: " +
         (c.latency.verdict == monitor::Verdict::kWorse    ? "slower"
          : c.latency.verdict == monitor::Verdict::kBetter ? "faster"
                                                           : monitor::VerdictName(c.latency.verdict));
  if (c.latency.verdict != monitor::Verdict::kNoData) {
    out += " (KS D " + Fixed(c.latency.d, 4) + ", p " + Fixed(c.latency.p_value, 4) + ")" +
           Needed(c.latency.needed_per_arm,
                  std::min(c.s.latency_ms.count(), c.c.latency_ms.count()));
  }
  return out + "\n";
}

nlohmann::json ComparisonJson(const Comparison& c) {
  const auto needed = [](const std::optional<std::uint64_t>& n) {
    return n ? nlohmann::json(*n) : nlohmann::json(nullptr);
  };
  return {{"field", c.field},
          {"stable", {{"value", c.stable}, {"requests", c.s.requests}, {"status_5xx", c.s.status_5xx}}},
          {"canary", {{"value", c.canary}, {"requests", c.c.requests}, {"status_5xx", c.c.status_5xx}}},
          {"error_rate", {{"stable", c.rate.stable}, {"canary", c.rate.canary}, {"z", c.rate.z},
                          {"p_value", c.rate.p_value},
                          {"verdict", monitor::VerdictName(c.rate.verdict)},
                          {"needed_per_arm", needed(c.rate.needed_per_arm)}}},
          {"latency", {{"ks_d", c.latency.d}, {"p_value", c.latency.p_value},
                       {"verdict", monitor::VerdictName(c.latency.verdict)},
                       {"needed_per_arm", needed(c.latency.needed_per_arm)}}}};
}

std::string AlertSubject(const monitor::FiredAlert& a) {
  if (!a.feature.empty()) return "feature " + core::Truncate(core::TerminalSafe(a.feature), 60);
  std::string key;
  for (const auto& k : a.key) key += (key.empty() ? "" : " ") + core::Truncate(core::TerminalSafe(k), 40);
  return key;
}

std::string RenderAlertsText(const std::vector<monitor::FiredAlert>& fired) {
  std::string out;
  for (const auto& a : fired) {
    out += "ALERT " + core::TerminalSafe(a.rule) + ": " + AlertSubject(a) + " (" +
           Fixed(a.value, 4) + ")\n";
  }
  return out;
}

// A sparkline of the values (NaN = no data: a blank), scaled from 0 to their maximum.
std::string Sparkline(const std::vector<double>& values, bool utf8) {
  static constexpr const char* kBlocks[] = {"\u2581", "\u2582", "\u2583", "\u2584",
                                            "\u2585", "\u2586", "\u2587", "\u2588"};
  static constexpr std::string_view kAscii = "_.-:=+*#";
  double top = 0;
  for (double v : values) {
    if (std::isfinite(v)) top = std::max(top, v);
  }
  std::string out;
  for (double v : values) {
    if (!std::isfinite(v)) {
      out += ' ';
      continue;
    }
    const int level = top > 0 ? std::clamp(static_cast<int>(v / top * 7.999), 0, 7) : 0;
    if (utf8) {
      out += kBlocks[level];
    } else {
      out += kAscii[static_cast<std::size_t>(level)];
    }
  }
  return out;
}

// Per tick of the trend (the newest history_ticks up to now): requests per second, error rate
// and p99 of the requests stamped in that tick; NaN where the tick has no requests.
struct Trend {
  std::vector<std::int64_t> start_us;
  std::vector<double> rate, error_rate, p50, p95, p99;
  std::vector<std::uint64_t> requests;
};

Trend TrendOf(const monitor::GroupStats& g, const Setup& setup, std::int64_t now_us) {
  Trend t;
  const std::int64_t tick = setup.window_us / monitor::kTicksPerWindow;
  const std::int64_t last = monitor::TickOf(now_us, setup.window_us);
  const auto n = static_cast<std::int64_t>(setup.scan.history_ticks);
  std::size_t at = 0;
  for (std::int64_t i = last - n + 1; i <= last; ++i) {
    while (at < g.ticks.size() && g.ticks[at].index < i) ++at;
    const monitor::TickStats* k =
        at < g.ticks.size() && g.ticks[at].index == i ? &g.ticks[at] : nullptr;
    // The current tick has lasted only until now.
    const double seconds =
        static_cast<double>(i == last ? std::max<std::int64_t>(1, now_us - i * tick) : tick) / 1e6;
    t.start_us.push_back(i * tick);
    t.requests.push_back(k ? k->requests : 0);
    t.rate.push_back(k ? static_cast<double>(k->requests) / seconds : 0);
    const bool any = k && k->requests > 0;
    t.error_rate.push_back(any ? static_cast<double>(k->status_5xx) /
                                     static_cast<double>(k->requests)
                               : NAN);
    const bool lat = k && k->latency_ms.count() > 0;
    t.p50.push_back(lat ? k->latency_ms.Quantile(0.5) : NAN);
    t.p95.push_back(lat ? k->latency_ms.Quantile(0.95) : NAN);
    t.p99.push_back(lat ? k->latency_ms.Quantile(0.99) : NAN);
  }
  return t;
}

std::string Seconds(std::int64_t us) {
  if (us % 3'600'000'000 == 0) return std::to_string(us / 3'600'000'000) + "h";
  if (us % 60'000'000 == 0) return std::to_string(us / 60'000'000) + "m";
  if (us % 1'000'000 == 0) return std::to_string(us / 1'000'000) + "s";
  return Fixed(static_cast<double>(us) / 1e6, 3) + "s";
}

// The sliding-window table: per group the last window's rate, errors and latency, with trends.
std::string RenderWindowText(const Setup& setup, const monitor::ScanSummary& s,
                             std::int64_t now_us) {
  if (s.groups.empty()) return "";
  const auto& so = setup.scan;
  const std::int64_t tick = setup.window_us / monitor::kTicksPerWindow;
  std::string out = "last " + Seconds(setup.window_us) + " (to " +
                    monitor::FormatRfc3339Us(now_us).substr(0, 19) + "Z); trends: " +
                    std::to_string(so.history_ticks) + " x " + Seconds(tick) + "\n";
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> head = so.by;
  for (const char* h : {"requests", "req/s", "5xx", "err%", "p50 ms", "p95 ms", "p99 ms",
                        "batch", "p99 trend", "req/s trend"}) {
    head.emplace_back(h);
  }
  rows.push_back(head);
  std::size_t shown = 0;
  for (const auto& g : s.groups) {
    std::vector<std::string> r;
    for (const auto& k : g.key) r.push_back(core::Truncate(core::TerminalSafe(k), 40));
    if (!g.keeps_ticks) {
      continue;  // beyond kMaxWindowGroups: totals only
    }
    ++shown;
    const monitor::GroupStats w = monitor::WindowOf(g, now_us, setup.window_us);
    const auto& l = w.latency_ms;
    const bool lat = l.count() > 0;
    r.push_back(std::to_string(w.requests));
    r.push_back(Fixed(w.RatePerSecond(), 1));
    r.push_back(std::to_string(w.status_5xx));
    r.push_back(w.requests ? Fixed(100.0 * static_cast<double>(w.status_5xx) /
                                       static_cast<double>(w.requests),
                                   2)
                           : "-");
    for (double q : {0.5, 0.95, 0.99}) r.push_back(lat ? Ms(l.Quantile(q)) : "-");
    r.push_back(w.batch_size_count
                    ? Fixed(w.batch_size_sum / static_cast<double>(w.batch_size_count), 2)
                    : "-");
    const Trend t = TrendOf(g, setup, now_us);
    r.push_back(Sparkline(t.p99, setup.utf8));
    r.push_back(Sparkline(t.rate, setup.utf8));
    rows.push_back(std::move(r));
  }
  out += Table(rows, so.by.size());
  if (shown < s.groups.size()) {
    out += "(" + std::to_string(s.groups.size() - shown) + " more groups have totals only: " +
           "windows are kept for the first " + std::to_string(setup.scan.window_groups) + ")\n";
  }
  return out;
}

std::string RenderText(const Options& o, const monitor::ScanOptions& so,
                       const monitor::ScanSummary& s, double seconds) {
  std::string out = std::to_string(s.requests) + " requests, " + std::to_string(s.events) +
                    " other records, " + std::to_string(s.bad_lines) + " bad lines";
  if (s.filtered_out > 0) out += ", " + std::to_string(s.filtered_out) + " filtered out";
  out += " (" + std::to_string(o.files.size()) + (o.files.size() == 1 ? " input, " : " inputs, ") +
         Bytes(s.bytes) + " in " + Fixed(seconds, 2) + " s, " + std::to_string(s.threads) +
         (s.threads == 1 ? " thread)\n" : " threads)\n");
  if (s.groups.empty()) return out;
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> head = so.by;
  for (const char* h : {"requests", "req/s", "4xx", "5xx", "err%", "p50 ms", "p95 ms", "p99 ms",
                        "max ms", "mean ms", "batch"}) {
    head.emplace_back(h);
  }
  rows.push_back(head);
  for (const auto& g : s.groups) {
    std::vector<std::string> r;
    for (const auto& k : g.key) r.push_back(core::Truncate(core::TerminalSafe(k), 40));
    const auto& l = g.latency_ms;
    const bool lat = l.count() > 0;
    r.push_back(std::to_string(g.requests));
    r.push_back(g.RatePerSecond() > 0 ? Fixed(g.RatePerSecond(), 1) : "-");
    r.push_back(std::to_string(g.status_4xx));
    r.push_back(std::to_string(g.status_5xx));
    r.push_back(Fixed(100.0 * static_cast<double>(g.status_5xx) /
                          static_cast<double>(std::max<std::uint64_t>(1, g.requests)),
                      2));
    for (double q : {0.5, 0.95, 0.99}) r.push_back(lat ? Ms(l.Quantile(q)) : "-");
    r.push_back(lat ? Ms(l.max()) : "-");
    r.push_back(lat ? Ms(l.mean()) : "-");
    r.push_back(g.batch_size_count ? Fixed(g.batch_size_sum /
                                               static_cast<double>(g.batch_size_count),
                                           2)
                                   : "-");
    rows.push_back(std::move(r));
  }
  out += Table(rows, so.by.size());
  if (s.groups_capped) {
    out += "(more than " + std::to_string(so.max_groups) +
           " groups: the rest are counted as '(other)')\n";
  }
  out += "err% = 5xx / requests; quantiles within 1% of the true value (DDSketch)\n";
  return out;
}

// What one summary shows, however it is rendered.
struct Snapshot {
  explicit Snapshot(const monitor::ScanSummary& s) : summary(s) {}
  const monitor::ScanSummary& summary;
  double seconds = 0;        // reading took (--once) or has been going on (--follow)
  std::int64_t now_us = 0;   // where windows end: the newest record (--once) or the clock
  std::vector<monitor::FiredAlert> fired;
  std::optional<Comparison> comparison;
  std::optional<monitor::DriftReport> drift;
  const monitor::Follower* follower = nullptr;
};

nlohmann::json CountsJson(const monitor::GroupStats& g) {
  nlohmann::json e;
  e["requests"] = g.requests;
  e["status_4xx"] = g.status_4xx;
  e["status_5xx"] = g.status_5xx;
  e["error_rate"] =
      g.requests ? static_cast<double>(g.status_5xx) / static_cast<double>(g.requests) : 0.0;
  e["rate_per_s"] = g.RatePerSecond();
  const auto& l = g.latency_ms;
  e["latency_ms"] = {{"count", l.count()}, {"mean", l.mean()},          {"min", l.min()},
                     {"p50", l.Quantile(0.5)}, {"p95", l.Quantile(0.95)}, {"p99", l.Quantile(0.99)},
                     {"max", l.max()}};
  e["batch_size_mean"] =
      g.batch_size_count
          ? nlohmann::json(g.batch_size_sum / static_cast<double>(g.batch_size_count))
          : nullptr;
  return e;
}

nlohmann::json NumberOrNull(double v) { return std::isfinite(v) ? nlohmann::json(v) : nullptr; }

nlohmann::json DriftJson(const Options& o, const monitor::DriftReport& d) {
  nlohmann::json j;
  j["baseline"] = o.baseline;
  j["drifted"] = d.drifted;
  j["dropped_values"] = d.dropped_values;
  j["features"] = nlohmann::json::array();
  for (const auto& f : d.features) {
    nlohmann::json e;
    e["feature"] = f.feature;
    e["kind"] = monitor::FeatureKindName(f.kind);
    e["verdict"] = monitor::DriftVerdictName(f.verdict);
    e["n_baseline"] = f.n_baseline;
    e["n_current"] = f.n_current;
    e["mismatched"] = f.mismatched;
    e["non_finite"] = f.non_finite;
    e["psi"] = f.psi;
    e["psi_major"] = f.psi_major;
    e["js"] = f.js;
    e["chi2_p"] = f.chi2_p;
    e["ks_d"] = f.ks_d ? nlohmann::json(*f.ks_d) : nullptr;
    e["ks_p"] = f.ks_p ? nlohmann::json(*f.ks_p) : nullptr;
    e["flags"] = {{"psi", f.psi_drift}, {"js", f.js_drift}, {"ks", f.ks_drift}};
    e["bins"] = nlohmann::json::array();
    for (const auto& b : f.bins) {
      e["bins"].push_back({{"label", b.label}, {"baseline", b.baseline}, {"current", b.current}});
    }
    j["features"].push_back(std::move(e));
  }
  j["unknown"] = nlohmann::json::array();
  for (const auto& [name, n] : d.unknown) j["unknown"].push_back({{"feature", name}, {"values", n}});
  return j;
}

std::string RenderDriftText(const Options& o, const std::optional<monitor::DriftReport>& d) {
  if (!d) return "";
  std::string out = "drift against " + core::TerminalSafe(o.baseline) + ": " +
                    (d->drifted ? "DRIFT" : "no drift") + "\n";
  std::vector<std::vector<std::string>> rows = {
      {"feature", "kind", "baseline", "current", "psi", "js", "ks D", "verdict"}};
  for (const auto& f : d->features) {
    std::string verdict = monitor::DriftVerdictName(f.verdict);
    if (f.verdict == monitor::DriftVerdict::kDrift) {
      std::string by;
      if (f.psi_drift) by += f.psi_major ? "psi (major)" : "psi";
      if (f.js_drift) by += std::string(by.empty() ? "" : ", ") + "js";
      if (f.ks_drift) by += std::string(by.empty() ? "" : ", ") + "ks";
      verdict += " (" + by + ")";
    }
    rows.push_back({core::Truncate(core::TerminalSafe(f.feature), 48),
                    monitor::FeatureKindName(f.kind), std::to_string(f.n_baseline),
                    std::to_string(f.n_current), Fixed(f.psi, 3), Fixed(f.js, 3),
                    f.ks_d ? Fixed(*f.ks_d, 3) : "-", verdict});
  }
  out += Table(rows, 2);
  for (const auto& [name, n] : d->unknown) {
    out += "(not in the baseline: " + core::Truncate(core::TerminalSafe(name), 48) + ", " +
           std::to_string(n) + " values)\n";
  }
  return out;
}

std::optional<monitor::DriftReport> DriftOf(const Setup& setup,
                                            const monitor::ScanSummary& summary) {
  if (!setup.baseline) return std::nullopt;
  if (!summary.drift) {  // nothing was read: compare against nothing
    monitor::DriftCounts empty(*setup.baseline);
    return monitor::CompareDrift(empty);
  }
  return monitor::CompareDrift(static_cast<const monitor::DriftCounts&>(*summary.drift));
}
// pretty = false: one line (a snapshot in --follow's stream of JSON lines).
std::string RenderJson(const Options& o, const Setup& setup, const Snapshot& snap, bool pretty) {
  const monitor::ScanSummary& s = snap.summary;
  const monitor::ScanOptions& so = setup.scan;
  nlohmann::json j;
  j["inputs"] = o.files;
  j["by"] = so.by;
  j["bytes"] = s.bytes;
  j["lines"] = s.lines;
  j["requests"] = s.requests;
  j["other_records"] = s.events;
  j["filtered_out"] = s.filtered_out;
  j["bad_lines"] = s.bad_lines;
  j["threads"] = s.threads;
  j["seconds"] = snap.seconds;
  j["groups_capped"] = s.groups_capped;
  j["quantile_relative_accuracy"] = monitor::QuantileSketch::kRelativeAccuracy;
  j["window"] = {{"seconds", static_cast<double>(setup.window_us) / 1e6},
                 {"tick_seconds",
                  static_cast<double>(setup.window_us / monitor::kTicksPerWindow) / 1e6},
                 {"end", snap.now_us ? nlohmann::json(monitor::FormatRfc3339Us(snap.now_us))
                                     : nlohmann::json(nullptr)}};
  if (snap.follower) {
    j["follow"] = {{"rotations", snap.follower->rotations()},
                   {"truncations", snap.follower->truncations()}};
  }
  if (snap.comparison) j["comparison"] = ComparisonJson(*snap.comparison);
  if (snap.drift) j["drift"] = DriftJson(o, *snap.drift);
  j["alerts"] = nlohmann::json::array();
  for (const auto& a : snap.fired) {
    nlohmann::json e;
    e["rule"] = a.rule;
    e["key"] = nlohmann::json::object();
    for (std::size_t i = 0; i < so.by.size() && i < a.key.size(); ++i) e["key"][so.by[i]] = a.key[i];
    if (!a.feature.empty()) e["feature"] = a.feature;
    e["value"] = a.value;
    j["alerts"].push_back(std::move(e));
  }
  j["groups"] = nlohmann::json::array();
  for (const auto& g : s.groups) {
    nlohmann::json e = CountsJson(g);
    e["key"] = nlohmann::json::object();
    for (std::size_t i = 0; i < so.by.size() && i < g.key.size(); ++i) e["key"][so.by[i]] = g.key[i];
    e["first"] = g.first_us ? nlohmann::json(monitor::FormatRfc3339Us(g.first_us)) : nullptr;
    e["last"] = g.last_us ? nlohmann::json(monitor::FormatRfc3339Us(g.last_us)) : nullptr;
    if (g.keeps_ticks && snap.now_us != 0) {
      const monitor::GroupStats w = monitor::WindowOf(g, snap.now_us, setup.window_us);
      e["window"] = CountsJson(w);
      e["window"]["from"] = monitor::FormatRfc3339Us(w.first_us);
      e["window"]["to"] = monitor::FormatRfc3339Us(w.last_us);
      const Trend t = TrendOf(g, setup, snap.now_us);
      nlohmann::json series = nlohmann::json::array();
      for (std::size_t i = 0; i < t.start_us.size(); ++i) {
        if (t.requests[i] == 0) continue;
        series.push_back({{"start", monitor::FormatRfc3339Us(t.start_us[i])},
                          {"requests", t.requests[i]},
                          {"rate_per_s", t.rate[i]},
                          {"error_rate", NumberOrNull(t.error_rate[i])},
                          {"p50_ms", NumberOrNull(t.p50[i])},
                          {"p95_ms", NumberOrNull(t.p95[i])},
                          {"p99_ms", NumberOrNull(t.p99[i])}});
      }
      e["series"] = std::move(series);
    } else {
      e["window"] = nullptr;
      e["series"] = nlohmann::json::array();
    }
    j["groups"].push_back(std::move(e));
  }
  return (pretty ? j.dump(2, ' ', true) : j.dump(-1, ' ', true)) + "\n";
}

std::string RenderAllText(const Options& o, const Setup& setup, const Snapshot& snap) {
  std::string out = RenderText(o, setup.scan, snap.summary, snap.seconds);
  if (setup.show_window && snap.now_us != 0) {
    out += "\n" + RenderWindowText(setup, snap.summary, snap.now_us);
  }
  return out + RenderComparisonText(snap.comparison) + RenderDriftText(o, snap.drift) +
         RenderAlertsText(snap.fired);
}

monitor::ReportLevel ReportLevelOf(monitor::Verdict v) {
  switch (v) {
    case monitor::Verdict::kWorse: return monitor::ReportLevel::kBad;
    case monitor::Verdict::kBetter:
    case monitor::Verdict::kNoDifference: return monitor::ReportLevel::kOk;
    case monitor::Verdict::kNoData: break;
  }
  return monitor::ReportLevel::kNeutral;
}

monitor::ReportData ReportDataFrom(const Options& o, const Setup& setup, const Snapshot& snap) {
  const monitor::ScanSummary& s = snap.summary;
  monitor::ReportData d;
  d.inputs = o.files;
  d.by = setup.scan.by;
  d.generated_us = std::chrono::duration_cast<std::chrono::microseconds>(
                       std::chrono::system_clock::now().time_since_epoch()).count();
  d.requests = s.requests;
  d.bad_lines = s.bad_lines;
  d.other_records = s.events;
  d.groups_capped = s.groups_capped;
  d.window_us = setup.window_us / monitor::kTicksPerWindow;  // one series point per tick
  d.dlsys_version = DLSYS_VERSION;
  for (const auto& g : s.groups) {
    if (g.first_us && (!d.first_us || g.first_us < d.first_us)) d.first_us = g.first_us;
    d.last_us = std::max(d.last_us, g.last_us);
    monitor::ReportGroup r;
    r.key = g.key;
    r.requests = g.requests;
    r.status_4xx = g.status_4xx;
    r.status_5xx = g.status_5xx;
    r.error_rate = g.requests ? double(g.status_5xx) / double(g.requests) : 0.0;
    r.rate_per_s = g.RatePerSecond();
    const auto& l = g.latency_ms;
    r.latency_count = l.count();
    r.p50_ms = l.Quantile(0.5); r.p95_ms = l.Quantile(0.95); r.p99_ms = l.Quantile(0.99);
    r.max_ms = l.max(); r.mean_ms = l.mean();
    if (g.batch_size_count) r.batch_size_mean = g.batch_size_sum / double(g.batch_size_count);
    if (g.keeps_ticks && snap.now_us != 0) {
      const Trend t = TrendOf(g, setup, snap.now_us);  // empty ticks included: rate 0, NaN rest
      const std::int64_t tick = setup.window_us / monitor::kTicksPerWindow;
      for (std::size_t i = 0; i < t.start_us.size(); ++i) {
        if (t.start_us[i] + tick <= g.first_us) continue;  // before the group's first request
        r.series.push_back({t.start_us[i], t.requests[i], t.rate[i], t.error_rate[i], t.p50[i],
                            t.p95[i], t.p99[i]});
      }
    }
    d.groups.push_back(std::move(r));
  }
  if (snap.comparison) {
    const Comparison& c = *snap.comparison;
    monitor::ReportComparison r;
    r.field = c.field; r.stable = c.stable; r.canary = c.canary;
    r.stable_requests = c.s.requests; r.canary_requests = c.c.requests;
    r.stable_error_rate = c.rate.stable; r.canary_error_rate = c.rate.canary;
    r.z = c.rate.z; r.rate_p = c.rate.p_value;
    r.rate_verdict = monitor::VerdictName(c.rate.verdict);
    r.rate_level = ReportLevelOf(c.rate.verdict);
    r.rate_needed = c.rate.needed_per_arm;
    r.ks_d = c.latency.d; r.latency_p = c.latency.p_value;
    r.latency_verdict = c.latency.verdict == monitor::Verdict::kWorse    ? "slower"
                        : c.latency.verdict == monitor::Verdict::kBetter ? "faster"
                                                   : monitor::VerdictName(c.latency.verdict);
    r.latency_level = ReportLevelOf(c.latency.verdict);
    r.latency_needed = c.latency.needed_per_arm;
    r.stable_p50_ms = c.s.latency_ms.Quantile(0.5); r.canary_p50_ms = c.c.latency_ms.Quantile(0.5);
    r.stable_p99_ms = c.s.latency_ms.Quantile(0.99); r.canary_p99_ms = c.c.latency_ms.Quantile(0.99);
    d.comparison = std::move(r);
  }
  if (snap.drift) {
    for (const auto& f : snap.drift->features) {
      monitor::ReportDrift r;
      r.feature = f.feature;
      r.kind = monitor::FeatureKindName(f.kind);
      r.n_baseline = f.n_baseline; r.n_current = f.n_current;
      const bool judged = f.verdict != monitor::DriftVerdict::kInsufficientData;
      if (judged) { r.psi = f.psi; r.js = f.js; r.chi2_p = f.chi2_p; }
      r.ks_d = f.ks_d; r.ks_p = f.ks_p;
      r.verdict = monitor::DriftVerdictName(f.verdict);
      r.level = f.verdict == monitor::DriftVerdict::kDrift   ? monitor::ReportLevel::kBad
                : f.verdict == monitor::DriftVerdict::kNoDrift ? monitor::ReportLevel::kOk
                                                               : monitor::ReportLevel::kNeutral;
      for (const auto& b : f.bins) r.bins.push_back({b.label, b.baseline, b.current});
      d.drift.push_back(std::move(r));
    }
  }
  for (const auto& a : snap.fired) {
    std::string key = a.feature.empty() ? "" : "feature " + a.feature;
    for (const auto& k : a.key) key += (key.empty() ? "" : " ") + k;
    d.alerts.push_back({a.rule, key, a.value});
  }
  return d;
}

// --report FILE.html: written whole or not at all (temp file + rename).
Result<void> WriteReport(const Options& o, const Setup& setup, const Snapshot& snap) {
  if (o.report.empty()) return {};
  auto written = monitor::WriteHtmlReport(o.report, ReportDataFrom(o, setup, snap), true);
  if (!written) return tl::unexpected(std::move(written.error()).Wrap("cannot write the report"));
  return {};
}

// --baseline: an archive's examples (verified as serve verifies), or a log (or a window of it)
// read with the same filters and mappings as the current records.
Result<void> LoadBaseline(const Options& o, Setup& setup) {
  if (o.baseline.empty()) {
    for (const auto& r : setup.rules) {
      if (r.IsDrift()) {
        return Fail(Code::kUsage, "--alert '" + core::TerminalSafe(r.text) + "' needs a baseline",
                    {"give --baseline MODEL.dlsys (its examples) or --baseline reference.log"});
      }
    }
    if (!o.baseline_window.empty()) {
      return Fail(Code::kUsage, "--baseline-window needs --baseline LOG");
    }
    return {};
  }
  if (o.baseline.ends_with(".dlsys")) {
    if (!o.baseline_window.empty()) {
      return Fail(Code::kUsage, "--baseline-window applies to a baseline log, not an archive");
    }
    DLSYS_ASSIGN_OR_RETURN(package::VerifyOptions v,
                           package::TrustOptions(o.trust, o.allow_unsigned));
    DLSYS_ASSIGN_OR_RETURN(auto baseline, monitor::BaselineFromArchive(o.baseline, v));
    setup.baseline = std::make_shared<const monitor::DriftBaseline>(std::move(baseline));
  } else {
    monitor::ScanOptions so = setup.scan;
    so.since_us.reset();
    so.on_record = nullptr;
    so.window_us = 0;
    if (!o.baseline_window.empty()) {
      const std::size_t slash = o.baseline_window.find('/');
      const auto from = monitor::ParseRfc3339Us(o.baseline_window.substr(0, slash));
      const auto to = slash == std::string::npos
                          ? std::nullopt
                          : monitor::ParseRfc3339Us(o.baseline_window.substr(slash + 1));
      if (!from || !to || *to <= *from) {
        return Fail(Code::kUsage, "--baseline-window '" + o.baseline_window + "' is not FROM/TO",
                    {"two RFC 3339 instants, the first earlier: "
                     "--baseline-window 2026-12-01T10:00:00Z/2026-12-01T11:00:00Z"});
      }
      so.since_us = from;
      so.until_us = to;
    }
    so.drift_sink = [] { return std::make_unique<monitor::BaselineBuilder>(); };
    DLSYS_ASSIGN_OR_RETURN(auto read, monitor::Scan({o.baseline}, so));
    monitor::BaselineBuilder none;
    const auto& builder =
        read.drift ? static_cast<const monitor::BaselineBuilder&>(*read.drift) : none;
    setup.baseline = std::make_shared<const monitor::DriftBaseline>(builder.Finalize());
  }
  if (setup.baseline->features().empty()) {
    return Fail(Code::kInvalid, "the baseline '" + o.baseline + "' has no sampled inputs or predictions",
                {"a log needs requests with 'input'/'prediction' (dlsys serve --log-sample-rate); "
                 "an archive needs examples"});
  }
  auto baseline = setup.baseline;
  setup.scan.drift_sink = [baseline] { return std::make_unique<monitor::DriftCounts>(*baseline); };
  return {};
}

Result<monitor::ScanOptions> ScanOptionsFrom(const Options& o) {
  monitor::ScanOptions so;
  if (!o.by.empty()) {
    so.by.clear();
    for (const auto& b : o.by) {
      for (std::size_t at = 0; at <= b.size();) {
        const std::size_t comma = std::min(b.find(',', at), b.size());
        const std::string f = b.substr(at, comma - at);
        if (f.empty()) {
          return Fail(Code::kUsage, "--by '" + b + "' names an empty field",
                      {"give field names separated by commas, e.g. --by model,model_version"});
        }
        so.by.push_back(f);
        at = comma + 1;
      }
    }
  }
  for (const auto& w : o.where) {
    const std::size_t eq = w.find('=');
    if (eq == std::string::npos || eq == 0) {
      return Fail(Code::kUsage, "--where '" + w + "' is not FIELD=VALUE",
                  {"e.g. --where model=mlp16 or --where status=503"});
    }
    so.where.emplace_back(w.substr(0, eq), w.substr(eq + 1));
  }
  if (!o.level.empty()) {
    const auto level = log::ParseLevel(o.level);
    if (!level) {
      return Fail(Code::kUsage, "--level '" + o.level + "' is not a level",
                  {"give trace, debug, info, warn, error or fatal"});
    }
    so.min_level = static_cast<int>(*level);
  }
  if (!o.since.empty()) {
    const auto d = monitor::ParseDurationUs(o.since);
    if (!d) {
      return Fail(Code::kUsage, "--since '" + o.since + "' is not a duration",
                  {"give a number and a unit: 90s, 15m, 2h, 1d, 1h30m"});
    }
    const auto now = std::chrono::duration_cast<std::chrono::microseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    so.since_us = now - *d;
  }
  return so;
}

// FIELD=STABLE,CANARY: three non-empty parts, two different arms.
Result<CompareSpec> ParseCompare(const std::string& text) {
  const std::size_t eq = text.find('=');
  const std::size_t comma = eq == std::string::npos ? eq : text.find(',', eq);
  if (eq == 0 || eq == std::string::npos || comma == std::string::npos || comma == eq + 1 ||
      comma + 1 == text.size() || text.find(',', comma + 1) != std::string::npos ||
      text.substr(eq + 1, comma - eq - 1) == text.substr(comma + 1)) {
    return Fail(Code::kUsage, "--compare '" + text + "' is not FIELD=STABLE,CANARY",
                {"e.g. --compare model_version=1.0.0,1.1.0 or --compare variant=stable,canary"});
  }
  return CompareSpec{text.substr(0, eq), text.substr(eq + 1, comma - eq - 1),
                     text.substr(comma + 1)};
}

Result<Setup> SetupFrom(const Options& o) {
  Setup setup;
  DLSYS_ASSIGN_OR_RETURN(setup.scan, ScanOptionsFrom(o));
  for (const auto& f : o.fields) {
    DLSYS_ASSIGN_OR_RETURN(auto map, monitor::ParseFieldMap(f));
    setup.scan.fields.push_back(std::move(map));
  }
  if (!o.compare.empty()) {
    DLSYS_ASSIGN_OR_RETURN(setup.compare, ParseCompare(o.compare));
    auto& by = setup.scan.by;  // the arms are told apart by their field
    if (std::find(by.begin(), by.end(), setup.compare->field) == by.end()) {
      by.push_back(setup.compare->field);
    }
  }
  if (!o.window.empty()) {
    const auto w = monitor::ParseDurationUs(o.window);
    if (!w || *w < 100'000) {
      return Fail(Code::kUsage, "--window '" + o.window + "' is not a duration of at least 100ms",
                  {"e.g. --window 1m or --window 30s"});
    }
    setup.window_us = *w;
  }
  setup.show_window = o.follow || !o.window.empty();
  setup.scan.window_us = setup.window_us;
  const std::int64_t tick = setup.window_us / monitor::kTicksPerWindow;
  std::size_t history = 3 * monitor::kTicksPerWindow;
  for (const auto& text : o.alerts) {
    DLSYS_ASSIGN_OR_RETURN(auto rule, monitor::ParseAlertRule(text));
    // `for D` looks at the window ending at every tick of D: D / tick + a window of ticks.
    const auto needed =
        static_cast<std::size_t>((rule.for_us + tick - 1) / tick) + monitor::kTicksPerWindow + 1;
    if (rule.for_us > 0 && needed > monitor::kMaxHistoryTicks) {
      return Fail(Code::kUsage,
                  "--alert '" + core::TerminalSafe(text) + "': 'for' is longer than " +
                      std::to_string(monitor::kMaxHistoryTicks - monitor::kTicksPerWindow - 1) +
                      " ticks of " + Seconds(tick),
                  {"a tick is a tenth of --window: give a longer --window, e.g. --window " +
                   Seconds(std::max<std::int64_t>(60'000'000, rule.for_us / 50))});
    }
    if (rule.for_us > 0) history = std::max(history, needed);
    setup.rules.push_back(std::move(rule));
  }
  // A report charts the whole history kept: as much as the bounds allow.
  if (!o.report.empty()) history = monitor::kMaxHistoryTicks;
  setup.scan.history_ticks = history;
  // Ticks kept in all, per scan thread, are bounded: fewer groups keep more history.
  setup.scan.window_groups =
      std::clamp<std::size_t>(kTickBudget / history, 1, monitor::kMaxWindowGroups);
  setup.utf8 = !o.ascii && LocaleIsUtf8();
  return setup;
}

// Fired alerts are printed (after the table, or in "alerts") and logged as WARN records.
std::vector<monitor::FiredAlert> CheckAlerts(const Setup& setup,
                                             const monitor::ScanSummary& summary,
                                             std::int64_t now_us,
                                             const std::optional<monitor::DriftReport>& drift) {
  monitor::AlertContext context;
  if (drift) {
    for (const auto& f : drift->features) {
      if (f.verdict == monitor::DriftVerdict::kInsufficientData) continue;
      context.drift.push_back({f.feature, f.psi, f.ks_d.value_or(0), f.js, f.ks_d.has_value()});
    }
  }
  context.now_us = now_us;
  context.window_us = setup.show_window ? setup.window_us : 0;
  context.scan_window_us = setup.window_us;
  auto fired = monitor::Evaluate(setup.rules, summary, context);
  for (const auto& a : fired) {
    std::string key = a.feature;
    for (const auto& k : a.key) key += (key.empty() ? "" : " ") + k;
    log::Warn("monitor.alert", "alert fired: " + a.rule)
        .Str("rule", a.rule)
        .Str("group", key)
        .Num("value", a.value)
        .Emit();
  }
  return fired;
}

std::int64_t WallClockUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Filter mode output: records rendered (or passed through with --json) into a buffer written
// in large pieces.
class RecordPrinter {
 public:
  RecordPrinter(bool json, bool color) : json_(json), color_(color) {}
  ~RecordPrinter() { Flush(); }
  void operator()(std::string_view line) {
    if (json_) {
      buf_.append(line);
      buf_ += '\n';
    } else {
      monitor::RenderRecord(buf_, line, color_);
    }
    ++count_;
    if (buf_.size() >= (64 << 10)) Flush();
  }
  void Flush() {
    if (buf_.empty()) return;
    std::fwrite(buf_.data(), 1, buf_.size(), stdout);
    std::fflush(stdout);
    buf_.clear();
  }
  std::uint64_t count() const { return count_; }

 private:
  bool json_, color_;
  std::string buf_;
  std::uint64_t count_ = 0;
};

}  // namespace monitor_cmd

namespace monitor_remote_cli {
// An ssh:// argument: parsed (kUsage before anything connects), options from the environment,
// ssh started.
Result<monitor::RemoteStream> Open(const std::string& url, bool follow) {
  DLSYS_ASSIGN_OR_RETURN(auto target, monitor::ParseSshUrl(url));
  DLSYS_ASSIGN_OR_RETURN(auto options, monitor::SshOptionsFromEnv());
  return monitor::OpenSsh(target, follow, options);
}
}  // namespace monitor_remote_cli

namespace monitor_cmd {

// --follow: a snapshot every interval (the whole table again, or one JSON object per line) and
// a last one when SIGINT, SIGTERM or SIGHUP arrives (exit 0). On a terminal the table is
// redrawn in place, and at once when the terminal is resized. With --records, matching records
// are printed as they arrive instead.
int Follow(const Options& o, Setup& setup) {
  if (o.files.size() > 1 || (o.files.empty() && ::isatty(STDIN_FILENO))) {
    return ReportError(Error{Code::kUsage, "--follow takes exactly one log file or pipe",
                             {"e.g. dlsys monitor serve.log --follow, or "
                              "kubectl logs -f POD | dlsys monitor --follow"}},
                       o.json);
  }
  const std::string source = o.files.empty() ? "-" : o.files[0];
  const auto interval_us = monitor::ParseDurationUs(o.interval);
  if (!interval_us || *interval_us < 10000) {
    return ReportError(Error{Code::kUsage, "--interval '" + o.interval +
                                               "' is not a duration of at least 10ms",
                             {"e.g. --interval 2s or --interval 500ms"}},
                       o.json);
  }
  const bool tty = ::isatty(STDOUT_FILENO) != 0;
  std::optional<RecordPrinter> printer;
  if (o.records) {
    printer.emplace(o.json, tty && !TermIsDumb());
    setup.scan.on_record = [&printer](std::string_view line) { (*printer)(line); };
  }
  // The stop signals are taken synchronously, so the last snapshot is always printed whole.
  sigset_t stop = BlockStopSignals();
  sigset_t wait_set = stop;
  sigaddset(&wait_set, SIGWINCH);
  pthread_sigmask(SIG_BLOCK, &wait_set, nullptr);
  // ssh://: follow the remote file through ssh's stdout, a pipe like standard input.
  std::optional<monitor::RemoteStream> remote;
  if (monitor::IsSshUrl(source)) {
    auto opened = monitor_remote_cli::Open(source, /*follow=*/true);
    if (!opened) return ReportError(opened.error(), o.json);
    remote.emplace(std::move(*opened));
  }
  auto follower = remote ? monitor::Follower::OpenStream(remote->fd(), source, setup.scan)
                  : source == "-"
                      ? monitor::Follower::OpenStream(STDIN_FILENO, "standard input", setup.scan)
                      : monitor::Follower::Open(source, setup.scan);
  if (!follower) return ReportError(follower.error(), o.json);
  const bool redraw = !o.json && tty && !TermIsDumb();
  const auto started = std::chrono::steady_clock::now();
  auto next = started;
  for (;;) {
    auto polled = (*follower)->Poll();
    if (!polled) return ReportError(polled.error(), o.json);
    if (printer) printer->Flush();
    const auto now = std::chrono::steady_clock::now();
    // Idle: wait for a signal up to 50 ms (or until the next snapshot); busy: only look.
    long wait_ns = 0;
    if (*polled == 0 && now < next) {
      wait_ns = std::min<long>(
          50'000'000, std::chrono::duration_cast<std::chrono::nanoseconds>(next - now).count());
    }
    const timespec wait{0, wait_ns};
    const int sig = sigtimedwait(&wait_set, nullptr, &wait);
    // A stream whose writer closed it has nothing more to say: a last snapshot, then exit.
    const bool last = (sig > 0 && sig != SIGWINCH) || (*follower)->ended();
    // ssh ended by itself: tail -F never does, so the connection or the remote tail failed.
    if (remote && (*follower)->ended()) {
      if (auto done = remote->Finish(); !done) return ReportError(done.error(), o.json);
    }
    if (remote && last) remote->Stop();  // before the last snapshot: the remote tail ends now
    if (printer) {
      if (last) return kExitOk;
      continue;
    }
    if (last || sig == SIGWINCH || std::chrono::steady_clock::now() >= next) {
      const auto summary = (*follower)->Summary();
      Snapshot snap{summary};
      snap.seconds = std::chrono::duration<double>(now - started).count();
      snap.now_us = WallClockUs();
      snap.comparison = Compare(setup, summary);
      snap.drift = DriftOf(setup, summary);
      snap.fired = CheckAlerts(setup, summary, snap.now_us, snap.drift);
      snap.follower = follower->get();
      std::string out;
      if (o.json) {
        out = RenderJson(o, setup, snap, false);
      } else {
        out = "== " + monitor::FormatRfc3339Us(snap.now_us).substr(0, 19) + "Z  " +
              core::TerminalSafe(source == "-" ? "standard input" : source) + "  (rotated " +
              std::to_string((*follower)->rotations()) + "x, truncated " +
              std::to_string((*follower)->truncations()) + "x)\n" +
              RenderAllText(o, setup, snap);
      }
      if (redraw) {
        const auto [cols, rows] = TerminalSize();
        out = InPlace(FitToTerminal(out, cols, rows));
      }
      if (!o.json && !redraw) out += "\n";
      std::fwrite(out.data(), 1, out.size(), stdout);
      std::fflush(stdout);
      if (last) {
        if (auto w = WriteReport(o, setup, snap); !w) return ReportError(w.error(), o.json);
      }
      if (sig != SIGWINCH) {
        next += std::chrono::microseconds(*interval_us);
        if (next < now) next = now + std::chrono::microseconds(*interval_us);
      }
    }
    if (last) return kExitOk;
  }
}

// --url: the metrics of a running server instead of logs (tools/monitor_url.cpp).
int RunUrl(const Options& o) {
  std::string other;
  if (!o.files.empty()) other = "log files";
  if (!o.alerts.empty()) other = "--alert";
  if (!o.compare.empty()) other = "--compare";
  if (!o.since.empty()) other = "--since";
  if (!o.level.empty()) other = "--level";
  if (!o.fields.empty()) other = "--field";
  if (o.records) other = "--records";
  if (!o.baseline.empty()) other = "--baseline";
  if (!o.report.empty()) other = "--report";
  if (o.follow) other = "--follow";
  if (!other.empty()) {
    return ReportError(Error{Code::kUsage, "--url reads a server's metrics; it takes no " + other,
                             {"--url takes --interval, --window, --once, --by, --where and --json; "
                              "logs are read without --url"}},
                       o.json);
  }
  return monitor_url::Run({o.url, o.interval, o.window.empty() ? "1m" : o.window, o.once, o.json,
                           o.by, o.where});
}

// Whether the inputs can be followed: one plain (not compressed) file, one ssh:// log, or
// standard input as a pipe.
bool Followable(const Options& o) {
  if (o.files.empty()) return !::isatty(STDIN_FILENO);
  if (o.files.size() != 1) return false;
  if (o.files[0] == "-" || monitor::IsSshUrl(o.files[0])) return true;
  core::UniqueFd fd(::open(o.files[0].c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  struct stat st {};
  if (!fd || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
  unsigned char magic[4] = {};
  const ssize_t n = ::pread(fd.get(), magic, sizeof magic, 0);
  const bool gzip = n >= 2 && magic[0] == 0x1f && magic[1] == 0x8b;
  const bool zstd = n >= 4 && magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f &&
                    magic[3] == 0xfd;
  return !gzip && !zstd;
}

int Run(Options o) {
  if (!o.url.empty()) return RunUrl(o);
  if (o.once && o.follow) {
    return ReportError(Error{Code::kUsage, "--once and --follow exclude each other",
                             {"--once prints one summary; --follow keeps a live view"}},
                       o.json);
  }
  // Stats mode on a terminal is a live view of what it can follow; into a pipe or a file, with
  // --json, or over several or compressed inputs, one summary (as --once).
  if (!o.once && !o.follow && !o.records && !o.json && ::isatty(STDOUT_FILENO) && Followable(o)) {
    o.follow = true;
  }
  auto setup = SetupFrom(o);
  if (!setup) return ReportError(setup.error(), o.json);
  if (o.records && (!o.alerts.empty() || !o.compare.empty() || !o.baseline.empty() ||
                    !o.report.empty())) {
    return ReportError(Error{Code::kUsage,
                             "--records prints records; it takes no --alert, --compare, --baseline "
                             "or --report",
                             {"summarize (without --records) to check rules or compare arms"}},
                       o.json);
  }
  if (auto loaded = LoadBaseline(o, *setup); !loaded) return ReportError(loaded.error(), o.json);
  if (o.follow) return Follow(o, *setup);
  if (o.files.empty()) {
    if (::isatty(STDIN_FILENO)) {
      return ReportError(Error{Code::kUsage, "no log to read: standard input is a terminal",
                               {"give log files, or pipe one: tail -n 100000 serve.log | "
                                "dlsys monitor"}},
                         o.json);
    }
    o.files.push_back("-");
  }
  std::optional<RecordPrinter> printer;
  if (o.records) {
    printer.emplace(o.json, ::isatty(STDOUT_FILENO) && !TermIsDumb());
    setup->scan.on_record = [&printer](std::string_view line) { (*printer)(line); };
  }
  const auto started = std::chrono::steady_clock::now();
  // ssh:// inputs: one ssh each, read as /dev/fd/N; a failed ssh explains an empty stream.
  std::vector<monitor::RemoteStream> remotes;
  std::vector<std::string> inputs = o.files;
  for (auto& in : inputs) {
    if (!monitor::IsSshUrl(in)) continue;
    auto opened = monitor_remote_cli::Open(in, /*follow=*/false);
    if (!opened) return ReportError(opened.error(), o.json);
    remotes.push_back(std::move(*opened));
    in = "/dev/fd/" + std::to_string(remotes.back().fd());
  }
  auto summary = monitor::Scan(inputs, setup->scan);
  if (!summary) return ReportError(summary.error(), o.json);  // ~RemoteStream stops ssh
  for (auto& r : remotes) {
    if (auto done = r.Finish(); !done) return ReportError(done.error(), o.json);
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  log::Info("monitor.scan", "summarized " + std::to_string(summary->requests) + " requests")
      .Int("requests", static_cast<std::int64_t>(summary->requests))
      .Int("bad_lines", static_cast<std::int64_t>(summary->bad_lines))
      .Int("bytes", static_cast<std::int64_t>(summary->bytes))
      .Num("duration_ms", seconds * 1e3)
      .Emit();
  if (printer) {
    printer->Flush();
    if (summary->bad_lines > 0) {
      std::fprintf(stderr, "dlsys monitor: %llu bad lines skipped\n",
                   static_cast<unsigned long long>(summary->bad_lines));
    }
    return kExitOk;
  }
  Snapshot snap{*summary};
  snap.seconds = seconds;
  snap.now_us = summary->last_us;
  snap.comparison = Compare(*setup, *summary);
  snap.drift = DriftOf(*setup, *summary);
  snap.fired = CheckAlerts(*setup, *summary, snap.now_us, snap.drift);
  if (auto w = WriteReport(o, *setup, snap); !w) return ReportError(w.error(), o.json);
  const std::string out = o.json ? RenderJson(o, *setup, snap, true) : RenderAllText(o, *setup, snap);
  std::fwrite(out.data(), 1, out.size(), stdout);
  return snap.fired.empty() ? kExitOk : kExitAlert;
}

}  // namespace monitor_cmd

void RegisterMonitor(CLI::App& app, RunFn& run) {
  auto o = std::make_shared<monitor_cmd::Options>();
  auto* sub = app.add_subcommand(
      "monitor",
      "Model health from JSON-lines logs or a server's metrics: rate, errors, latency windows, "
      "canary verdict, drift, alerts; a live view, a summary or an HTML report");
  sub->add_option("files", o->files,
                  "JSON-lines logs (plain, gzip or zstd; '-' = standard input, the default when "
                  "it is a pipe; ssh://[USER@]HOST[:PORT]/PATH = a remote log read through ssh)");
  sub->add_flag("--once", o->once,
                "print one summary and exit (the default when standard output is not a terminal, "
                "with --json, or over several or compressed inputs)");
  sub->add_flag("--follow", o->follow,
                "a live view: follow one log like tail -F (rotation, truncation), a pipe or an "
                "ssh:// log, and show the summary every --interval; stop with Ctrl-C (the default "
                "on a terminal)");
  sub->add_option("--interval", o->interval, "time between --follow summaries (default 2s)");
  sub->add_option("--window", o->window,
                  "sliding window for rates, errors and quantiles (default 1m); shown when "
                  "following, or with --once when given (then alert rules look at it too)");
  sub->add_option("--by", o->by,
                  "group by these fields, comma-separated (default model,model_version)");
  sub->add_option("--where", o->where, "only records whose FIELD equals VALUE (repeatable)")
      ->type_name("FIELD=VALUE");
  sub->add_option("--level", o->level, "only records at this level or above (e.g. warn)");
  sub->add_option("--field", o->fields,
                  "read a field from elsewhere in a foreign log (repeatable): NAME=PATH[*FACTOR], "
                  "PATH a key or a JSON Pointer; e.g. latency_ms=request_time*1000")
      ->type_name("NAME=PATH");
  sub->add_flag("--records", o->records,
                "filter mode: print the matching records (readable, coloured on a terminal; "
                "unchanged with --json) instead of a summary");
  sub->add_flag("--ascii", o->ascii,
                "draw trends with ASCII characters (the default when the locale is not UTF-8)");
  sub->add_option("--compare", o->compare,
                  "compare a canary with stable: 5xx rate (z-test) and latency (KS test), with a "
                  "verdict and the sample size still needed")
      ->type_name("FIELD=STABLE,CANARY");
  sub->add_option("--alert", o->alerts,
                  "a rule such as 'p99_ms > 50 for 5m', 'error_rate >= 0.01' or "
                  "'psi(prediction) > 0.25', checked per group (repeatable); a summary where one "
                  "fires exits 7")
      ->type_name("RULE");
  sub->add_option("--since", o->since, "only records stamped within this duration (e.g. 15m)");
  sub->add_option("--baseline", o->baseline,
                  "drift: compare sampled inputs and predictions with an archive's examples "
                  "(MODEL.dlsys, verified) or a reference log, by PSI, KS and Jensen-Shannon")
      ->type_name("ARCHIVE|LOG");
  sub->add_option("--baseline-window", o->baseline_window,
                  "only the baseline log's records stamped in [FROM, TO)")
      ->type_name("FROM/TO");
  AddTrustOptions(sub, o->trust, o->allow_unsigned, ", for --baseline ARCHIVE",
                  "accept a --baseline archive that is unsigned or not signed by a trusted key");
  sub->add_option("--report", o->report,
                  "also write a self-contained HTML page (inline SVG charts, no scripts, no "
                  "network): latency and throughput over time, canary verdict, drift, alerts")
      ->type_name("FILE.html");
  sub->add_option("--url", o->url,
                  "scrape a running dlsys serve's Prometheus metrics every --interval instead of "
                  "reading logs: rates and quantiles as PromQL computes them")
      ->type_name("http://HOST:PORT/metrics");

  sub->add_flag("--json", o->json,
                "print JSON (schemas/monitor-summary.schema.json), also on failure");
  sub->footer(
      "A record is a request when it has a numeric 'status' or 'latency_ms' (dlsys serve writes\n"
      "one per request: docs/logging.md); other records are counted, not summarized. Lines that\n"
      "are not one JSON object, are over 1 MiB, are not UTF-8 or give a known field the wrong\n"
      "type are counted as bad lines, never fatal. Plain files are read by every core.\n"
      "Latency quantiles come from a fixed-memory sketch accurate to 1% (docs/monitoring.md).\n"
      "Colour follows the terminal; NO_COLOR or TERM=dumb turn it off.\n\n"
      "Examples:\n"
      "  dlsys monitor serve.log\n"
      "  dlsys monitor serve.log.1.gz serve.log --by model_version --where model=mlp16\n"
      "  dlsys monitor serve.log --since 15m --json | jq '.groups[0].latency_ms.p99'\n"
      "  dlsys monitor serve.log --follow --interval 5s --window 5m\n"
      "  dlsys monitor ssh://deploy@web1/var/log/dlsys/serve.log --follow\n"
      "  dlsys monitor serve.log --baseline mlp-1.0.0.dlsys --trust release.pub --report today.html\n"
      "  dlsys monitor --url http://127.0.0.1:8000/metrics --window 1m\n"
      "  dlsys monitor serve.log --records --level warn\n"
      "  dlsys monitor access.log --field latency_ms=request_time*1000 --by uri\n"
      "  dlsys monitor serve.log --window 10m --alert 'p99_ms > 50 for 5m' --alert "
      "'error_rate > 0.01' || page-someone");
  sub->callback([o, &run] { run = [o] { return monitor_cmd::Run(*o); }; });
}

}  // namespace dlsys::cli
