#include "monitor/alert.h"

#include <gtest/gtest.h>

namespace dlsys::monitor {
namespace {

GroupStats Group(std::string version, std::uint64_t requests, std::uint64_t s5xx,
                 std::vector<double> latencies) {
  GroupStats g;
  g.key = {"m", std::move(version)};
  g.requests = requests;
  g.status_5xx = s5xx;
  for (double v : latencies) g.latency_ms.Add(v);
  return g;
}

TEST(AlertRule, ParsesEveryMetricAndOperatorWithOrWithoutSpaces) {
  for (const char* text : {"p99_ms > 50", "p99_ms>50", "  error_rate >= 0.01 ", "requests < 1e3",
                           "status_5xx == 0", "mean_ms != 2.5", "rate_per_s <= 10", "max_ms>-1",
                           "p50_ms > 1", "p95_ms > 1", "status_4xx > 0"}) {
    auto r = ParseAlertRule(text);
    EXPECT_TRUE(r) << text << ": " << (r ? "" : r.error().message);
  }
  auto r = ParseAlertRule("error_rate >= 0.01");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->metric, AlertRule::Metric::kErrorRate);
  EXPECT_EQ(r->op, AlertRule::Op::kGe);
  EXPECT_DOUBLE_EQ(r->threshold, 0.01);
  EXPECT_EQ(r->text, "error_rate >= 0.01");
}

TEST(AlertRule, SyntaxErrorsAreUsageErrorsNamingTheColumnWithACaret) {
  struct Case {
    const char* text;
    int column;
    const char* what;
  };
  for (const Case& c : {Case{"", 1, "expected a metric"}, Case{"p98_ms > 1", 1, "unknown metric"},
                        Case{"p99_ms >> 1", 9, "expected a number"},
                        Case{"p99_ms = 1", 8, "expected one of"},
                        Case{"p99_ms > fast", 10, "expected a number"},
                        Case{"p99_ms > 1 ms", 12, "unexpected text"},
                        Case{"p99_ms > 1 for", 15, "expected a duration"},
                        Case{"p99_ms > 1 for 5x", 16, "expected a duration"},
                        Case{"p99_ms > 1 for 5m now", 19, "unexpected text"},
                        Case{"psi prediction > 1", 5, "expected '('"},
                        Case{"psi(pred ction) > 1", 9, "a feature name"},
                        Case{"psi() > 1", 5, "expected a feature"},
                        Case{"psi(prediction > 1", 19, "expected ')'"},
                        Case{"psi(prediction) > 0.2 for 5m", 23, "'for' applies"},
                        Case{"p99_ms > inf", 10, "expected a number"}}) {
    SCOPED_TRACE(c.text);
    auto r = ParseAlertRule(c.text);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Code::kUsage);
    EXPECT_NE(r.error().message.find("column " + std::to_string(c.column) + ":"),
              std::string::npos)
        << r.error().message;
    EXPECT_NE(r.error().message.find(c.what), std::string::npos) << r.error().message;
    ASSERT_GE(r.error().details.size(), 2u);
    EXPECT_EQ(r.error().details[1], "  " + std::string(c.column - 1, ' ') + "^");
  }
}

TEST(AlertRule, FiresPerGroupWhereItHoldsAndNeverOnAMissingMetric) {
  ScanSummary s;
  s.groups.push_back(Group("1", 100, 5, {1, 2, 3, 100}));
  s.groups.push_back(Group("2", 50, 0, {1, 1, 1, 1}));
  s.groups.push_back(Group("3", 10, 0, {}));  // requests without any latency
  // p99 of {1, 2, 3, 100} is 3 (the lower quantile: rank floor(0.99 * 3)): it does not fire.
  std::vector<AlertRule> rules = {*ParseAlertRule("p99_ms > 50"), *ParseAlertRule("max_ms > 50"),
                                  *ParseAlertRule("error_rate > 0.01"),
                                  *ParseAlertRule("requests >= 50"), *ParseAlertRule("max_ms < 2")};
  const auto fired = Evaluate(rules, s, {});
  ASSERT_EQ(fired.size(), 5u);
  EXPECT_EQ(fired[0].rule, "max_ms > 50");
  EXPECT_EQ(fired[0].key, (std::vector<std::string>{"m", "1"}));
  EXPECT_DOUBLE_EQ(fired[0].value, 100);  // the maximum is exact
  EXPECT_EQ(fired[1].rule, "error_rate > 0.01");
  EXPECT_DOUBLE_EQ(fired[1].value, 0.05);
  EXPECT_EQ(fired[2].key[1], "1");
  EXPECT_EQ(fired[3].key[1], "2");
  EXPECT_EQ(fired[4].rule, "max_ms < 2");
  EXPECT_EQ(fired[4].key[1], "2") << "group 3 has no latency: max_ms never fires for it";
  EXPECT_TRUE(Evaluate({*ParseAlertRule("rate_per_s < 1")}, s, {}).empty())
      << "no timestamps: no rate";
}


TEST(AlertRule, ParsesForDurationAndDriftMetrics) {
  auto r = ParseAlertRule("p99_ms > 50 for 5m");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->for_us, 300'000'000);
  EXPECT_EQ(r->threshold, 50);
  r = ParseAlertRule("psi(prediction) > 0.25");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_TRUE(r->IsDrift());
  EXPECT_EQ(r->feature, "prediction");
  EXPECT_EQ(r->metric, AlertRule::Metric::kPsi);
  r = ParseAlertRule("ks ( input.x ) >= 0.1");
  ASSERT_FALSE(r) << "spaces inside the parentheses are not a feature name";
  r = ParseAlertRule("js(input.x)>=0.1");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->feature, "input.x");
}

// One group with requests stamped every second for 10 minutes: p99 is 100 ms for the first
// 6 minutes and 10 ms after, errors only in the last 2 minutes.
ScanSummary Timeline() {
  ScanSummary s;
  GroupStats g;
  g.key = {"m", "1"};
  g.keeps_ticks = true;
  const std::int64_t t0 = 1'800'000'000'000'000;  // a multiple of every tick below
  const std::int64_t tick = 6'000'000;              // 1m window / 10
  for (int i = 0; i < 600; ++i) {
    const std::int64_t t = t0 + i * 1'000'000LL;
    const double latency = i < 360 ? 100 : 10;
    const bool error = i >= 480;
    ++g.requests;
    g.status_5xx += error;
    g.latency_ms.Add(latency);
    if (g.first_us == 0) g.first_us = t;
    g.last_us = t;
    const std::int64_t index = t / tick;
    if (g.ticks.empty() || g.ticks.back().index != index) g.ticks.emplace_back().index = index;
    auto& k = g.ticks.back();
    ++k.requests;
    k.status_5xx += error;
    k.latency_ms.Add(latency);
  }
  s.groups.push_back(std::move(g));
  s.last_us = t0 + 599'000'000;
  return s;
}

TEST(AlertEvaluate, WindowedRulesLookAtTheLastWindowOnly) {
  const ScanSummary s = Timeline();
  AlertContext c;
  c.now_us = s.last_us;
  EXPECT_EQ(Evaluate({*ParseAlertRule("p99_ms > 50")}, s, c).size(), 1u) << "over everything";
  c.window_us = 60'000'000;
  EXPECT_TRUE(Evaluate({*ParseAlertRule("p99_ms > 50")}, s, c).empty()) << "last minute: 10 ms";
  const auto fired = Evaluate({*ParseAlertRule("error_rate > 0.5")}, s, c);
  ASSERT_EQ(fired.size(), 1u);
  EXPECT_DOUBLE_EQ(fired[0].value, 1.0);
  const auto rate = Evaluate({*ParseAlertRule("rate_per_s > 0")}, s, c);
  ASSERT_EQ(rate.size(), 1u);
  EXPECT_NEAR(rate[0].value, 1.0, 0.02) << "60 requests over the last minute";
}

TEST(AlertEvaluate, ForDurationNeedsTheRuleToHoldAtEveryTick) {
  const ScanSummary s = Timeline();
  AlertContext c;
  c.now_us = s.last_us;
  // Errors began 2 minutes ago: the 1m error rate has been > 0.5 for about 90 s.
  EXPECT_EQ(Evaluate({*ParseAlertRule("error_rate > 0.5 for 1m")}, s, c).size(), 1u);
  EXPECT_TRUE(Evaluate({*ParseAlertRule("error_rate > 0.5 for 3m")}, s, c).empty());
  // p99 fell below 50 ms four minutes ago (one window later): holds "for 2m", not "for 5m".
  EXPECT_EQ(Evaluate({*ParseAlertRule("p99_ms < 50 for 2m")}, s, c).size(), 1u);
  EXPECT_TRUE(Evaluate({*ParseAlertRule("p99_ms < 50 for 5m")}, s, c).empty());
  // Longer than the group has been seen: pending, never fired.
  EXPECT_TRUE(Evaluate({*ParseAlertRule("requests > 0 for 11m")}, s, c).empty());
  EXPECT_EQ(Evaluate({*ParseAlertRule("requests > 0 for 9m")}, s, c).size(), 1u);
}

TEST(AlertEvaluate, DriftRulesFirePerFeatureUnderTheirName) {
  AlertContext c;
  c.drift = {{"prediction.scores", 0.4, 0.3, 0.2, true},
             {"prediction.scores.argmax", 0.1, 0, 0.05, false},
             {"predictions_other", 0.9, 0.9, 0.9, true},
             {"input.x", 0.3, 0.2, 0.1, true}};
  const auto fired = Evaluate({*ParseAlertRule("psi(prediction) > 0.25")}, {}, c);
  ASSERT_EQ(fired.size(), 1u);
  EXPECT_EQ(fired[0].feature, "prediction.scores");
  EXPECT_DOUBLE_EQ(fired[0].value, 0.4);
  EXPECT_EQ(Evaluate({*ParseAlertRule("ks(prediction) > 0")}, {}, c).size(), 1u)
      << "no KS for a categorical feature";
  EXPECT_EQ(Evaluate({*ParseAlertRule("js(input.x) >= 0.1")}, {}, c).size(), 1u);
}

}  // namespace
}  // namespace dlsys::monitor
