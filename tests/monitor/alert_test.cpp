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
                        Case{"p99_ms > 1 for 5m", 12, "not supported yet"},
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
  const auto fired = Evaluate(rules, s);
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
  EXPECT_TRUE(Evaluate({*ParseAlertRule("rate_per_s < 1")}, s).empty())
      << "no timestamps: no rate";
}

}  // namespace
}  // namespace dlsys::monitor
