// dlsys monitor --url: the per model version view of a running server, from its /metrics.
#include "monitor_url.h"
#include "monitor_view.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "cli.h"
#include "core/text.h"
#include "monitor/prom.h"
#include "monitor/scan.h"

namespace dlsys::cli::monitor_url {
namespace {

using Clock = std::chrono::steady_clock;
using monitor_view::Fixed;

// At most this many scrapes in a window (a point per series each), so memory stays bounded.
constexpr std::int64_t kMaxScrapesPerWindow = 10000;
constexpr std::int64_t kMinIntervalUs = 100000;

struct Settings {
  monitor::ScrapeUrl url;
  std::int64_t interval_us = 0;
  std::int64_t window_us = 0;
  monitor::PromGroupOptions groups;
  std::chrono::milliseconds timeout{0};
};

Result<Settings> SettingsFrom(const UrlArgs& a) {
  Settings s;
  DLSYS_ASSIGN_OR_RETURN(s.url, monitor::ParseScrapeUrl(a.url));
  const auto interval = monitor::ParseDurationUs(a.interval);
  if (!interval || *interval < kMinIntervalUs) {
    return Fail(Code::kUsage, "--interval '" + a.interval + "' is not a duration of at least 100ms",
                {"e.g. --interval 2s or --interval 500ms"});
  }
  const auto window = monitor::ParseDurationUs(a.window);
  if (!window || *window < *interval || *window / *interval > kMaxScrapesPerWindow) {
    return Fail(Code::kUsage, "--window '" + a.window + "' is not a duration from --interval (" +
                                  a.interval + ") to 10000 intervals",
                {"e.g. --window 1m or --window 5m (rate() over that range, as in PromQL)"});
  }
  s.interval_us = *interval;
  s.window_us = *window;
  // Prometheus's scrape_timeout is at most the interval; give slow servers at least 1 s.
  s.timeout = std::chrono::milliseconds(std::clamp<std::int64_t>(*interval / 1000, 1000, 10000));
  if (!a.by.empty()) {
    s.groups.by.clear();
    for (const auto& b : a.by) {
      for (std::size_t at = 0; at <= b.size();) {
        const std::size_t comma = std::min(b.find(',', at), b.size());
        const std::string f = b.substr(at, comma - at);
        if (f.empty()) {
          return Fail(Code::kUsage, "--by '" + b + "' names an empty label",
                      {"give label names separated by commas, e.g. --by model,version"});
        }
        s.groups.by.push_back(f);
        at = comma + 1;
      }
    }
  }
  for (const auto& w : a.where) {
    const std::size_t eq = w.find('=');
    if (eq == std::string::npos || eq == 0) {
      return Fail(Code::kUsage, "--where '" + w + "' is not LABEL=VALUE",
                  {"e.g. --where model=iris-mlp or --where version=1.0.0"});
    }
    s.groups.where.emplace_back(w.substr(0, eq), w.substr(eq + 1));
  }
  return s;
}

// One scrape, parsed. The error names the URL.
Result<monitor::PromExposition> ScrapeOnce(const Settings& s, std::int64_t& time_ms) {
  DLSYS_ASSIGN_OR_RETURN(auto response, monitor::Scrape(s.url, s.timeout));
  time_ms = response.time_ms;
  auto parsed = monitor::ParsePromText(response.body);
  if (!parsed) {
    return tl::unexpected(std::move(parsed.error()).Wrap("the metrics at " + s.url.text +
                                                          " are not the Prometheus text format"));
  }
  return parsed;
}

nlohmann::json Number(double v) {
  if (!std::isfinite(v)) return nullptr;
  if (v == std::floor(v) && std::fabs(v) < 9007199254740992.0) {
    return static_cast<std::int64_t>(v);
  }
  return v;
}

nlohmann::json Ms(double seconds) { return Number(seconds * 1e3); }

// Milliseconds as the log view shows them, from seconds.
std::string MsText(double seconds) { return monitor_view::Ms(seconds * 1e3); }

struct Status {
  std::uint64_t scrapes = 0;
  std::uint64_t errors = 0;
  std::optional<std::string> last_error;
};

std::string RenderJsonLine(const Settings& s, const monitor::PromSummary& sum,
                           const Status& st, bool pretty) {
  nlohmann::json j;
  j["url"] = s.url.text;
  j["by"] = s.groups.by;
  j["time"] = monitor::FormatRfc3339Us(sum.range_end_ms * 1000);
  j["window_seconds"] = static_cast<double>(s.window_us) / 1e6;
  j["range"] = {{"start_ms", sum.range_start_ms},
                {"end_ms", sum.range_end_ms},
                {"seconds", static_cast<double>(sum.range_end_ms - sum.range_start_ms) / 1e3}};
  j["scrapes"] = st.scrapes;
  j["scrapes_in_range"] = sum.scrapes_in_range;
  j["scrape_errors"] = st.errors;
  j["last_error"] = st.last_error ? nlohmann::json(*st.last_error) : nlohmann::json(nullptr);
  j["groups_capped"] = sum.groups_capped;
  j["groups"] = nlohmann::json::array();
  for (const auto& g : sum.groups) {
    nlohmann::json e;
    e["key"] = nlohmann::json::object();
    for (std::size_t i = 0; i < s.groups.by.size() && i < g.key.size(); ++i) {
      e["key"][s.groups.by[i]] = g.key[i];
    }
    const auto& w = g.window;
    e["window"] = {{"requests_per_s", Number(w.requests_per_s)},
                   {"failures_per_s", Number(w.failures_per_s)},
                   {"error_rate", Number(w.error_rate)},
                   {"latency_ms", {{"p50", Ms(w.p50_s)}, {"p95", Ms(w.p95_s)},
                                   {"p99", Ms(w.p99_s)}, {"mean", Ms(w.mean_s)}}},
                   {"batch_size_mean", Number(w.batch_size_mean)}};
    const auto& t = g.total;
    nlohmann::json reasons = nlohmann::json::object();
    for (const auto& [reason, n] : t.failures_by_reason) reasons[reason] = Number(n);
    e["total"] = {{"requests", Number(t.requests)},
                  {"successes", Number(t.successes)},
                  {"failures", Number(t.failures)},
                  {"failures_by_reason", reasons},
                  {"latency_ms", {{"count", Number(t.latency_count)}, {"p50", Ms(t.p50_s)},
                                  {"p95", Ms(t.p95_s)}, {"p99", Ms(t.p99_s)},
                                  {"mean", Ms(t.mean_s)}}},
                  {"inferences", Number(t.inferences)},
                  {"executions", Number(t.executions)},
                  {"batch_size_mean", Number(t.batch_size_mean)},
                  {"queue_depth", Number(t.queue_depth)},
                  {"executing", Number(t.executing)}};
    j["groups"].push_back(std::move(e));
  }
  // Server strings may hold any bytes: replace what is not UTF-8 rather than throw.
  return (pretty ? j.dump(2, ' ', true, nlohmann::json::error_handler_t::replace)
                 : j.dump(-1, ' ', true, nlohmann::json::error_handler_t::replace)) +
         "\n";
}

std::string RenderText(const Settings& s, const monitor::PromSummary& sum, const Status& st) {
  std::string out = "== " + monitor::FormatRfc3339Us(sum.range_end_ms * 1000).substr(0, 19) +
                    "Z  " + core::TerminalSafe(s.url.text) + "  (rate over " +
                    Fixed(static_cast<double>(sum.range_end_ms - sum.range_start_ms) / 1e3, 1) +
                    " s, " + std::to_string(sum.scrapes_in_range) + " scrapes";
  if (st.errors > 0) out += ", " + std::to_string(st.errors) + " failed";
  out += ")\n";
  if (st.last_error) out += "last scrape failed: " + core::TerminalSafe(*st.last_error) + "\n";
  if (sum.groups.empty()) return out + "no dlsys_inference_* series (or none matches --where)\n";
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> head = s.groups.by;
  for (const char* h : {"req/s", "err%", "p50 ms", "p95 ms", "p99 ms", "mean ms", "batch",
                        "requests", "failed", "total p99 ms", "queue"}) {
    head.emplace_back(h);
  }
  rows.push_back(head);
  for (const auto& g : sum.groups) {
    std::vector<std::string> r;
    for (const auto& k : g.key) r.push_back(k.empty() ? "-" : core::Truncate(core::TerminalSafe(k), 40));
    const auto& w = g.window;
    r.push_back(Fixed(w.requests_per_s, 1));
    r.push_back(Fixed(100 * w.error_rate, 2));
    for (double q : {w.p50_s, w.p95_s, w.p99_s, w.mean_s}) r.push_back(MsText(q));
    r.push_back(Fixed(w.batch_size_mean, 2));
    r.push_back(Fixed(g.total.requests, 0));
    r.push_back(Fixed(g.total.failures, 0));
    r.push_back(MsText(g.total.p99_s));
    r.push_back(Fixed(g.total.queue_depth, 0));
    rows.push_back(std::move(r));
  }
  out += monitor_view::Table(rows, s.groups.by.size());
  if (sum.groups_capped) {
    out += "(more than " + std::to_string(s.groups.max_groups) + " groups: the rest not shown)\n";
  }
  return out +
         "req/s, err% (failed / requests), quantiles and mean: rate() over the range, as PromQL;\n"
         "requests, failed, total p99: since the server started; '-': no data\n";
}

bool TerminalRedraw(bool json) {
  return !json && ::isatty(STDOUT_FILENO) && !monitor_view::TermIsDumb();
}

void Write(const std::string& out) {
  std::fwrite(out.data(), 1, out.size(), stdout);
  std::fflush(stdout);
}

int Once(const Settings& s, bool json) {
  monitor::ScrapeWindow window(s.window_us / 1000, 2);
  Status st;
  for (int i = 0; i < 2; ++i) {
    const auto started = Clock::now();
    std::int64_t time_ms = 0;
    auto parsed = ScrapeOnce(s, time_ms);
    if (!parsed) return ReportError(parsed.error(), json);
    window.Add(*parsed, time_ms);
    ++st.scrapes;
    if (i == 0) {
      const auto next = started + std::chrono::microseconds(s.interval_us);
      std::this_thread::sleep_until(next);
    }
  }
  const auto summary = window.Summarize(s.groups);
  Write(json ? RenderJsonLine(s, summary, st, true) : RenderText(s, summary, st));
  return kExitOk;
}

int Follow(const Settings& s, bool json) {
  // The stop signals are taken synchronously, so the last snapshot is always printed whole.
  sigset_t stop = BlockStopSignals();
  const auto max_scrapes = static_cast<std::size_t>(s.window_us / s.interval_us + 2);
  monitor::ScrapeWindow window(s.window_us / 1000, max_scrapes);
  Status st;
  const bool redraw = TerminalRedraw(json);
  auto next = Clock::now();
  for (;;) {
    std::int64_t time_ms = 0;
    auto parsed = ScrapeOnce(s, time_ms);
    if (parsed) {
      window.Add(*parsed, time_ms);
      ++st.scrapes;
      st.last_error.reset();
    } else if (st.scrapes == 0) {
      return ReportError(parsed.error(), json);  // a wrong URL is told at once
    } else {
      ++st.errors;
      st.last_error = parsed.error().message;
    }
    const auto render = [&] {
      const auto summary = window.Summarize(s.groups);
      std::string out = json ? RenderJsonLine(s, summary, st, false) : RenderText(s, summary, st);
      if (redraw) out = monitor_view::InPlace(out);
      if (!json && !redraw) out += "\n";
      Write(out);
    };
    render();
    next += std::chrono::microseconds(s.interval_us);
    if (next < Clock::now()) next = Clock::now();
    const auto wait = std::chrono::duration_cast<std::chrono::nanoseconds>(next - Clock::now());
    const timespec ts{static_cast<time_t>(wait.count() / 1000000000),
                      static_cast<long>(wait.count() % 1000000000)};
    if (sigtimedwait(&stop, nullptr, &ts) > 0) {
      // The last snapshot: one more scrape if the server still answers.
      if (auto last = ScrapeOnce(s, time_ms)) {
        window.Add(*last, time_ms);
        ++st.scrapes;
        st.last_error.reset();
      }
      render();
      return kExitOk;
    }
  }
}

}  // namespace

int Run(const UrlArgs& args) {
  auto settings = SettingsFrom(args);
  if (!settings) return ReportError(settings.error(), args.json);
  return args.once ? Once(*settings, args.json) : Follow(*settings, args.json);
}

}  // namespace dlsys::cli::monitor_url
