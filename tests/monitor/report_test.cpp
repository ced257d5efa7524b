#include "monitor/report.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <random>
#include <regex>

#include "test_tmp.h"

namespace dlsys::monitor {
namespace {

namespace fs = std::filesystem;
using testing::Slurp;
using testing::Spit;
using testing::TempDir;

constexpr const char* kScriptKey = "<script>alert(1)</script>";
constexpr const char* kImgKey = "\"><img src=x onerror=alert(2)>";
constexpr std::int64_t kT0 = 1796083200000000;  // 2026-12-01T00:00:00Z
constexpr std::int64_t kMinute = 60'000'000;

std::vector<ReportSeriesPoint> Series(std::size_t n, std::int64_t start, double base_ms,
                                      double error_rate, unsigned seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<double> noise(0, 1);
  std::vector<ReportSeriesPoint> out;
  for (std::size_t i = 0; i < n; ++i) {
    ReportSeriesPoint p;
    p.t_us = start + static_cast<std::int64_t>(i) * kMinute;
    const double wave = 1 + 0.3 * std::sin(static_cast<double>(i) / 9.0);
    p.requests_per_s = 40 * wave + 2 * noise(gen);
    p.requests = static_cast<std::uint64_t>(p.requests_per_s * 60);
    p.error_rate = std::max(0.0, error_rate * (1 + 0.5 * noise(gen)));
    p.p50_ms = base_ms * wave * (1 + 0.05 * noise(gen));
    p.p95_ms = p.p50_ms * 1.9 * (1 + 0.05 * std::fabs(noise(gen)));
    p.p99_ms = p.p95_ms * 1.5 * (1 + 0.1 * std::fabs(noise(gen)));
    out.push_back(p);
  }
  return out;
}

// A group whose totals agree with its series (5xx from the per-bucket error rates).
ReportGroup Group(std::vector<std::string> key, std::vector<ReportSeriesPoint> series) {
  ReportGroup g;
  g.key = std::move(key);
  double errors = 0;
  for (const auto& p : series) {
    g.requests += p.requests;
    if (std::isfinite(p.error_rate)) errors += p.error_rate * static_cast<double>(p.requests);
  }
  const auto s5xx = static_cast<std::uint64_t>(std::llround(errors));
  g.status_4xx = g.requests / 50;
  g.status_5xx = s5xx;
  g.error_rate = g.requests ? static_cast<double>(s5xx) / static_cast<double>(g.requests) : 0;
  g.rate_per_s = 41.3;
  g.latency_count = g.requests;
  g.p50_ms = 4.21;
  g.p95_ms = 8.9;
  g.p99_ms = 14.2;
  g.max_ms = 61.5;
  g.mean_ms = 4.9;
  g.batch_size_mean = 3.2;
  g.series = std::move(series);
  return g;
}

// A report with every section: two versions over two hours, a canary that got worse, drift on
// three features, fired alerts, and hostile strings wherever a log can put one.
ReportData Sample() {
  ReportData d;
  d.title = "mlp16 canary 1.1.0";
  d.inputs = {"/var/log/dlsys/serve.log.1.gz", "/var/log/dlsys/serve.log", kImgKey};
  d.by = {"model", "model_version"};
  d.generated_us = kT0 + 130 * kMinute;
  d.first_us = kT0;
  d.last_us = kT0 + 120 * kMinute - 1;
  d.bad_lines = 3;
  d.other_records = 17;
  d.window_us = kMinute;
  d.groups.push_back(Group({"mlp16", "1.0.0"}, Series(120, kT0, 4.2, 0.002, 1)));
  auto canary = Series(120, kT0, 5.1, 0.004, 2);
  for (std::size_t i = 80; i < canary.size(); ++i) {  // the canary degrades after 80 min
    canary[i].p99_ms *= 2.2;
    canary[i].error_rate += 0.02;
  }
  d.groups.push_back(Group({"mlp16", "1.1.0"}, std::move(canary)));
  auto hostile = Series(30, kT0 + 40 * kMinute, 9, 0.0, 3);
  hostile[10].p50_ms = std::numeric_limits<double>::quiet_NaN();
  hostile[11].p99_ms = std::numeric_limits<double>::infinity();
  d.groups.push_back(Group({kScriptKey, kImgKey}, std::move(hostile)));
  for (const auto& g : d.groups) d.requests += g.requests;
  ReportComparison c;
  c.field = "model_version";
  c.stable = "1.0.0";
  c.canary = "1.1.0";
  c.stable_requests = d.groups[0].requests;
  c.canary_requests = d.groups[1].requests;
  c.stable_error_rate = d.groups[0].error_rate;
  c.canary_error_rate = d.groups[1].error_rate;
  c.z = 6.93;
  c.rate_p = 4e-12;
  c.rate_verdict = "worse";
  c.rate_level = ReportLevel::kBad;
  c.ks_d = 0.081;
  c.latency_p = 0.031;
  c.latency_verdict = "slower";
  c.latency_level = ReportLevel::kBad;
  c.latency_needed = 1000000000;
  c.stable_p50_ms = 4.21;
  c.canary_p50_ms = 5.02;
  c.stable_p99_ms = 14.2;
  c.canary_p99_ms = 29.7;
  d.comparison = c;
  ReportDrift x;
  x.feature = "x[0]";
  x.kind = "numeric";
  x.n_baseline = 10000;
  x.n_current = 2400;
  x.psi = 0.31;
  x.ks_d = 0.22;
  x.ks_p = 1e-9;
  x.js = 0.14;
  x.verdict = "drift";
  x.level = ReportLevel::kBad;
  const double base[] = {0.02, 0.05, 0.1, 0.16, 0.2, 0.18, 0.13, 0.08, 0.05, 0.03};
  const double cur[] = {0.01, 0.02, 0.05, 0.09, 0.14, 0.19, 0.2, 0.15, 0.1, 0.05};
  for (int i = 0; i < 10; ++i) {
    const std::string label =
        i == 0   ? "< -4"
        : i == 9 ? "> 4"
                 : "(" + std::to_string(i - 5) + ", " + std::to_string(i - 4) + "]";
    x.bins.push_back({label, base[i], cur[i]});
  }
  x.chi2_p = 3e-7;
  d.drift.push_back(x);
  ReportDrift country;
  country.feature = "country";
  country.kind = "categorical";
  country.n_baseline = 10000;
  country.n_current = 2400;
  country.psi = 0.02;
  country.js = 0.03;
  country.verdict = "no drift";
  country.level = ReportLevel::kOk;
  country.bins = {{"DE", 0.3, 0.31},
                  {"FR", 0.25, 0.24},
                  {"US", 0.2, 0.21},
                  {"JP", 0.15, 0.14},
                  {kScriptKey, 0.1, 0.1}};
  d.drift.push_back(country);
  ReportDrift odd;
  odd.feature = kScriptKey;
  odd.kind = "numeric";
  odd.n_baseline = 10000;
  odd.n_current = 0;
  odd.verdict = "insufficient data";
  d.drift.push_back(odd);
  d.alerts = {{"p99_ms > 25", "mlp16 1.1.0", 29.7},
              {"error_rate >= 0.01", "mlp16 1.1.0", 0.0112},
              {kImgKey, kScriptKey, 1}};
  d.dlsys_version = "0.1.0";
  return d;
}

std::size_t CountOf(const std::string& haystack, const std::string& needle) {
  std::size_t n = 0;
  for (std::size_t at = haystack.find(needle); at != std::string::npos;
       at = haystack.find(needle, at + needle.size())) {
    ++n;
  }
  return n;
}

// Every coordinate in every polyline, circle and rect: finite, inside the chart's viewBox.
void ExpectCoordinatesInside(const std::string& html) {
  static const std::regex kPoints("points=\"([^\"]*)\"");
  static const std::regex kAttr(" (cx|cy|x|y|x1|x2|y1|y2|width|height)=\"([^\"]*)\"");
  std::size_t seen = 0;
  for (std::sregex_iterator it(html.begin(), html.end(), kPoints), end; it != end; ++it) {
    std::string pts = (*it)[1];
    for (char& c : pts) c = c == ',' ? ' ' : c;
    std::istringstream in(pts);
    for (std::string v; in >> v; ++seen) {
      const double x = std::strtod(v.c_str(), nullptr);
      ASSERT_TRUE(std::isfinite(x)) << v;
      ASSERT_GE(x, 0) << v;
      ASSERT_LE(x, 1100) << v;
    }
  }
  for (std::sregex_iterator it(html.begin(), html.end(), kAttr), end; it != end; ++it) {
    const std::string v = (*it)[2];
    const double x = std::strtod(v.c_str(), nullptr);
    ASSERT_TRUE(std::isfinite(x)) << (*it)[0];
    ASSERT_GE(x, 0) << (*it)[0];
    ASSERT_LE(x, 1100) << (*it)[0];
  }
  EXPECT_GT(seen, 0u);
}

void ExpectNoNonFiniteText(const std::string& html) {
  static const std::regex kBad("\\b-?(nan|inf|infinity)\\b", std::regex::icase);
  std::smatch m;
  EXPECT_FALSE(std::regex_search(html, m, kBad))
      << "at: " << m.str(0) << " in ..."
      << (m.empty() ? "" : html.substr(std::max<std::ptrdiff_t>(0, m.position(0) - 80), 160));
}

TEST(ReportTest, HostileStringsAreEscapedEverywhere) {
  const std::string html = RenderHtmlReport(Sample());
  // The only elements are ours: no script, no img, no event handler attribute.
  EXPECT_EQ(std::regex_search(html, std::regex("<script", std::regex::icase)), false);
  EXPECT_EQ(std::regex_search(html, std::regex("<img", std::regex::icase)), false);
  EXPECT_EQ(std::regex_search(html, std::regex("<[^>]*\\son\\w+\\s*=", std::regex::icase)), false);
  // ... and the hostile strings are there as text.
  EXPECT_NE(html.find("&lt;script&gt;alert(1)&lt;/script&gt;"), std::string::npos);
  EXPECT_NE(html.find("&quot;&gt;&lt;img src=x onerror=alert(2)&gt;"), std::string::npos);
  for (const char* c : {"&", "<", ">", "\"", "'"}) {
    ReportData d;
    d.title = std::string("a") + c + "b";
    const std::string out = RenderHtmlReport(d);
    EXPECT_EQ(out.find(std::string("a") + c + "b"), std::string::npos) << c;
  }
  ReportData d;
  d.title = "it's";
  d.inputs = {"x'y"};
  EXPECT_NE(RenderHtmlReport(d).find("x&#39;y"), std::string::npos);
}

TEST(ReportTest, ControlAndBidiCharactersAndBadUtf8AreMadeVisible) {
  ReportData d;
  d.by = {"model"};
  ReportGroup g;
  g.key = {
      "a\x1b[31mred\nb\xe2\x80\xae"
      "cba\xff"};
  g.requests = 1;
  d.groups.push_back(g);
  const std::string html = RenderHtmlReport(d);
  EXPECT_EQ(html.find('\x1b'), std::string::npos);
  EXPECT_EQ(html.find("\xe2\x80\xae"), std::string::npos);
  EXPECT_EQ(html.find('\xff'), std::string::npos);
  EXPECT_NE(html.find("a\\x1b[31mred\\nb\\u{202e}cba\\xff"), std::string::npos);
}

TEST(ReportTest, LongStringsAreCut) {
  ReportData d;
  d.title = std::string(1 << 20, 'T');
  d.inputs.assign(1000, std::string(10000, 'i'));
  d.by = {std::string(100000, 'b')};
  ReportGroup g;
  g.key = {std::string(1 << 20, 'k')};
  g.requests = 1;
  d.groups.assign(300, g);
  d.alerts.assign(2000, ReportAlert{std::string(100000, 'r'), std::string(100000, 'g'), 1});
  const std::string html = RenderHtmlReport(d);
  EXPECT_LT(html.size(), 2u << 20);
  EXPECT_NE(html.find(std::string(kReportMaxTextChars - 1, 'T') + "…"), std::string::npos);
  EXPECT_NE(html.find("… and 950 more"), std::string::npos);
  EXPECT_NE(html.find("The first 500 of 2,000 fired alerts are listed."), std::string::npos);
}

TEST(ReportTest, NoScriptsNoUrlsAndAPolicyThatForbidsFetching) {
  const std::string html = RenderHtmlReport(Sample());
  // A scheme with "//" of any kind, and any attribute or CSS that could point elsewhere.
  EXPECT_FALSE(std::regex_search(html, std::regex("[a-z][a-z0-9+.-]*://", std::regex::icase)));
  // In our tags (foreign text is escaped, so every '<' in the page opens one of ours).
  static const std::regex kTag("<[a-zA-Z][^>]*>");
  static const std::regex kFetching(
      "\\s(src|srcset|action|formaction|poster|background|"
      "xlink:href|ping|data|codebase)\\s*=",
      std::regex::icase);
  std::size_t tags = 0;
  for (std::sregex_iterator it(html.begin(), html.end(), kTag), end; it != end; ++it, ++tags) {
    EXPECT_FALSE(std::regex_search((*it)[0].str(), kFetching)) << (*it)[0];
  }
  EXPECT_GT(tags, 500u);
  EXPECT_FALSE(
      std::regex_search(html, std::regex("url\\s*\\(|@import|javascript:", std::regex::icase)));
  // Links only within the page.
  static const std::regex kHref("href\\s*=\\s*\"([^\"]*)\"", std::regex::icase);
  std::size_t links = 0;
  for (std::sregex_iterator it(html.begin(), html.end(), kHref), end; it != end; ++it, ++links) {
    EXPECT_EQ((*it)[1].str().substr(0, 1), "#") << (*it)[0];
  }
  EXPECT_GE(links, 4u);
  EXPECT_EQ(CountOf(html, "href"), links);
  // The policy comes first in <head>, before the style it allows.
  const std::string csp =
      "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
      "style-src 'unsafe-inline'; img-src data:\">";
  const std::size_t at = html.find(csp);
  ASSERT_NE(at, std::string::npos);
  EXPECT_LT(at, html.find("<style>"));
  EXPECT_LT(html.find("<meta charset=\"utf-8\">"), at);
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_EQ(CountOf(html, "<style>"), 1u);
}

TEST(ReportTest, HasEverySectionAccessibleChartsAndTableHeaders) {
  const std::string html = RenderHtmlReport(Sample());
  for (const char* id :
       {"id=\"canary\"", "id=\"alerts\"", "id=\"summary\"", "id=\"charts\"", "id=\"drift\""}) {
    EXPECT_EQ(CountOf(html, id), 1u) << id;
  }
  // 2 overview + 3 per group x 3 groups + 3 drift charts, each with a title.
  EXPECT_EQ(CountOf(html, "<svg class=\"chart\""), 2u + 9u + 3u);
  EXPECT_EQ(CountOf(html, "role=\"img\""), 14u);
  EXPECT_GE(CountOf(html, "<title id="), 14u);
  EXPECT_NE(html.find("<th class=\"key\" scope=\"col\">model_version</th>"), std::string::npos);
  EXPECT_NE(html.find("<th scope=\"col\">p99 ms</th>"), std::string::npos);
  EXPECT_NE(html.find("The canary is worse than stable"), std::string::npos);
  EXPECT_NE(html.find("badge bad\">✖ worse"), std::string::npos);
  EXPECT_NE(html.find("badge ok\">✓ no drift"), std::string::npos);
  EXPECT_NE(html.find("PSI 0.310"), std::string::npos);
  EXPECT_NE(html.find("p99_ms &gt; 25"), std::string::npos);
  EXPECT_NE(html.find("time (UTC)"), std::string::npos);
  EXPECT_NE(html.find("latency (ms)"), std::string::npos);
  EXPECT_NE(html.find(">p95</li>"), std::string::npos);  // the latency legend
  EXPECT_NE(html.find("2026-12-01 00:00:00 UTC"), std::string::npos);
  EXPECT_NE(html.find("1 h 59 min"), std::string::npos);
  EXPECT_NE(html.find("@media print"), std::string::npos);
  EXPECT_NE(html.find("@media (max-width:"), std::string::npos);
  ExpectCoordinatesInside(html);
  ExpectNoNonFiniteText(html);
}

TEST(ReportTest, EmptyDataRenders) {
  const std::string html = RenderHtmlReport(ReportData{});
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_NE(html.find("No requests in the input."), std::string::npos);
  EXPECT_NE(html.find("<title>dlsys monitor report</title>"), std::string::npos);
  EXPECT_NE(html.find("none fired"), std::string::npos);
  EXPECT_EQ(html.find("<svg class=\"chart\""), std::string::npos);
  EXPECT_TRUE(html.ends_with("</html>\n"));
  ExpectNoNonFiniteText(html);
}

TEST(ReportTest, ZeroOneAndAThousandPoints) {
  ReportData d;
  d.window_us = kMinute;
  d.groups.push_back(Group({"none"}, {}));
  d.groups.push_back(Group({"one"}, Series(1, kT0, 3, 0.1, 4)));
  d.groups.push_back(Group({"many"}, Series(1000, kT0, 3, 0.1, 5)));
  const std::string html = RenderHtmlReport(d);
  EXPECT_EQ(CountOf(html, ">no data</text>"), 3u);  // latency, throughput, 5xx of "none"
  // "one": a dot per line (3 latency + throughput + 5xx) and in the two overview charts.
  EXPECT_EQ(CountOf(html, "<circle"), 5u + 2u);
  static const std::regex kPoints("<polyline class=\"l0\" points=\"([^\"]*)\"");
  std::size_t most = 0;
  for (std::sregex_iterator it(html.begin(), html.end(), kPoints), end; it != end; ++it) {
    most = std::max(most, CountOf((*it)[1].str(), ","));
  }
  EXPECT_EQ(most, kReportMaxPoints);
  EXPECT_NE(html.find("1,000 points merged into 500"), std::string::npos);
  ExpectCoordinatesInside(html);
  ExpectNoNonFiniteText(html);
}

TEST(ReportTest, NonFiniteValuesAreSkippedAndBreakTheLine) {
  ReportData d;
  auto s = Series(4, kT0, 3, 0.1, 6);
  s[1].p50_ms = std::numeric_limits<double>::quiet_NaN();
  s[1].p95_ms = std::numeric_limits<double>::infinity();
  s[2].p99_ms = -std::numeric_limits<double>::infinity();
  s[0].requests_per_s = std::numeric_limits<double>::quiet_NaN();
  s[3].error_rate = std::numeric_limits<double>::signaling_NaN();
  d.groups.push_back(Group({"g"}, s));
  d.groups[0].p99_ms = std::numeric_limits<double>::quiet_NaN();
  d.groups[0].error_rate = std::numeric_limits<double>::infinity();
  const std::string html = RenderHtmlReport(d);
  // p50: dot + 2-point line; p95: same; p99: 2-point line + dot; throughput: a 3-point line;
  // 5xx: a 3-point line.
  EXPECT_EQ(CountOf(html, "<circle"), 3u);
  EXPECT_EQ(CountOf(html, "<polyline"), 5u);
  ExpectCoordinatesInside(html);
  ExpectNoNonFiniteText(html);
}

TEST(ReportTest, ConstantZeroNegativeAndHugeSeriesStayInsideTheChart) {
  for (double v :
       {0.0, 5.0, -3.0, 1e-12, 1e15, 1e300, std::numeric_limits<double>::max(),
        -std::numeric_limits<double>::max(), std::numeric_limits<double>::denorm_min()}) {
    SCOPED_TRACE(v);
    ReportData d;
    auto s = Series(20, kT0, 3, 0, 7);
    for (auto& p : s) {
      p.p50_ms = p.p95_ms = p.p99_ms = p.requests_per_s = v;
      p.error_rate = std::fmin(std::fabs(v), 1.0);
    }
    s[7].p99_ms = std::numeric_limits<double>::max();
    d.groups.push_back(Group({"g"}, s));
    d.groups[0].max_ms = v;
    const std::string html = RenderHtmlReport(d);
    ExpectCoordinatesInside(html);
    ExpectNoNonFiniteText(html);
    EXPECT_GE(CountOf(html, "<polyline"), 5u);
  }
}

TEST(ReportTest, TimeAxesFromSecondsToYears) {
  for (std::int64_t span :
       {std::int64_t{0}, std::int64_t{1}, std::int64_t{1000000}, 90 * std::int64_t{1000000},
        3 * 3600 * std::int64_t{1000000}, 40 * 86400 * std::int64_t{1000000},
        50 * 365 * 86400 * std::int64_t{1000000}}) {
    SCOPED_TRACE(span);
    ReportData d;
    auto s = Series(2, kT0, 3, 0, 8);
    s[1].t_us = kT0 + span;
    d.groups.push_back(Group({"g"}, s));
    const std::string html = RenderHtmlReport(d);
    static const std::regex kTick("<text x=\"[0-9.]+\" y=\"[0-9.]+\">([0-9: -]+)</text>");
    std::size_t ticks = 0;
    for (std::sregex_iterator it(html.begin(), html.end(), kTick), end; it != end; ++it) ++ticks;
    EXPECT_GE(ticks, 3u * 1);  // every chart of the group has at least one time tick
    EXPECT_LE(ticks, 3u * 14);
    ExpectCoordinatesInside(html);
  }
}

TEST(ReportTest, AbsurdTimesAndWindowsDoNotOverflow) {
  constexpr auto kMin = std::numeric_limits<std::int64_t>::min();
  constexpr auto kMax = std::numeric_limits<std::int64_t>::max();
  ReportData d;
  d.first_us = kMin;
  d.last_us = kMax;
  d.generated_us = kMin;
  d.window_us = kMax;
  auto s = Series(6, kT0, 3, 0, 10);
  s[0].t_us = kMin;
  s[5].t_us = kMax;
  d.groups.push_back(Group({"g"}, s));
  d.groups.push_back(Group({"h"}, s));
  const std::string html = RenderHtmlReport(d);
  EXPECT_NE(html.find("no time stamps"), std::string::npos);
  // Each line drawn through its 4 sane points: 2 overview charts x 2 groups, 5 lines per group.
  EXPECT_EQ(CountOf(html, "<polyline"), 2u * 2u + 5u * 2u);
  ExpectCoordinatesInside(html);
  ExpectNoNonFiniteText(html);
}

TEST(ReportTest, ManyGroupsAreCappedAndThePageSaysSo) {
  ReportData d;
  d.by = {"model"};
  d.window_us = kMinute;
  for (int i = 0; i < 1000; ++i) {
    d.groups.push_back(Group({"model-" + std::to_string(i)}, Series(1000, kT0, 3, 0.01, i)));
  }
  d.drift.assign(200, Sample().drift[0]);
  d.drift[0].bins.assign(1000, ReportDriftBin{"b", 0.001, 0.001});
  const std::string html = RenderHtmlReport(d);
  EXPECT_LT(html.size(), 4u << 20);
  EXPECT_NE(html.find("Showing the 200 busiest of 1,000 groups."), std::string::npos);
  EXPECT_NE(html.find("Charts are drawn for the 12 busiest of 1,000 groups"), std::string::npos);
  EXPECT_NE(html.find("The 6 busiest groups are overlaid."), std::string::npos);
  EXPECT_NE(html.find("The first 50 of 200 features are shown."), std::string::npos);
  EXPECT_NE(html.find("The first 60 of 1,000 bins are drawn."), std::string::npos);
  EXPECT_EQ(CountOf(html, "model-199<"), 1u);
  EXPECT_EQ(CountOf(html, "model-200<"), 0u);
  EXPECT_EQ(CountOf(html, "<svg class=\"chart\""), 2u + 3u * 12u + 50u);
}

TEST(ReportTest, UnsortedSeriesAreDrawnInTimeOrder) {
  ReportData d;
  auto s = Series(3, kT0, 3, 0, 9);
  std::swap(s[0], s[2]);
  d.groups.push_back(Group({"g"}, s));
  const std::string html = RenderHtmlReport(d);
  static const std::regex kLine(
      "<polyline class=\"l3\" points=\"([0-9.]+),[0-9.]+ ([0-9.]+),"
      "[0-9.]+ ([0-9.]+),");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(html, m, kLine));
  EXPECT_LT(std::stod(m[1]), std::stod(m[2]));
  EXPECT_LT(std::stod(m[2]), std::stod(m[3]));
}

// ---------------------------------------------------------------------------------------------
// Writing the file.

std::vector<std::string> Entries(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

TEST(ReportWrite, WritesTheRenderedPageAndReplacesOnlyWhenAsked) {
  TempDir tmp;
  const std::string path = tmp / "report.html";
  const ReportData d = Sample();
  ASSERT_TRUE(WriteHtmlReport(path, d, false));
  EXPECT_EQ(Slurp(path), RenderHtmlReport(d));
  EXPECT_EQ(fs::status(path).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                fs::perms::others_read);
  auto again = WriteHtmlReport(path, ReportData{}, false);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, Code::kExists);
  EXPECT_EQ(Slurp(path), RenderHtmlReport(d));
  ASSERT_TRUE(WriteHtmlReport(path, ReportData{}, true));
  EXPECT_EQ(Slurp(path), RenderHtmlReport(ReportData{}));
  EXPECT_EQ(Entries(tmp.path()), std::vector<std::string>{"report.html"});
}

TEST(ReportWrite, RefusesADirectoryOrASymlinkAndLeavesNothingBehind) {
  TempDir tmp;
  fs::create_directory(tmp / "dir");
  Spit(tmp / "target", "precious");
  fs::create_symlink(tmp / "target", tmp / "link.html");
  fs::create_symlink(tmp / "missing", tmp / "dangling.html");
  for (bool overwrite : {false, true}) {
    SCOPED_TRACE(overwrite);
    for (const char* name : {"dir", "link.html", "dangling.html"}) {
      SCOPED_TRACE(name);
      auto r = WriteHtmlReport(tmp / name, Sample(), overwrite);
      ASSERT_FALSE(r);
      EXPECT_EQ(r.error().code, overwrite ? Code::kInvalid : Code::kExists);
    }
  }
  EXPECT_TRUE(fs::is_directory(tmp / "dir"));
  EXPECT_TRUE(fs::is_empty(tmp / "dir"));
  EXPECT_TRUE(fs::is_symlink(tmp / "link.html"));
  EXPECT_TRUE(fs::is_symlink(tmp / "dangling.html"));
  EXPECT_FALSE(fs::exists(tmp / "missing"));
  EXPECT_EQ(Slurp(tmp / "target"), "precious");
  EXPECT_EQ(Entries(tmp.path()),
            (std::vector<std::string>{"dangling.html", "dir", "link.html", "target"}));
}

TEST(ReportWrite, AMissingOrUnwritableDirectoryIsAnError) {
  TempDir tmp;
  auto r = WriteHtmlReport(tmp / "no/such/report.html", Sample(), true);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kNotFound);
  EXPECT_NE(r.error().message.find("no/such"), std::string::npos) << r.error().message;
  Spit(tmp / "file", "x");
  EXPECT_FALSE(WriteHtmlReport(tmp / "file/report.html", Sample(), true));
  if (::geteuid() != 0) {  // root writes into a read-only directory anyway
    fs::create_directory(tmp / "ro");
    fs::permissions(tmp / "ro", fs::perms::owner_read | fs::perms::owner_exec);
    EXPECT_FALSE(WriteHtmlReport(tmp / "ro/report.html", Sample(), true));
    fs::permissions(tmp / "ro", fs::perms::owner_all);
    EXPECT_TRUE(fs::is_empty(tmp / "ro"));
  }
  EXPECT_EQ(Entries(tmp.path()), std::vector<std::string>{"file"});
}

// A write that fails half-way (here: the file size limit, which binds root too) leaves no file
// under the name and no temporary file.
TEST(ReportWrite, AWriteThatFailsHalfWayLeavesNoFile) {
  TempDir tmp;
  Spit(tmp / "old.html", "old");
  struct rlimit old_limit {};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old_limit), 0);
  struct sigaction ignore {
  }, old_action{};
  ignore.sa_handler = SIG_IGN;
  ASSERT_EQ(::sigaction(SIGXFSZ, &ignore, &old_action), 0);
  struct rlimit small = old_limit;
  small.rlim_cur = 4096;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  auto fresh = WriteHtmlReport(tmp / "new.html", Sample(), false);
  auto replace = WriteHtmlReport(tmp / "old.html", Sample(), true);
  ::setrlimit(RLIMIT_FSIZE, &old_limit);
  ::sigaction(SIGXFSZ, &old_action, nullptr);
  ASSERT_FALSE(fresh);
  ASSERT_FALSE(replace);
  EXPECT_NE(fresh.error().message.find("new.html"), std::string::npos) << fresh.error().message;
  EXPECT_EQ(Slurp(tmp / "old.html"), "old");
  EXPECT_EQ(Entries(tmp.path()), std::vector<std::string>{"old.html"});
}

// Writes the sample for tests/cli/test_monitor_report.py, which opens it in headless Chromium:
// to $DLSYS_REPORT_SAMPLE when set (replacing it), else to a temporary directory.
TEST(ReportTest, WritesSampleForBrowser) {
  TempDir tmp;
  const char* env = std::getenv("DLSYS_REPORT_SAMPLE");
  const std::string path = env && *env ? env : tmp / "sample.html";
  ASSERT_TRUE(WriteHtmlReport(path, Sample(), true));
  const std::string html = Slurp(path);
  EXPECT_GT(html.size(), 20000u);
  EXPECT_LT(html.size(), 1u << 20);
}

}  // namespace
}  // namespace dlsys::monitor
