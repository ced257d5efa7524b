// Alert rules for dlsys monitor: `p99_ms > 50`, `error_rate >= 0.01`, `requests < 100`.
//
//   RULE   = METRIC OP NUMBER
//   METRIC = p50_ms | p95_ms | p99_ms | mean_ms | max_ms | error_rate | rate_per_s | requests
//            | status_4xx | status_5xx
//   OP     = > | >= | < | <= | == | !=
//
// Spaces between the parts are optional. A rule is checked against every group of a summary
// and fires for each group where it holds; a metric a group cannot have (a latency quantile
// without any latency) never fires. Metrics mean what the summary's columns mean
// (docs/monitoring.md): error_rate = 5xx / requests, quantiles from the sketch (1%).
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
    kStatus5xx
  };
  enum class Op { kGt, kGe, kLt, kLe, kEq, kNe };
  std::string text;  // as given
  Metric metric = Metric::kP99;
  Op op = Op::kGt;
  double threshold = 0;
};

// kUsage if `text` is not a rule: the message names the 1-based column where it goes wrong and
// what was expected there; the details show the rule with a caret under that column.
[[nodiscard]] Result<AlertRule> ParseAlertRule(std::string_view text);

struct FiredAlert {
  std::string rule;              // AlertRule::text
  std::vector<std::string> key;  // the group's key
  double value = 0;              // the metric's value for that group
};

// Every (rule, group) where the rule holds, in rule order, then group order.
std::vector<FiredAlert> Evaluate(const std::vector<AlertRule>& rules, const ScanSummary& summary);

}  // namespace dlsys::monitor
