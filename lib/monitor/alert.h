// Alert rules for dlsys monitor: `p99_ms > 50 for 5m`, `error_rate >= 0.01`,
// `psi(prediction) > 0.25`.
//
//   RULE   = METRIC OP NUMBER [for DURATION]  |  DRIFT(FEATURE) OP NUMBER
//   METRIC = p50_ms | p95_ms | p99_ms | mean_ms | max_ms | error_rate | rate_per_s | requests
//            | status_4xx | status_5xx
//   DRIFT  = psi | ks | js
//   OP     = > | >= | < | <= | == | !=
//
// Spaces between the parts are optional. A request rule is checked against every group and
// fires for each group where it holds; a metric a group cannot have (a latency quantile
// without any latency) never fires. Metrics mean what the summary's columns mean
// (docs/monitoring.md): error_rate = 5xx / requests, quantiles from the sketch (1%).
// `for DURATION` (as in Prometheus): the rule must have held over the sliding window ending
// at every tick of the last DURATION, and the group must have been seen that long. A drift
// rule fires for each feature named FEATURE or below it (psi(prediction) covers
// prediction.scores and prediction.scores.argmax); ks is the KS statistic D.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "monitor/scan.h"

namespace dlsys::monitor {

struct AlertRule {
  enum class Metric {
    kP50,
    kP95,
    kP99,
    kMean,
    kMax,
    kErrorRate,
    kRate,
    kRequests,
    kStatus4xx,
    kStatus5xx,
    kPsi,
    kKs,
    kJs
  };
  enum class Op { kGt, kGe, kLt, kLe, kEq, kNe };
  std::string text;  // as given
  Metric metric = Metric::kP99;
  Op op = Op::kGt;
  double threshold = 0;
  std::string feature;       // drift metrics: the feature (or prefix) in parentheses
  std::int64_t for_us = 0;   // `for DURATION`; 0 = none
  bool IsDrift() const { return metric >= Metric::kPsi; }
};

// kUsage if `text` is not a rule: the message names the 1-based column where it goes wrong and
// what was expected there; the details show the rule with a caret under that column.
[[nodiscard]] Result<AlertRule> ParseAlertRule(std::string_view text);

struct FiredAlert {
  std::string rule;              // AlertRule::text
  std::vector<std::string> key;  // the group's key (empty for a drift rule)
  std::string feature;           // a drift rule's feature
  double value = 0;              // the metric's value for that group or feature
};

// A feature's drift figures, as alert rules see them.
struct DriftValue {
  std::string feature;
  double psi = 0, ks_d = 0, js = 0;
  bool has_ks = false;  // numeric features only
};

struct AlertContext {
  std::int64_t now_us = 0;     // where the windows end
  std::int64_t window_us = 0;  // rules without `for` look at this window; 0 = at everything
  std::int64_t scan_window_us = 60'000'000;  // the scan's ticks (ScanOptions::window_us)
  std::vector<DriftValue> drift;
};

// Every (rule, group or feature) where the rule holds, in rule order, then group order.
std::vector<FiredAlert> Evaluate(const std::vector<AlertRule>& rules, const ScanSummary& summary,
                                 const AlertContext& context);

}  // namespace dlsys::monitor
