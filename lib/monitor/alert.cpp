#include "monitor/alert.h"

#include <cctype>
#include <charconv>
#include <cmath>
#include <optional>
#include <utility>

#include "core/text.h"

namespace dlsys::monitor {
namespace {

using Metric = AlertRule::Metric;
using Op = AlertRule::Op;

constexpr std::pair<std::string_view, Metric> kMetrics[] = {
    {"p50_ms", Metric::kP50},           {"p95_ms", Metric::kP95},
    {"p99_ms", Metric::kP99},           {"mean_ms", Metric::kMean},
    {"max_ms", Metric::kMax},           {"error_rate", Metric::kErrorRate},
    {"rate_per_s", Metric::kRate},      {"requests", Metric::kRequests},
    {"status_4xx", Metric::kStatus4xx}, {"status_5xx", Metric::kStatus5xx},
    {"psi", Metric::kPsi},              {"ks", Metric::kKs},
    {"js", Metric::kJs},
};

tl::unexpected<Error> SyntaxError(std::string_view text, std::size_t at, const std::string& what) {
  const std::string shown = core::TerminalSafe(text);
  // The caret lines up when the rule is plain ASCII (every rule that parses is).
  return Fail(Code::kUsage,
              "--alert '" + shown + "': column " + std::to_string(at + 1) + ": " + what,
              {"  " + shown, "  " + std::string(at, ' ') + "^",
               "a rule is METRIC OP NUMBER [for DURATION], e.g. 'p99_ms > 50 for 5m' or "
               "'error_rate >= 0.01'; METRIC is one of p50_ms p95_ms p99_ms mean_ms max_ms "
               "error_rate rate_per_s requests status_4xx status_5xx; drift: "
               "'psi(prediction) > 0.25', ks(FEATURE), js(FEATURE)"});
}

std::size_t SkipSpaces(std::string_view s, std::size_t at) {
  while (at < s.size() && (s[at] == ' ' || s[at] == '\t')) ++at;
  return at;
}

std::optional<double> ValueOf(Metric m, const GroupStats& g) {
  const auto& l = g.latency_ms;
  switch (m) {
    case Metric::kP50:
      return l.count() ? std::optional(l.Quantile(0.5)) : std::nullopt;
    case Metric::kP95:
      return l.count() ? std::optional(l.Quantile(0.95)) : std::nullopt;
    case Metric::kP99:
      return l.count() ? std::optional(l.Quantile(0.99)) : std::nullopt;
    case Metric::kMean:
      return l.count() ? std::optional(l.mean()) : std::nullopt;
    case Metric::kMax:
      return l.count() ? std::optional(l.max()) : std::nullopt;
    case Metric::kErrorRate:
      return g.requests ? std::optional(static_cast<double>(g.status_5xx) /
                                        static_cast<double>(g.requests))
                        : std::nullopt;
    case Metric::kRate:  // needs two stamped requests at different times
      return g.last_us > g.first_us && g.first_us != 0 ? std::optional(g.RatePerSecond())
                                                       : std::nullopt;
    case Metric::kRequests:
      return static_cast<double>(g.requests);
    case Metric::kStatus4xx:
      return static_cast<double>(g.status_4xx);
    case Metric::kStatus5xx:
      return static_cast<double>(g.status_5xx);
    case Metric::kPsi:
    case Metric::kKs:
    case Metric::kJs:
      return std::nullopt;
  }
  return std::nullopt;
}

bool Holds(double v, Op op, double t) {
  switch (op) {
    case Op::kGt:
      return v > t;
    case Op::kGe:
      return v >= t;
    case Op::kLt:
      return v < t;
    case Op::kLe:
      return v <= t;
    case Op::kEq:
      return v == t;
    case Op::kNe:
      return v != t;
  }
  return false;
}

}  // namespace

Result<AlertRule> ParseAlertRule(std::string_view text) {
  AlertRule rule;
  rule.text = std::string(text);
  std::size_t at = SkipSpaces(text, 0);
  std::size_t end = at;
  while (end < text.size() && (std::isalnum(static_cast<unsigned char>(text[end])) ||
                               text[end] == '_')) {
    ++end;
  }
  const std::string_view name = text.substr(at, end - at);
  bool known = false;
  for (const auto& [n, m] : kMetrics) {
    if (n == name) {
      rule.metric = m;
      known = true;
    }
  }
  if (!known) {
    return SyntaxError(text, at,
                       name.empty() ? "expected a metric"
                                    : "unknown metric '" + core::TerminalSafe(name) + "'");
  }
  at = SkipSpaces(text, end);
  if (rule.IsDrift()) {
    if (at >= text.size() || text[at] != '(') {
      return SyntaxError(text, at, "expected '(' and a feature, e.g. psi(prediction)");
    }
    const std::size_t open = at + 1;
    const std::size_t close = text.find(')', open);
    if (close == std::string_view::npos) return SyntaxError(text, text.size(), "expected ')'");
    const std::string_view feature = text.substr(open, close - open);
    for (std::size_t i = 0; i < feature.size(); ++i) {
      const unsigned char c = static_cast<unsigned char>(feature[i]);
      if (!std::isalnum(c) && c != '_' && c != '.' && c != '-' && c != '@' && c != ':') {
        return SyntaxError(text, open + i, "a feature name has letters, digits and _ . - @ :");
      }
    }
    if (feature.empty()) return SyntaxError(text, open, "expected a feature, e.g. prediction");
    rule.feature = std::string(feature);
    at = SkipSpaces(text, close + 1);
  }
  static constexpr std::pair<std::string_view, Op> kOps[] = {
      {">=", Op::kGe}, {"<=", Op::kLe}, {"==", Op::kEq}, {"!=", Op::kNe},
      {">", Op::kGt},  {"<", Op::kLt}};
  bool op_found = false;
  for (const auto& [s, op] : kOps) {
    if (text.substr(at).starts_with(s)) {
      rule.op = op;
      at += s.size();
      op_found = true;
      break;
    }
  }
  if (!op_found) return SyntaxError(text, at, "expected one of > >= < <= == !=");
  at = SkipSpaces(text, at);
  const char* first = text.data() + at;
  const auto [ptr, ec] = std::from_chars(first, text.data() + text.size(), rule.threshold);
  if (ec != std::errc() || ptr == first || !std::isfinite(rule.threshold)) {
    return SyntaxError(text, at, "expected a number");
  }
  at = SkipSpaces(text, static_cast<std::size_t>(ptr - text.data()));
  if (at != text.size() && text.substr(at).starts_with("for") &&
      (at + 3 == text.size() || text[at + 3] == ' ' || text[at + 3] == '\t')) {
    if (rule.IsDrift()) {
      return SyntaxError(text, at, "'for' applies to request metrics; drift is over everything read");
    }
    at = SkipSpaces(text, at + 3);
    std::size_t stop = at;
    while (stop < text.size() && text[stop] != ' ' && text[stop] != '\t') ++stop;
    const auto d = ParseDurationUs(text.substr(at, stop - at));
    if (!d) return SyntaxError(text, at, "expected a duration such as 30s, 5m or 1h");
    rule.for_us = *d;
    at = SkipSpaces(text, stop);
  }
  if (at != text.size()) return SyntaxError(text, at, "unexpected text after the rule");
  return rule;
}

namespace {

// `for DURATION`: the rule held over the window ending at every tick of the last DURATION.
bool HeldFor(const AlertRule& r, const GroupStats& g, const AlertContext& c) {
  const std::int64_t since = c.now_us - r.for_us;
  if (g.first_us == 0 || g.first_us > since || !g.keeps_ticks) return false;
  const std::int64_t tick = std::max<std::int64_t>(1, c.scan_window_us / kTicksPerWindow);
  for (std::int64_t t = TickOf(since, c.scan_window_us); t <= TickOf(c.now_us, c.scan_window_us);
       ++t) {
    const std::int64_t end = std::min(c.now_us, (t + 1) * tick - 1);
    const auto v = ValueOf(r.metric, WindowOf(g, end, c.scan_window_us));
    if (!v || !Holds(*v, r.op, r.threshold)) return false;
  }
  return true;
}

std::optional<double> DriftOf(Metric m, const DriftValue& d) {
  switch (m) {
    case Metric::kPsi: return d.psi;
    case Metric::kJs: return d.js;
    case Metric::kKs: return d.has_ks ? std::optional(d.ks_d) : std::nullopt;
    default: return std::nullopt;
  }
}

}  // namespace

std::vector<FiredAlert> Evaluate(const std::vector<AlertRule>& rules, const ScanSummary& summary,
                                 const AlertContext& context) {
  std::vector<FiredAlert> fired;
  for (const AlertRule& r : rules) {
    if (r.IsDrift()) {
      for (const DriftValue& d : context.drift) {
        if (d.feature != r.feature && !d.feature.starts_with(r.feature + ".")) continue;
        const auto v = DriftOf(r.metric, d);
        if (v && Holds(*v, r.op, r.threshold)) fired.push_back({r.text, {}, d.feature, *v});
      }
      continue;
    }
    for (const GroupStats& g : summary.groups) {
      std::optional<GroupStats> window;
      if (context.window_us > 0 || r.for_us > 0) {
        window = WindowOf(g, context.now_us,
                          r.for_us > 0 ? context.scan_window_us : context.window_us);
      }
      const GroupStats& now = window ? *window : g;
      const auto v = ValueOf(r.metric, now);
      if (!v || !Holds(*v, r.op, r.threshold)) continue;
      if (r.for_us > 0 && !HeldFor(r, g, context)) continue;
      fired.push_back({r.text, g.key, {}, *v});
    }
  }
  return fired;
}

}  // namespace dlsys::monitor
