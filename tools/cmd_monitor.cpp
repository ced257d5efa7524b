// dlsys monitor: summarize requests in JSON-lines logs (dlsys serve's records or any JSON log)
// per model and version: rate, status classes, latency quantiles, batch size.
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string_view>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "core/text.h"
#include "log/log.h"
#include "monitor/alert.h"
#include "monitor/compare.h"
#include "monitor/scan.h"

namespace dlsys::cli {
namespace monitor_cmd {

struct Options {
  std::vector<std::string> files;
  std::vector<std::string> by;
  std::vector<std::string> where;
  std::vector<std::string> alerts;
  std::string compare;  // FIELD=STABLE,CANARY
  std::string level;
  std::string since;
  bool once = false;
  bool follow = false;
  std::string interval = "2s";
  bool json = false;
};

// A frame that replaces the previous one without flicker: cursor home, each line overwritten
// and cleared to its end, then everything below cleared; written with one write().
std::string InPlace(const std::string& frame) {
  std::string out = "\x1b[H";
  std::size_t at = 0;
  while (at < frame.size()) {
    const std::size_t nl = std::min(frame.find('\n', at), frame.size());
    out.append(frame, at, nl - at);
    out += "\x1b[K\n";
    at = nl + 1;
  }
  return out + "\x1b[J";
}

bool TermIsDumb() {
  const char* term = std::getenv("TERM");
  return term == nullptr || std::string_view(term) == "dumb" || std::getenv("NO_COLOR") != nullptr;
}

std::string Fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

// Milliseconds with three significant digits or more: 0.152, 12.6, 1234.
std::string Ms(double v) {
  if (v < 10) return Fixed(v, 3);
  if (v < 100) return Fixed(v, 2);
  if (v < 1000) return Fixed(v, 1);
  return Fixed(v, 0);
}

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

std::optional<Comparison> Compare(const Options& o, const monitor::ScanOptions& so,
                                  const monitor::ScanSummary& summary) {
  if (o.compare.empty()) return std::nullopt;
  Comparison cmp;
  const std::size_t eq = o.compare.find('=');
  const std::size_t comma = o.compare.find(',', eq);
  cmp.field = o.compare.substr(0, eq);
  cmp.stable = o.compare.substr(eq + 1, comma - eq - 1);
  cmp.canary = o.compare.substr(comma + 1);
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

std::string RenderAlertsText(const std::vector<monitor::FiredAlert>& fired) {
  std::string out;
  for (const auto& a : fired) {
    std::string key;
    for (const auto& k : a.key) key += (key.empty() ? "" : " ") + core::Truncate(core::TerminalSafe(k), 40);
    out += "ALERT " + core::TerminalSafe(a.rule) + ": " + key + " (" + Fixed(a.value, 4) + ")\n";
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
  std::vector<std::size_t> width(head.size(), 0);
  for (const auto& r : rows) {
    for (std::size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], core::CharCount(r[i]));
  }
  for (const auto& r : rows) {
    std::string line;
    for (std::size_t i = 0; i < r.size(); ++i) {
      const std::size_t pad = width[i] - core::CharCount(r[i]);
      if (i < so.by.size()) {  // keys left-aligned, numbers right-aligned
        line += r[i] + std::string(pad, ' ');
      } else {
        line += std::string(pad, ' ') + r[i];
      }
      line += i + 1 < r.size() ? "  " : "";
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  }
  if (s.groups_capped) {
    out += "(more than " + std::to_string(so.max_groups) +
           " groups: the rest are counted as '(other)')\n";
  }
  out += "err% = 5xx / requests; quantiles within 1% of the true value (DDSketch)\n";
  return out;
}

// pretty = false: one line (a snapshot in --follow's stream of JSON lines).
std::string RenderJson(const Options& o, const monitor::ScanOptions& so,
                       const monitor::ScanSummary& s, double seconds,
                       const std::vector<monitor::FiredAlert>& fired,
                       const std::optional<Comparison>& comparison, bool pretty = true,
                       const monitor::Follower* follower = nullptr) {
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
  j["seconds"] = seconds;
  j["groups_capped"] = s.groups_capped;
  j["quantile_relative_accuracy"] = monitor::QuantileSketch::kRelativeAccuracy;
  if (follower) {
    j["follow"] = {{"rotations", follower->rotations()},
                   {"truncations", follower->truncations()}};
  }
  if (comparison) j["comparison"] = ComparisonJson(*comparison);
  j["alerts"] = nlohmann::json::array();
  for (const auto& a : fired) {
    nlohmann::json e;
    e["rule"] = a.rule;
    e["key"] = nlohmann::json::object();
    for (std::size_t i = 0; i < so.by.size() && i < a.key.size(); ++i) e["key"][so.by[i]] = a.key[i];
    e["value"] = a.value;
    j["alerts"].push_back(std::move(e));
  }
  j["groups"] = nlohmann::json::array();
  for (const auto& g : s.groups) {
    nlohmann::json e;
    e["key"] = nlohmann::json::object();
    for (std::size_t i = 0; i < so.by.size() && i < g.key.size(); ++i) e["key"][so.by[i]] = g.key[i];
    e["requests"] = g.requests;
    e["status_4xx"] = g.status_4xx;
    e["status_5xx"] = g.status_5xx;
    e["error_rate"] = g.requests ? static_cast<double>(g.status_5xx) /
                                       static_cast<double>(g.requests)
                                 : 0.0;
    e["rate_per_s"] = g.RatePerSecond();
    e["first"] = g.first_us ? nlohmann::json(monitor::FormatRfc3339Us(g.first_us)) : nullptr;
    e["last"] = g.last_us ? nlohmann::json(monitor::FormatRfc3339Us(g.last_us)) : nullptr;
    const auto& l = g.latency_ms;
    e["latency_ms"] = {{"count", l.count()}, {"mean", l.mean()},          {"min", l.min()},
                       {"p50", l.Quantile(0.5)}, {"p95", l.Quantile(0.95)}, {"p99", l.Quantile(0.99)},
                       {"max", l.max()}};
    e["batch_size_mean"] = g.batch_size_count ? nlohmann::json(g.batch_size_sum /
                                                               static_cast<double>(
                                                                   g.batch_size_count))
                                              : nullptr;
    j["groups"].push_back(std::move(e));
  }
  return (pretty ? j.dump(2, ' ', true) : j.dump(-1, ' ', true)) + "\n";
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
  if (!o.compare.empty()) {
    const std::size_t eq = o.compare.find('=');
    const std::size_t comma = eq == std::string::npos ? eq : o.compare.find(',', eq);
    if (eq == 0 || eq == std::string::npos || comma == std::string::npos || comma == eq + 1 ||
        comma + 1 == o.compare.size() || o.compare.find(',', comma + 1) != std::string::npos ||
        o.compare.substr(eq + 1, comma - eq - 1) == o.compare.substr(comma + 1)) {
      return Fail(Code::kUsage, "--compare '" + o.compare + "' is not FIELD=STABLE,CANARY",
                  {"e.g. --compare model_version=1.0.0,1.1.0 or --compare variant=stable,canary"});
    }
    const std::string field = o.compare.substr(0, eq);
    if (std::find(so.by.begin(), so.by.end(), field) == so.by.end()) so.by.push_back(field);
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

// Fired alerts are printed (after the table, or in "alerts") and logged as WARN records.
std::vector<monitor::FiredAlert> CheckAlerts(const std::vector<monitor::AlertRule>& rules,
                                             const monitor::ScanSummary& summary) {
  auto fired = monitor::Evaluate(rules, summary);
  for (const auto& a : fired) {
    std::string key;
    for (const auto& k : a.key) key += (key.empty() ? "" : " ") + k;
    log::Warn("monitor.alert", "alert fired: " + a.rule)
        .Str("rule", a.rule)
        .Str("group", key)
        .Num("value", a.value)
        .Emit();
  }
  return fired;
}

// --follow: a snapshot every interval (the whole table again, or one JSON object per line) and
// a last one when SIGINT, SIGTERM or SIGHUP arrives (exit 0). On a terminal the table is
// redrawn in place.
int Follow(const Options& o, const monitor::ScanOptions& so,
           const std::vector<monitor::AlertRule>& rules) {
  if (o.files.size() != 1 || o.files[0] == "-") {
    return ReportError(Error{Code::kUsage, "--follow takes exactly one log file",
                             {"e.g. dlsys monitor serve.log --follow (standard input is "
                              "summarized once it ends: tail -n 100000 serve.log | dlsys monitor)"}},
                       o.json);
  }
  const auto interval_us = monitor::ParseDurationUs(o.interval);
  if (!interval_us || *interval_us < 10000) {
    return ReportError(Error{Code::kUsage, "--interval '" + o.interval +
                                               "' is not a duration of at least 10ms",
                             {"e.g. --interval 2s or --interval 500ms"}},
                       o.json);
  }
  // The stop signals are taken synchronously, so the last snapshot is always printed whole.
  sigset_t stop = BlockStopSignals();
  auto follower = monitor::Follower::Open(o.files[0], so);
  if (!follower) return ReportError(follower.error(), o.json);
  const bool redraw = !o.json && ::isatty(STDOUT_FILENO) && !TermIsDumb();
  const auto started = std::chrono::steady_clock::now();
  auto next = started;
  for (;;) {
    auto polled = (*follower)->Poll();
    if (!polled) return ReportError(polled.error(), o.json);
    const auto now = std::chrono::steady_clock::now();
    // Idle: wait for a signal up to 50 ms (or until the next snapshot); busy: only look.
    long wait_ns = 0;
    if (*polled == 0 && now < next) {
      wait_ns = std::min<long>(
          50'000'000, std::chrono::duration_cast<std::chrono::nanoseconds>(next - now).count());
    }
    const timespec wait{0, wait_ns};
    const bool last = sigtimedwait(&stop, nullptr, &wait) > 0;
    if (last || std::chrono::steady_clock::now() >= next) {
      const auto summary = (*follower)->Summary();
      const double seconds = std::chrono::duration<double>(now - started).count();
      const auto fired = CheckAlerts(rules, summary);
      std::string out;
      if (o.json) {
        out = RenderJson(o, so, summary, seconds, fired, Compare(o, so, summary), false,
                         follower->get());
      } else {
        const auto wall = std::chrono::duration_cast<std::chrono::microseconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
        out = "== " + monitor::FormatRfc3339Us(wall).substr(0, 19) + "Z  " +
              core::TerminalSafe(o.files[0]) + "  (rotated " +
              std::to_string((*follower)->rotations()) + "x, truncated " +
              std::to_string((*follower)->truncations()) + "x)\n" +
              RenderText(o, so, summary, seconds) +
              RenderComparisonText(Compare(o, so, summary)) + RenderAlertsText(fired);
      }
      if (redraw) out = InPlace(out);
      if (!o.json && !redraw) out += "\n";
      std::fwrite(out.data(), 1, out.size(), stdout);
      std::fflush(stdout);
      next += std::chrono::microseconds(*interval_us);
      if (next < now) next = now + std::chrono::microseconds(*interval_us);
    }
    if (last) return kExitOk;
  }
}

int Run(Options o) {
  auto so = ScanOptionsFrom(o);
  if (!so) return ReportError(so.error(), o.json);
  std::vector<monitor::AlertRule> rules;
  for (const auto& text : o.alerts) {
    auto rule = monitor::ParseAlertRule(text);
    if (!rule) return ReportError(rule.error(), o.json);
    rules.push_back(std::move(*rule));
  }
  if (o.follow) return Follow(o, *so, rules);
  if (o.files.empty()) {
    if (::isatty(STDIN_FILENO)) {
      return ReportError(Error{Code::kUsage, "no log to read: standard input is a terminal",
                               {"give log files, or pipe one: tail -n 100000 serve.log | "
                                "dlsys monitor"}},
                         o.json);
    }
    o.files.push_back("-");
  }
  const auto started = std::chrono::steady_clock::now();
  auto summary = monitor::Scan(o.files, *so);
  if (!summary) return ReportError(summary.error(), o.json);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  log::Info("monitor.scan", "summarized " + std::to_string(summary->requests) + " requests")
      .Int("requests", static_cast<std::int64_t>(summary->requests))
      .Int("bad_lines", static_cast<std::int64_t>(summary->bad_lines))
      .Int("bytes", static_cast<std::int64_t>(summary->bytes))
      .Num("duration_ms", seconds * 1e3)
      .Emit();
  const auto fired = CheckAlerts(rules, *summary);
  const auto comparison = Compare(o, *so, *summary);
  const std::string out = o.json ? RenderJson(o, *so, *summary, seconds, fired, comparison)
                                 : RenderText(o, *so, *summary, seconds) +
                                       RenderComparisonText(comparison) + RenderAlertsText(fired);
  std::fwrite(out.data(), 1, out.size(), stdout);
  return fired.empty() ? kExitOk : kExitAlert;
}

}  // namespace monitor_cmd

void RegisterMonitor(CLI::App& app, RunFn& run) {
  auto o = std::make_shared<monitor_cmd::Options>();
  auto* sub = app.add_subcommand(
      "monitor", "Summarize requests in JSON-lines logs: rate, errors, latency per model version");
  sub->add_option("files", o->files,
                  "JSON-lines logs (plain, gzip or zstd; '-' = standard input, the default when "
                  "it is a pipe)");
  sub->add_flag("--once", o->once, "print one summary and exit (the default without --follow)");
  sub->add_flag("--follow", o->follow,
                "follow one log file like tail -F (rotation, truncation) and print a summary "
                "every --interval; stop with Ctrl-C");
  sub->add_option("--interval", o->interval, "time between --follow summaries (default 2s)");
  sub->add_option("--by", o->by,
                  "group by these fields, comma-separated (default model,model_version)");
  sub->add_option("--where", o->where, "only records whose FIELD equals VALUE (repeatable)")
      ->type_name("FIELD=VALUE");
  sub->add_option("--level", o->level, "only records at this level or above (e.g. warn)");
  sub->add_option("--compare", o->compare,
                  "compare a canary with stable: 5xx rate (z-test) and latency (KS test), with a "
                  "verdict and the sample size still needed")
      ->type_name("FIELD=STABLE,CANARY");
  sub->add_option("--alert", o->alerts,
                  "a rule such as 'p99_ms > 50' or 'error_rate >= 0.01', checked per group "
                  "(repeatable); a summary where one fires exits 7")
      ->type_name("RULE");
  sub->add_option("--since", o->since, "only records stamped within this duration (e.g. 15m)");
  sub->add_flag("--json", o->json,
                "print JSON (schemas/monitor-summary.schema.json), also on failure");
  sub->footer(
      "A record is a request when it has a numeric 'status' or 'latency_ms' (dlsys serve writes\n"
      "one per request: docs/logging.md); other records are counted, not summarized. Lines that\n"
      "are not one JSON object, are over 1 MiB, are not UTF-8 or give a known field the wrong\n"
      "type are counted as bad lines, never fatal. Plain files are read by every core.\n"
      "Latency quantiles come from a fixed-memory sketch accurate to 1% (docs/monitoring.md).\n\n"
      "Examples:\n"
      "  dlsys monitor serve.log\n"
      "  dlsys monitor serve.log.1.gz serve.log --by model_version --where model=mlp16\n"
      "  dlsys monitor serve.log --since 15m --json | jq '.groups[0].latency_ms.p99'\n"
      "  dlsys monitor serve.log --follow --interval 5s\n"
      "  dlsys monitor serve.log --since 10m --alert 'p99_ms > 50' --alert 'error_rate > 0.01' "
      "|| page-someone");
  sub->callback([o, &run] { run = [o] { return monitor_cmd::Run(*o); }; });
}

}  // namespace dlsys::cli
