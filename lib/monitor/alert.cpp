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
};

tl::unexpected<Error> SyntaxError(std::string_view text, std::size_t at, const std::string& what) {
  const std::string shown = core::TerminalSafe(text);
  // The caret lines up when the rule is plain ASCII (every rule that parses is).
  return Fail(Code::kUsage,
              "--alert '" + shown + "': column " + std::to_string(at + 1) + ": " + what,
              {"  " + shown, "  " + std::string(at, ' ') + "^",
               "a rule is METRIC OP NUMBER, e.g. 'p99_ms > 50' or 'error_rate >= 0.01'; "
               "METRIC is one of p50_ms p95_ms p99_ms mean_ms max_ms error_rate rate_per_s "
               "requests status_4xx status_5xx"});
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
  if (at != text.size()) {
    if (text.substr(at).starts_with("for")) {
      return SyntaxError(text, at, "'for DURATION' is not supported yet");
    }
    return SyntaxError(text, at, "unexpected text after the number");
  }
  return rule;
}

std::vector<FiredAlert> Evaluate(const std::vector<AlertRule>& rules,
                                 const ScanSummary& summary) {
  std::vector<FiredAlert> fired;
  for (const AlertRule& r : rules) {
    for (const GroupStats& g : summary.groups) {
      const auto v = ValueOf(r.metric, g);
      if (v && Holds(*v, r.op, r.threshold)) fired.push_back({r.text, g.key, *v});
    }
  }
  return fired;
}

}  // namespace dlsys::monitor
