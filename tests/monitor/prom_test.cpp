#include "monitor/prom.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <thread>

namespace dlsys::monitor {
namespace {

constexpr std::int64_t kMin = 60000;  // ms

// ---- The text format ------------------------------------------------------------------------

constexpr const char* kServeBody =
    "# HELP dlsys_inference_request_success_total Inference requests that succeeded.\n"
    "# TYPE dlsys_inference_request_success_total counter\n"
    "dlsys_inference_request_success_total{model=\"iris-mlp\",version=\"1.0.0\"} 7\n"
    "# TYPE dlsys_inference_request_duration_seconds histogram\n"
    "dlsys_inference_request_duration_seconds_bucket{model=\"iris-mlp\",version=\"1.0.0\","
    "le=\"5e-05\"} 0\n"
    "dlsys_inference_request_duration_seconds_bucket{model=\"iris-mlp\",version=\"1.0.0\","
    "le=\"+Inf\"} 7\n"
    "dlsys_inference_request_duration_seconds_sum{model=\"iris-mlp\",version=\"1.0.0\"} 0.0125\n"
    "process_start_time_seconds 1.7e9\n";

TEST(PromText, ParsesWhatDlsysServeWrites) {
  auto e = ParsePromText(kServeBody);
  ASSERT_TRUE(e) << e.error().message;
  ASSERT_EQ(e->samples.size(), 5u);
  const auto& s = e->samples[0];
  EXPECT_EQ(s.name, "dlsys_inference_request_success_total");
  EXPECT_EQ(s.Label("model"), "iris-mlp");
  EXPECT_EQ(s.Label("version"), "1.0.0");
  EXPECT_EQ(s.Label("absent"), "");
  EXPECT_EQ(s.value, 7);
  EXPECT_FALSE(s.timestamp_ms);
  EXPECT_EQ(e->samples[2].Label("le"), "+Inf");
  EXPECT_EQ(e->samples[4].value, 1.7e9);
  EXPECT_TRUE(e->samples[4].labels.empty());
  ASSERT_EQ(e->types.size(), 2u);
  EXPECT_EQ(e->types[1].second, PromType::kHistogram);
}

TEST(PromText, AcceptsWhatPrometheusAccepts) {
  auto e = ParsePromText(
      "\n   \n# a comment\n#no space\n# HELP x escaped \\\\ and \\n text\n"
      "  x{a=\"q\\\"uo\\\\te\\nnl\\t\" , b=\"\",} -Inf 1700000000123\n"
      "x {a=\"1\" b=\"2\"}\t+Inf\n"
      "y NaN\n"
      "z 1e-3 \n"
      "w .5");  // no final newline
  ASSERT_TRUE(e) << e.error().message;
  ASSERT_EQ(e->samples.size(), 5u);
  EXPECT_EQ(e->samples[0].Label("a"), "q\"uo\\te\nnl\\t");  // \t is kept as written
  EXPECT_EQ(e->samples[0].value, -INFINITY);
  EXPECT_EQ(e->samples[0].timestamp_ms, 1700000000123);
  EXPECT_EQ(e->samples[1].Label("b"), "2");
  EXPECT_EQ(e->samples[1].value, INFINITY);
  EXPECT_TRUE(std::isnan(e->samples[2].value));
  EXPECT_EQ(e->samples[3].value, 1e-3);
  EXPECT_EQ(e->samples[4].value, 0.5);
}

TEST(PromText, EachMalformedLineIsAnErrorNamingItsLine) {
  struct Case {
    const char* line;
    const char* what;
  };
  for (const Case& c : {
           Case{"<html>", "expected a metric name"},
           Case{"9x 1", "expected a metric name"},
           Case{"x", "expected a value"},
           Case{"x{a=\"1\"}", "expected a value"},
           Case{"x one", "is not a number"},
           Case{"x 0x1p3", "is not a number"},
           Case{"x 1_000", "is not a number"},
           Case{"x 1\r", "is not a number"},
           Case{"x +nan", "is not a number"},
           Case{"x{a=1} 1", "expected a quoted label value"},
           Case{"x{a\"1\"} 1", "expected '='"},
           Case{"x{=\"1\"} 1", "expected a label name"},
           Case{"x{a=\"1\",,} 1", "expected a label name"},
           Case{"x{a:b=\"1\"} 1", "expected '='"},
           Case{"x{a=\"1} 1", "unterminated label value"},
           Case{"x{a=\"1\",a=\"2\"} 1", "given twice"},
           Case{"x{a=\"\xff\"} 1", "not valid UTF-8"},
           Case{"x 1 -5", "expected a timestamp"},
           Case{"x 1 12a", "expected the end of the line"},
           Case{"x 1 99999999999999999999", "out of range"},
           Case{"x 1 2 3", "expected the end of the line"},
           Case{"x 1{a=\"b\"}", "expected a timestamp"},
           Case{"# TYPE x", "invalid metric type"},
           Case{"# TYPE x counters", "invalid metric type"},
           Case{"# TYPE x  counter", "invalid metric type"},
           Case{"# TYPE 1x counter", "expected a metric name after TYPE"},
           Case{"# HELP \xff", "expected a metric name after HELP"},
           Case{"# HELP x \xff", "not valid UTF-8"},
       }) {
    const std::string body = std::string("ok 1\n\n") + c.line + "\nok 2\n";
    auto e = ParsePromText(body);
    ASSERT_FALSE(e) << c.line;
    EXPECT_EQ(e.error().code, Code::kInvalid);
    EXPECT_EQ(e.error().message.rfind("line 3: ", 0), 0u) << c.line << ": " << e.error().message;
    EXPECT_NE(e.error().message.find(c.what), std::string::npos)
        << c.line << ": " << e.error().message;
  }
  auto nul = ParsePromText(std::string("x 1\nx\0 1\n", 9));
  ASSERT_FALSE(nul);
  EXPECT_EQ(nul.error().message, "line 2: a NUL byte");
}

TEST(PromText, LimitsBodyLinesSamplesAndLabels) {
  PromLimits limits;
  limits.max_body_bytes = 20;
  EXPECT_FALSE(ParsePromText(std::string(21, '\n'), limits));
  EXPECT_TRUE(ParsePromText(std::string(20, '\n'), limits));
  limits = {};
  limits.max_line_bytes = 10;
  EXPECT_TRUE(ParsePromText("x 1\nabcdefgh 1\n", limits));  // 10 bytes
  auto long_line = ParsePromText("x 1\nabcdefghi 1\n", limits);
  ASSERT_FALSE(long_line);
  EXPECT_NE(long_line.error().message.find("line 2: longer than 10 bytes"), std::string::npos);
  limits = {};
  limits.max_samples = 2;
  auto many = ParsePromText("a 1\nb 2\nc 3\n", limits);
  ASSERT_FALSE(many);
  EXPECT_NE(many.error().message.find("line 3: more than 2 samples"), std::string::npos);
  limits = {};
  limits.max_labels = 2;
  EXPECT_TRUE(ParsePromText("a{x=\"1\",y=\"2\"} 1\n", limits));
  auto labels = ParsePromText("a{x=\"1\",y=\"2\",z=\"3\"} 1\n", limits);
  ASSERT_FALSE(labels);
  EXPECT_NE(labels.error().message.find("more than 2 labels"), std::string::npos);
}

TEST(PromText, GoFloatSyntax) {
  EXPECT_EQ(ParseGoFloat("+Inf"), INFINITY);
  EXPECT_EQ(ParseGoFloat("+inf"), INFINITY);
  EXPECT_EQ(ParseGoFloat("-Infinity"), -INFINITY);
  EXPECT_TRUE(std::isnan(*ParseGoFloat("NaN")));
  EXPECT_FALSE(ParseGoFloat("-NaN"));
  EXPECT_EQ(ParseGoFloat(".2"), 0.2);
  EXPECT_EQ(ParseGoFloat("2.0e-1"), 0.2);
  EXPECT_EQ(ParseGoFloat("1e0"), 1);
  EXPECT_EQ(ParseGoFloat("+1.5"), 1.5);
  EXPECT_EQ(ParseGoFloat("0x1p-2"), 0.25);  // le labels go through ParseFloat, hex included
  EXPECT_EQ(ParseGoFloat("1e-400"), 0);     // Go rounds an underflow
  EXPECT_FALSE(ParseGoFloat("1e400"));      // and fails an overflow
  for (const char* bad : {"", "+", "+-1", "1e", ".", "e5", "0x10", "1_0", "nan(1)", "inf1", " 1"}) {
    EXPECT_FALSE(ParseGoFloat(bad)) << bad;
  }
}

// ---- histogram_quantile: promql/testdata/histograms.test (v2.42), at 50m ----------------

std::vector<PromBucket> Buckets(std::vector<std::pair<const char*, double>> les) {
  std::vector<PromBucket> out;
  for (const auto& [le, count] : les) out.push_back({*ParseGoFloat(le), count});
  return out;
}

void ExpectQuantile(double q, const std::vector<PromBucket>& b, double want) {
  const double got = HistogramQuantile(q, b);
  if (std::isnan(want)) {
    EXPECT_TRUE(std::isnan(got)) << "q " << q << ": " << got;
  } else if (std::isinf(want)) {
    EXPECT_EQ(got, want) << "q " << q;
  } else {
    EXPECT_NEAR(got, want, 1e-12 * std::max(1.0, std::fabs(want))) << "q " << q;
  }
}

TEST(HistogramQuantile, PrometheusTestdataTesthistogram) {
  // testhistogram_bucket 0+5x10, 0+7x10, ... evaluated at 50m.
  const auto positive = Buckets({{"0.1", 50}, {".2", 70}, {"1e0", 110}, {"+Inf", 120}});
  const auto negative = Buckets({{"-.2", 10}, {"-0.1", 20}, {"0.3", 20}, {"+Inf", 30}});
  for (const auto& b : {positive, negative}) {
    ExpectQuantile(-0.1, b, -INFINITY);
    ExpectQuantile(1.01, b, INFINITY);
    ExpectQuantile(NAN, b, NAN);
  }
  ExpectQuantile(0, positive, 0);
  ExpectQuantile(0, negative, -0.2);
  ExpectQuantile(1, positive, 1);
  ExpectQuantile(1, negative, 0.3);
  ExpectQuantile(0.2, positive, 0.048);
  ExpectQuantile(0.2, negative, -0.2);
  ExpectQuantile(0.5, positive, 0.15);
  ExpectQuantile(0.5, negative, -0.15);
  ExpectQuantile(0.8, positive, 0.72);
  ExpectQuantile(0.8, negative, 0.3);
}

// Points of `load 5m SERIES start+step x n` (n + 1 points from 0).
std::vector<PromPoint> Load(double start, double step, int n, std::int64_t every_ms = 5 * kMin,
                            std::int64_t from_ms = 0) {
  std::vector<PromPoint> p;
  for (int i = 0; i <= n; ++i) p.push_back({from_ms + i * every_ms, start + step * i});
  return p;
}

TEST(HistogramQuantile, PrometheusTestdataOverRates) {
  // histogram_quantile(q, rate(testhistogram_bucket[5m])) at 50m: the same answers.
  std::vector<PromBucket> positive;
  for (const auto& [le, step] : {std::pair{0.1, 5.0}, {0.2, 7.0}, {1.0, 11.0}, {INFINITY, 12.0}}) {
    positive.push_back({le, *Rate(Load(0, step, 10), 45 * kMin, 50 * kMin)});
  }
  ExpectQuantile(0.2, positive, 0.048);
  ExpectQuantile(0.5, positive, 0.15);
  ExpectQuantile(0.8, positive, 0.72);
  // testhistogram2: the middle of a bucket, at 7m and over rate([15m]) at 47m.
  const auto at7m = Buckets({{"0", 0}, {"2", 1}, {"4", 2}, {"6", 3}, {"+Inf", 3}});
  ExpectQuantile(1. / 6., at7m, 1);
  ExpectQuantile(0.5, at7m, 3);
  ExpectQuantile(5. / 6., at7m, 5);
  std::vector<PromBucket> rated;
  for (const auto& [le, step] : {std::pair{0.0, 0.0}, {2.0, 1.0}, {4.0, 2.0}, {6.0, 3.0},
                                 {INFINITY, 3.0}}) {
    rated.push_back({le, *Rate(Load(0, step, 10), 32 * kMin, 47 * kMin)});
  }
  ExpectQuantile(1. / 6., rated, 1);
  ExpectQuantile(0.5, rated, 3);
  ExpectQuantile(5. / 6., rated, 5);
}

TEST(HistogramQuantile, PrometheusTestdataAggregated) {
  // request_duration_seconds_bucket per (job, instance), steps for le 0.1, 0.2, +Inf.
  const double steps[4][3] = {{1, 3, 4}, {2, 5, 6}, {3, 4, 6}, {4, 7, 9}};
  const double les[3] = {0.1, 0.2, INFINITY};
  const auto rate = [&](int series, int le) {
    return *Rate(Load(0, steps[series][le], 10), 45 * kMin, 50 * kMin);
  };
  // sum by (le) over all four series.
  std::vector<PromBucket> all;
  for (int le = 0; le < 3; ++le) {
    double sum = 0;
    for (int s = 0; s < 4; ++s) sum += rate(s, le);
    all.push_back({les[le], sum});
  }
  ExpectQuantile(0.3, all, 0.075);
  ExpectQuantile(0.5, all, 0.1277777777777778);
  // by job: job1 = series 0, 1; job2 = series 2, 3.
  const double by_job_03[2] = {0.1, 0.0642857142857143};
  const double by_job_05[2] = {0.14, 0.1125};
  for (int job = 0; job < 2; ++job) {
    std::vector<PromBucket> b;
    for (int le = 0; le < 3; ++le) b.push_back({les[le], rate(2 * job, le) + rate(2 * job + 1, le)});
    ExpectQuantile(0.3, b, by_job_03[job]);
    ExpectQuantile(0.5, b, by_job_05[job]);
  }
  // unaggregated.
  const double one_03[4] = {0.11, 0.09, 0.06, 0.0675};
  const double one_05[4] = {0.15, 0.13333333333333333, 0.1, 0.11666666666666667};
  for (int s = 0; s < 4; ++s) {
    std::vector<PromBucket> b;
    for (int le = 0; le < 3; ++le) b.push_back({les[le], rate(s, le)});
    ExpectQuantile(0.3, b, one_03[s]);
    ExpectQuantile(0.5, b, one_05[s]);
  }
}

TEST(HistogramQuantile, PrometheusTestdataNonmonotonicMixedAndEmpty) {
  const auto nonmonotonic = Buckets(
      {{"0.1", 20}, {"1", 10}, {"10", 50}, {"100", 40}, {"1000", 90}, {"+Inf", 80}});
  ExpectQuantile(0.01, nonmonotonic, 0.0045);
  ExpectQuantile(0.5, nonmonotonic, 8.5);
  ExpectQuantile(0.99, nonmonotonic, 979.75);
  // Different spellings of one bound are one bucket (coalesced), in any order.
  const auto mixed = Buckets({{"+Inf", 4}, {"0.2", 1}, {"0.1", 1}, {"2e-1", 1}, {"2.0e-1", 1}});
  ExpectQuantile(0.5, mixed, 0.15);
  ExpectQuantile(0.75, mixed, 0.2);
  ExpectQuantile(1, mixed, 0.2);
  ExpectQuantile(0.5, Buckets({{"+inf", 0}, {"+Inf", 0}}), NAN);  // one bucket after coalescing
  ExpectQuantile(0.2, Buckets({{"0.1", 0}, {"0.2", 0}, {"+Inf", 0}}), NAN);  // no observations
  ExpectQuantile(0.5, Buckets({{"0.1", 1}, {"0.2", 2}}), NAN);               // no +Inf bucket
  ExpectQuantile(0.5, {}, NAN);
  ExpectQuantile(0.5, Buckets({{"NaN", 1}, {"+Inf", 2}}), NAN);
}

// ---- rate() and increase(): promql/testdata/functions.test and operators.test (v2.42) -----

TEST(Rate, PrometheusTestdataIncrease) {
  EXPECT_DOUBLE_EQ(*Increase(Load(0, 10, 10), 0, 50 * kMin), 100);
  auto bar = Load(0, 10, 5);
  for (const auto& p : Load(0, 10, 4, 5 * kMin, 30 * kMin)) bar.push_back(p);  // 0+10x5 0+10x5
  ASSERT_EQ(bar.size(), 11u);
  EXPECT_DOUBLE_EQ(*Increase(bar, 0, 50 * kMin), 90);
  EXPECT_DOUBLE_EQ(*Increase(Load(0, 10, 10), -50 * kMin, 50 * kMin), 100);
  EXPECT_DOUBLE_EQ(*Increase(bar, -50 * kMin, 50 * kMin), 90);
  // A decrease is a reset: 0 1 2 3 2 3 4 counts as 7.
  std::vector<PromPoint> reset;
  for (double v : {0, 1, 2, 3, 2, 3, 4}) reset.push_back({static_cast<std::int64_t>(reset.size()) * 5 * kMin, v});
  EXPECT_DOUBLE_EQ(*Increase(reset, 0, 30 * kMin), 7);
}

TEST(Rate, PrometheusTestdataRate) {
  auto middle = Load(0, 10, 4);  // 0+10x4 0+10x5
  for (const auto& p : Load(0, 10, 5, 5 * kMin, 25 * kMin)) middle.push_back(p);
  EXPECT_DOUBLE_EQ(*Rate(middle, 0, 50 * kMin), 0.03);
  auto end = Load(0, 10, 9);  // 0+10x9 0 10
  end.push_back({50 * kMin, 0});
  end.push_back({55 * kMin, 10});
  EXPECT_EQ(*Rate(end, 45 * kMin, 50 * kMin), 0);
  EXPECT_EQ(*Rate(Load(0, 80, 10), 0, 50 * kMin), 0.26666666666666666);
  // rate(calculate_rate_offset[10m] offset 5m) at 50m.
  EXPECT_EQ(*Rate(Load(0, 10, 10), 35 * kMin, 45 * kMin), 0.03333333333333333);
  EXPECT_EQ(*Rate(Load(0, 20, 10), 35 * kMin, 45 * kMin), 0.06666666666666667);
  // rate(http_requests[25m]) * 25 * 60 at 50m for 0+50x10: Prometheus prints
  // 249.99999999999997, which pins the order of the floating-point operations.
  EXPECT_EQ(*Rate(Load(0, 50, 10), 25 * kMin, 50 * kMin) * 25 * 60, 249.99999999999997);
  EXPECT_EQ(*Rate(Load(0, 10, 10), 25 * kMin, 50 * kMin) * 25 * 60, 50);
}

TEST(Rate, PrometheusTestdataZeroCutoff) {
  // load 4m: testcounter_zero_cutoff{start="Nm"} N*60+240x10.
  const double at10m[6] = {0.5, 0.55, 0.6, 0.65, 0.7, 0.6};
  for (int start = 0; start < 6; ++start) {
    const auto points = Load(start * 60.0, 240, 10, 4 * kMin);
    EXPECT_NEAR(*Rate(points, -10 * kMin, 10 * kMin), at10m[start], 1e-12) << start;
    EXPECT_NEAR(*Rate(points, 30 * kMin, 50 * kMin), 0.6, 1e-12) << start;
  }
}

TEST(Rate, NeedsTwoPointsInTheClosedRange) {
  const std::vector<PromPoint> p = {{1000, 1}, {2000, 3}, {3000, 5}};
  EXPECT_FALSE(Rate(p, 2500, 3000));
  EXPECT_FALSE(Rate({}, 0, 3000));
  // Both ends are included: exactly the two points, no extrapolation.
  EXPECT_EQ(*Rate(p, 2000, 3000), 2);
  EXPECT_EQ(*Increase(p, 1000, 3000), 4);
}

// ---- The window --------------------------------------------------------------------------

std::string Body(double success, double failure, const std::vector<double>& buckets_cumulative,
                 double sum, const char* version = "1.0.0") {
  const std::string l = std::string("model=\"m\",version=\"") + version + "\"";
  std::string b = "dlsys_inference_request_success_total{" + l + "} " + std::to_string(success) +
                  "\n" + "dlsys_inference_request_failure_total{" + l +
                  ",reason=\"bad_input\"} " + std::to_string(failure) + "\n" +
                  "dlsys_inference_request_failure_total{" + l + ",reason=\"deadline\"} 0\n";
  const char* les[] = {"0.001", "0.01", "0.1", "+Inf"};
  for (std::size_t i = 0; i < buckets_cumulative.size(); ++i) {
    b += "dlsys_inference_request_duration_seconds_bucket{" + l + ",le=\"" + les[i] + "\"} " +
         std::to_string(buckets_cumulative[i]) + "\n";
  }
  b += "dlsys_inference_request_duration_seconds_sum{" + l + "} " + std::to_string(sum) + "\n";
  b += "dlsys_inference_request_duration_seconds_count{" + l + "} " +
       std::to_string(buckets_cumulative.back()) + "\n";
  b += "dlsys_inference_count_total{" + l + "} " + std::to_string(2 * success) + "\n";
  b += "dlsys_inference_exec_count_total{" + l + "} " + std::to_string(success) + "\n";
  b += "dlsys_inference_queue_depth{" + l + "} 3\n";
  return b;
}

PromExposition Parsed(const std::string& body) {
  auto e = ParsePromText(body);
  EXPECT_TRUE(e) << e.error().message;
  return e ? *e : PromExposition{};
}

TEST(ScrapeWindow, TwoScrapesGiveRateOverTheirSpanAndTotalsOfTheLast) {
  ScrapeWindow w(kMin, 100);
  w.Add(Parsed(Body(10, 0, {1, 5, 10, 10}, 0.1)), 1'000'000);
  w.Add(Parsed(Body(30, 5, {1, 15, 28, 30}, 0.5)), 1'002'000);
  const auto s = w.Summarize({});
  EXPECT_EQ(s.range_start_ms, 1'000'000);  // the first scrape: less than a window has passed
  EXPECT_EQ(s.range_end_ms, 1'002'000);
  EXPECT_EQ(s.scrapes_in_range, 2u);
  ASSERT_EQ(s.groups.size(), 1u);
  const auto& g = s.groups[0];
  EXPECT_EQ(g.key, (std::vector<std::string>{"m", "1.0.0"}));
  EXPECT_DOUBLE_EQ(g.window.requests_per_s, 12.5);  // (20 + 5) / 2 s
  EXPECT_DOUBLE_EQ(g.window.failures_per_s, 2.5);
  EXPECT_DOUBLE_EQ(g.window.error_rate, 0.2);
  // The same as HistogramQuantile over the bucket rates: (0, 10, 18, 20) / 2 s.
  EXPECT_DOUBLE_EQ(g.window.p99_s, HistogramQuantile(0.99, {{0.001, 0}, {0.01, 5}, {0.1, 9},
                                                           {INFINITY, 10}}));
  EXPECT_DOUBLE_EQ(g.window.p50_s, 0.01);
  EXPECT_DOUBLE_EQ(g.window.mean_s, 0.4 / 20);
  EXPECT_DOUBLE_EQ(g.window.batch_size_mean, 2);
  EXPECT_EQ(g.total.successes, 30);
  EXPECT_EQ(g.total.failures, 5);
  EXPECT_EQ(g.total.requests, 35);
  ASSERT_EQ(g.total.failures_by_reason.size(), 2u);
  EXPECT_EQ(g.total.failures_by_reason[0], (std::pair<std::string, double>{"bad_input", 5}));
  EXPECT_DOUBLE_EQ(g.total.p50_s, HistogramQuantile(0.5, {{0.001, 1}, {0.01, 15}, {0.1, 28},
                                                         {INFINITY, 30}}));
  EXPECT_DOUBLE_EQ(g.total.mean_s, 0.5 / 30);
  EXPECT_EQ(g.total.queue_depth, 3);
  EXPECT_TRUE(std::isnan(g.total.executing));  // absent
}

TEST(ScrapeWindow, OneScrapeHasTotalsButNoRates) {
  ScrapeWindow w(kMin, 100);
  w.Add(Parsed(Body(10, 0, {1, 5, 10, 10}, 0.1)), 5000);
  const auto s = w.Summarize({});
  ASSERT_EQ(s.groups.size(), 1u);
  EXPECT_TRUE(std::isnan(s.groups[0].window.requests_per_s));
  EXPECT_TRUE(std::isnan(s.groups[0].window.p99_s));
  EXPECT_EQ(s.groups[0].total.requests, 10);
}

TEST(ScrapeWindow, AWindowOfScrapesIsPrometheusRateOverIt) {
  ScrapeWindow w(10'000, 100);
  std::vector<PromPoint> success;
  for (int i = 0; i <= 20; ++i) {
    const double v = i == 12 ? 3 : (i > 12 ? 3 + 7.0 * (i - 12) : 5.0 * i);  // a restart at 12
    const std::int64_t t = 100'000 + i * 1'003;
    w.Add(Parsed(Body(v, 0, {0, 0, v, v}, v / 100)), t);
    success.push_back({t, v});
  }
  const auto s = w.Summarize({});
  EXPECT_EQ(s.range_end_ms, 100'000 + 20 * 1'003);
  EXPECT_EQ(s.range_start_ms, s.range_end_ms - 10'000);
  EXPECT_EQ(s.scrapes_in_range, 10u);
  ASSERT_EQ(s.groups.size(), 1u);
  // The failure counters are 0: their rate is 0 and adds nothing.
  EXPECT_DOUBLE_EQ(s.groups[0].window.requests_per_s,
                   *Rate(success, s.range_start_ms, s.range_end_ms));
  EXPECT_EQ(s.groups[0].total.successes, success.back().value);
}

TEST(ScrapeWindow, ByAndWhereSelectLabels) {
  ScrapeWindow w(kMin, 100);
  w.Add(Parsed(Body(1, 0, {1, 1, 1, 1}, 0.1, "1") + Body(5, 0, {1, 1, 5, 5}, 0.1, "2")), 1000);
  PromGroupOptions o;
  o.by = {"model"};
  auto s = w.Summarize(o);
  ASSERT_EQ(s.groups.size(), 1u);
  EXPECT_EQ(s.groups[0].total.requests, 6);
  o.by = {"model_version"};  // the log's name for the version label
  o.where = {{"model", "m"}};
  s = w.Summarize(o);
  ASSERT_EQ(s.groups.size(), 2u);
  EXPECT_EQ(s.groups[0].key, std::vector<std::string>{"2"});  // more requests first
  o.where = {{"version", "1"}};
  s = w.Summarize(o);
  ASSERT_EQ(s.groups.size(), 1u);
  EXPECT_EQ(s.groups[0].total.requests, 1);
  o.max_groups = 1;
  o.where = {};
  s = w.Summarize(o);
  EXPECT_TRUE(s.groups_capped);
  EXPECT_EQ(s.groups.size(), 1u);
}

TEST(ScrapeWindow, ASeriesThatLeftIsNoLongerInTheTotals) {
  ScrapeWindow w(kMin, 100);
  w.Add(Parsed(Body(1, 0, {1, 1, 1, 1}, 0.1, "1") + Body(5, 0, {1, 1, 5, 5}, 0.1, "2")), 1000);
  w.Add(Parsed(Body(2, 0, {1, 1, 2, 2}, 0.1, "1") + Body(7, 0, {1, 1, 7, 7}, 0.1, "2")), 2000);
  w.Add(Parsed(Body(3, 0, {1, 1, 3, 3}, 0.1, "1")), 3000);  // version 2 unloaded
  auto s = w.Summarize({});
  ASSERT_EQ(s.groups.size(), 2u);
  EXPECT_EQ(s.groups[0].key[1], "1");
  EXPECT_EQ(s.groups[0].total.requests, 3);
  EXPECT_TRUE(std::isnan(s.groups[1].total.requests));  // gone, but it had a rate
  // 5 -> 7 over [1 s, 2 s], extrapolated to the range end (3 s, within 1.1 intervals): 4 / 2 s.
  EXPECT_DOUBLE_EQ(s.groups[1].window.requests_per_s, 2);
  // One point left in range: no rate, no totals, no group.
  ScrapeWindow once(kMin, 100);
  once.Add(Parsed(Body(5, 0, {1, 1, 5, 5}, 0.1, "2")), 1000);
  once.Add(Parsed(Body(1, 0, {1, 1, 1, 1}, 0.1, "1")), 2000);
  s = once.Summarize({});
  ASSERT_EQ(s.groups.size(), 1u);
  EXPECT_EQ(s.groups[0].key[1], "1");
}

// ---- Scrape: a one-shot server on 127.0.0.1 ------------------------------------------------

class OneShotServer {
 public:
  // Answers one connection with `response` (after `delay_ms`), or never answers (delay < 0).
  explicit OneShotServer(std::string response, int delay_ms = 0) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    EXPECT_EQ(::listen(fd_, 4), 0);
    thread_ = std::thread([this, response = std::move(response), delay_ms] {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 10000) != 1) return;
      const int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      std::string got;
      char buf[4096];
      while (got.find("\r\n\r\n") == std::string::npos) {
        const ssize_t n = ::read(c, buf, sizeof buf);
        if (n <= 0) break;
        got.append(buf, static_cast<std::size_t>(n));
      }
      request_ = got;
      if (delay_ms < 0) {
        pollfd q{c, POLLIN, 0};  // until the client gives up and closes
        ::poll(&q, 1, 10000);
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
        for (std::size_t at = 0; at < response.size();) {
          const ssize_t n = ::send(c, response.data() + at, response.size() - at, MSG_NOSIGNAL);
          if (n <= 0) break;
          at += static_cast<std::size_t>(n);
        }
      }
      ::close(c);
    });
  }
  ~OneShotServer() {
    thread_.join();
    ::close(fd_);
  }
  std::string Url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/metrics"; }
  std::string Request() {  // after the scrape
    thread_.join();
    thread_ = std::thread([] {});
    return request_;
  }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::thread thread_;
  std::string request_;
};

std::string Response(int status, const std::string& body,
                     const std::string& type = "text/plain; version=0.0.4; charset=utf-8") {
  return "HTTP/1.1 " + std::to_string(status) + " Whatever\r\nContent-Type: " + type +
         "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" +
         body;
}

ScrapeUrl Url(const std::string& text) {
  auto u = ParseScrapeUrl(text);
  EXPECT_TRUE(u) << text << ": " << (u ? "" : u.error().message);
  return u ? *u : ScrapeUrl{};
}

TEST(Scrape, GetsTheBodyAskingForTheTextFormat) {
  OneShotServer server(Response(200, kServeBody));
  const auto before = std::chrono::system_clock::now();
  auto r = Scrape(Url(server.Url()), std::chrono::milliseconds(5000));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->body, kServeBody);
  EXPECT_EQ(r->content_type, "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_GE(r->time_ms, std::chrono::duration_cast<std::chrono::milliseconds>(
                            before.time_since_epoch()).count());
  const std::string request = server.Request();
  EXPECT_EQ(request.rfind("GET /metrics HTTP/1.1\r\n", 0), 0u) << request;
  EXPECT_NE(request.find("Accept: text/plain;version=0.0.4"), std::string::npos) << request;
}

TEST(Scrape, Non200IsUnavailableNamingTheStatus) {
  OneShotServer server(Response(500, "boom\x1b[2J", "text/plain"));
  auto r = Scrape(Url(server.Url()), std::chrono::milliseconds(5000));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kUnavailable);
  EXPECT_NE(r.error().message.find("answered 500 Whatever, not 200"), std::string::npos)
      << r.error().message;
  ASSERT_FALSE(r.error().details.empty());
  EXPECT_EQ(r.error().details[0], "body: boom\x1b[2J");  // made terminal-safe when reported
}

TEST(Scrape, ABodyOverTheLimitIsInvalid) {
  OneShotServer server(Response(200, std::string(100000, '\n')));
  auto r = Scrape(Url(server.Url()), std::chrono::milliseconds(5000), 65536);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kInvalid);
  EXPECT_NE(r.error().message.find("larger than 65536 bytes"), std::string::npos)
      << r.error().message;
}

TEST(Scrape, OpenMetricsAndCompressionAreRefused) {
  {
    OneShotServer server(Response(200, "# EOF\n", "application/openmetrics-text; version=1.0.0"));
    auto r = Scrape(Url(server.Url()), std::chrono::milliseconds(5000));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Code::kInvalid);
    EXPECT_NE(r.error().message.find("text format 0.0.4 only"), std::string::npos);
  }
  OneShotServer server("HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 0\r\n\r\n");
  auto r = Scrape(Url(server.Url()), std::chrono::milliseconds(5000));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("Content-Encoding 'gzip'"), std::string::npos);
}

TEST(Scrape, ASlowServerTimesOut) {
  OneShotServer server("", -1);
  const auto start = std::chrono::steady_clock::now();
  auto r = Scrape(Url(server.Url()), std::chrono::milliseconds(300));
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kUnavailable);
  EXPECT_NE(r.error().message.find("within 300ms (while reading the response)"),
            std::string::npos)
      << r.error().message;
  EXPECT_LT(took, std::chrono::seconds(5));  // bounded by the timeout, not the server
}

TEST(Scrape, NotHttpIsInvalid) {
  OneShotServer server("SSH-2.0-OpenSSH_9.2\r\n\r\n");
  auto r = Scrape(Url(server.Url()), std::chrono::milliseconds(5000));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kInvalid) << r.error().message;
}

TEST(Scrape, ConnectionRefusedAsksWhetherServeRuns) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  const int port = ntohs(a.sin_port);
  ::close(fd);  // bound, never listened: nothing accepts on it now
  auto r = Scrape(Url("http://127.0.0.1:" + std::to_string(port) + "/metrics"),
                  std::chrono::milliseconds(5000));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kUnavailable);
  EXPECT_NE(r.error().message.find("Connection refused"), std::string::npos) << r.error().message;
  ASSERT_FALSE(r.error().details.empty());
  EXPECT_EQ(r.error().details[0], "is dlsys serve running on 127.0.0.1:" + std::to_string(port) + "?");
}

TEST(ScrapeUrl, ParsesStrictly) {
  auto u = Url("http://127.0.0.1:8080/metrics");
  EXPECT_EQ(u.host, "127.0.0.1");
  EXPECT_EQ(u.port, 8080);
  EXPECT_EQ(u.target, "/metrics");
  u = Url("HTTP://model-host-1");
  EXPECT_EQ(u.host, "model-host-1");
  EXPECT_EQ(u.port, 80);
  EXPECT_EQ(u.target, "/metrics");
  u = Url("http://[::1]:9/m?x=1");
  EXPECT_EQ(u.host, "::1");
  EXPECT_EQ(u.port, 9);
  EXPECT_EQ(u.target, "/m?x=1");
  auto https = ParseScrapeUrl("https://127.0.0.1:8443/metrics");
  ASSERT_FALSE(https);
  EXPECT_EQ(https.error().code, Code::kUsage);
  EXPECT_NE(https.error().message.find("https is not supported, only http"), std::string::npos);
  for (const char* bad : {"127.0.0.1:8080/metrics", "ftp://h/", "http://", "http://:80/",
                          "http://h:0/", "http://h:65536/", "http://h:/", "http://h:8x/",
                          "http://u:p@h/", "http://h/#x", "http://h/a b", "http://h_1/",
                          "http://[::1/", "http://[zz]/", "http://h/\xc3\xa9"}) {
    auto r = ParseScrapeUrl(bad);
    EXPECT_FALSE(r) << bad;
    if (!r) {
      EXPECT_EQ(r.error().code, Code::kUsage) << bad;
    }
  }
}

}  // namespace
}  // namespace dlsys::monitor
