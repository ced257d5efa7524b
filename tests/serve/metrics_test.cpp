#include "serve/metrics.h"

#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "test_tmp.h"

namespace dlsys::serve {
namespace {

// ---------------------------------------------------------------------------------------
// A small parser of the text exposition format that checks what promtool does not: every
// family declared once (HELP then TYPE) with its samples in one block, no duplicate series,
// and histograms whose buckets ascend in `le`, are cumulative, end with le="+Inf" equal to
// _count, and have a _sum.

struct ParsedSample {
  std::string name;
  std::map<std::string, std::string> labels;
  std::string value;
};

// Parses `name{a="x",b="y"} value`; returns false on malformed input.
bool ParseSampleLine(const std::string& line, ParsedSample& out) {
  std::size_t i = 0;
  while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
  out.name = line.substr(0, i);
  out.labels.clear();
  if (i < line.size() && line[i] == '{') {
    ++i;
    while (i < line.size() && line[i] != '}') {
      const auto eq = line.find('=', i);
      if (eq == std::string::npos || eq + 1 >= line.size() || line[eq + 1] != '"') return false;
      const std::string key = line.substr(i, eq - i);
      std::string value;
      std::size_t j = eq + 2;
      for (; j < line.size() && line[j] != '"'; ++j) {
        if (line[j] == '\\') {
          if (++j >= line.size()) return false;
          if (line[j] == 'n') {
            value += '\n';
          } else if (line[j] == '\\' || line[j] == '"') {
            value += line[j];
          } else {
            return false;
          }
        } else {
          value += line[j];
        }
      }
      if (j >= line.size()) return false;
      if (!out.labels.emplace(key, value).second) return false;  // label twice
      i = j + 1;
      if (i < line.size() && line[i] == ',') ++i;
    }
    if (i >= line.size()) return false;
    ++i;
  }
  if (i >= line.size() || line[i] != ' ') return false;
  out.value = line.substr(i + 1);
  return !out.value.empty() && out.value.find(' ') == std::string::npos;
}

double ParseValue(const std::string& v) {
  if (v == "+Inf") return std::numeric_limits<double>::infinity();
  if (v == "-Inf") return -std::numeric_limits<double>::infinity();
  return std::stod(v);
}

struct Exposition {
  std::map<std::string, std::string> types;                  // family -> type
  std::map<std::string, std::string> helps;                  // family -> help
  std::vector<std::string> order;                            // families in order of appearance
  std::map<std::string, std::vector<ParsedSample>> samples;  // family -> samples
};

std::string FamilyOf(const std::string& sample, const std::map<std::string, std::string>& types) {
  if (types.count(sample)) return sample;
  for (const char* suffix : {"_bucket", "_sum", "_count"}) {
    const std::string s(suffix);
    if (sample.size() > s.size() && sample.compare(sample.size() - s.size(), s.size(), s) == 0) {
      const std::string base = sample.substr(0, sample.size() - s.size());
      auto it = types.find(base);
      if (it != types.end() && it->second == "histogram") return base;
    }
  }
  return "";
}

// Parses and checks the exposition into e; every violation is a gtest failure.
void ParseAndCheck(const std::string& text, Exposition& e) {
  EXPECT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
  std::istringstream in(text);
  std::string line;
  std::string current;  // family whose block we are in
  std::set<std::string> closed;
  std::set<std::string> series;
  std::string pending_help;
  while (std::getline(in, line)) {
    SCOPED_TRACE(line);
    if (line.rfind("# HELP ", 0) == 0) {
      const std::string rest = line.substr(7);
      const std::string name = rest.substr(0, rest.find(' '));
      EXPECT_EQ(e.helps.count(name), 0u) << "HELP twice for " << name;
      e.helps[name] = rest.substr(name.size());
      pending_help = name;
      continue;
    }
    if (line.rfind("# TYPE ", 0) == 0) {
      std::istringstream ts(line.substr(7));
      std::string name, type;
      ts >> name >> type;
      EXPECT_EQ(pending_help, name) << "TYPE not right after its HELP";
      EXPECT_EQ(e.types.count(name), 0u) << "TYPE twice for " << name;
      EXPECT_TRUE(type == "counter" || type == "gauge" || type == "histogram") << type;
      if (type == "counter") {
        EXPECT_TRUE(name.size() > 6 && name.substr(name.size() - 6) == "_total") << name;
      }
      if (!current.empty()) closed.insert(current);
      e.types[name] = type;
      e.order.push_back(name);
      current = name;
      pending_help.clear();
      continue;
    }
    ASSERT_NE(line.rfind('#', 0), 0u) << "unexpected comment";
    ParsedSample s;
    ASSERT_TRUE(ParseSampleLine(line, s)) << "malformed sample";
    const std::string family = FamilyOf(s.name, e.types);
    ASSERT_FALSE(family.empty()) << "sample of an undeclared family";
    EXPECT_EQ(family, current) << "family split: sample outside its block";
    EXPECT_EQ(closed.count(family), 0u);
    std::string key = s.name;
    for (const auto& [k, v] : s.labels) key += "\x01" + k + "=" + v;
    EXPECT_TRUE(series.insert(key).second) << "duplicate series";
    e.samples[family].push_back(s);
  }
  EXPECT_TRUE(pending_help.empty()) << "HELP without TYPE";
  EXPECT_EQ(e.helps.size(), e.types.size());

  // Histograms, series by series (labels without le).
  for (const auto& [family, type] : e.types) {
    if (type != "histogram") continue;
    SCOPED_TRACE(family);
    struct Series {
      std::vector<std::pair<double, double>> buckets;  // (le, value) in order of appearance
      std::optional<double> sum, count;
    };
    std::map<std::map<std::string, std::string>, Series> by_labels;
    for (const ParsedSample& s : e.samples[family]) {
      auto labels = s.labels;
      if (s.name == family + "_bucket") {
        ASSERT_EQ(labels.count("le"), 1u);
        const double le = ParseValue(labels["le"]);
        labels.erase("le");
        by_labels[labels].buckets.emplace_back(le, ParseValue(s.value));
      } else {
        EXPECT_EQ(labels.count("le"), 0u);
        auto& slot = s.name == family + "_sum" ? by_labels[labels].sum : by_labels[labels].count;
        slot = ParseValue(s.value);
      }
    }
    for (const auto& [labels, s] : by_labels) {
      ASSERT_FALSE(s.buckets.empty());
      EXPECT_TRUE(std::isinf(s.buckets.back().first)) << "no le=\"+Inf\" bucket last";
      for (std::size_t i = 1; i < s.buckets.size(); ++i) {
        EXPECT_LT(s.buckets[i - 1].first, s.buckets[i].first) << "le not ascending";
        EXPECT_LE(s.buckets[i - 1].second, s.buckets[i].second) << "buckets not cumulative";
      }
      ASSERT_TRUE(s.count.has_value()) << "no _count";
      EXPECT_TRUE(s.sum.has_value()) << "no _sum";
      EXPECT_EQ(s.buckets.back().second, *s.count) << "+Inf bucket != _count";
    }
  }
}

Exposition CheckExposition(const std::string& text) {
  Exposition e;
  ParseAndCheck(text, e);
  return e;
}

// The checker fails on what promtool lets through.
TEST(MetricsTest, ExpositionCheckerCatchesBrokenHistograms) {
  const std::string head = "# HELP h_seconds H.\n# TYPE h_seconds histogram\n";
  const std::string good = head +
                           "h_seconds_bucket{le=\"1\"} 1\nh_seconds_bucket{le=\"+Inf\"} 2\n"
                           "h_seconds_sum 3\nh_seconds_count 2\n";
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"no +Inf", head + "h_seconds_bucket{le=\"1\"} 1\nh_seconds_sum 3\nh_seconds_count 1\n"},
      {"not cumulative", head + "h_seconds_bucket{le=\"1\"} 3\nh_seconds_bucket{le=\"+Inf\"} 2\n"
                                "h_seconds_sum 3\nh_seconds_count 2\n"},
      {"count != +Inf", head + "h_seconds_bucket{le=\"1\"} 1\nh_seconds_bucket{le=\"+Inf\"} 2\n"
                               "h_seconds_sum 3\nh_seconds_count 3\n"},
      {"duplicate series", good + "# HELP g G.\n# TYPE g gauge\ng{a=\"x\"} 1\ng{a=\"x\"} 2\n"},
      {"family split", good + "# HELP g G.\n# TYPE g gauge\ng 1\nh_seconds_sum 3\n"},
      {"declared twice", good + head},
  };
  {
    ::testing::TestPartResultArray failures;
    {
      ::testing::ScopedFakeTestPartResultReporter reporter(
          ::testing::ScopedFakeTestPartResultReporter::INTERCEPT_ONLY_CURRENT_THREAD, &failures);
      CheckExposition(good);
    }
    EXPECT_EQ(failures.size(), 0) << "the good exposition fails the checker";
  }
  for (const auto& [what, text] : bad) {
    ::testing::TestPartResultArray failures;
    {
      ::testing::ScopedFakeTestPartResultReporter reporter(
          ::testing::ScopedFakeTestPartResultReporter::INTERCEPT_ONLY_CURRENT_THREAD, &failures);
      CheckExposition(text);
    }
    EXPECT_GT(failures.size(), 0) << what << " passes the checker";
  }
}

// ---------------------------------------------------------------------------------------

TEST(HistogramTest, ValuesOnABoundGoInThatBucket) {
  Histogram h({1, 2, 5});
  h.Observe(1);             // le=1
  h.Observe(1.5);           // le=2
  h.Observe(2);             // le=2
  h.Observe(5);             // le=5
  h.Observe(5.0000001);     // +Inf
  h.Observe(-3);            // le=1
  h.Observe(std::nan(""));  // ignored
  const auto s = h.Read();
  EXPECT_EQ(s.upper_bounds, (std::vector<double>{1, 2, 5}));
  EXPECT_EQ(s.cumulative, (std::vector<std::uint64_t>{2, 4, 5, 6}));
  EXPECT_EQ(s.count, 6u);
  EXPECT_DOUBLE_EQ(s.sum, 1 + 1.5 + 2 + 5 + 5.0000001 - 3);
}

TEST(HistogramTest, DefaultBuckets) {
  const auto lat = LatencyBucketsSeconds();
  ASSERT_EQ(lat.size(), 19u);
  EXPECT_EQ(lat.front(), 0.00005);
  EXPECT_EQ(lat[4], 0.001);
  EXPECT_EQ(lat.back(), 60);
  EXPECT_TRUE(std::is_sorted(lat.begin(), lat.end()));
  const auto batch = BatchSizeBuckets();
  ASSERT_EQ(batch.size(), 11u);
  EXPECT_EQ(batch.front(), 1);
  EXPECT_EQ(batch.back(), 1024);
  Histogram h(LatencyBucketsSeconds());
  h.Observe(0.00005);
  h.Observe(0.0000501);
  EXPECT_EQ(h.Read().cumulative[0], 1u);
  EXPECT_EQ(h.Read().cumulative[1], 2u);
}

TEST(HistogramTest, ConcurrentObserveTotalsExactly) {
  Histogram h({1, 10, 100});
  constexpr int kThreads = 8;
  constexpr int kPerThread = 20000;
  std::vector<std::thread> threads;
  std::atomic<bool> stop{false};
  // A reader running alongside must always see a consistent snapshot.
  std::thread reader([&] {
    while (!stop.load()) {
      const auto s = h.Read();
      ASSERT_EQ(s.cumulative.back(), s.count);
      for (std::size_t i = 1; i < s.cumulative.size(); ++i) {
        ASSERT_LE(s.cumulative[i - 1], s.cumulative[i]);
      }
    }
  });
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&h, t] {
      for (int i = 0; i < kPerThread; ++i) h.Observe(static_cast<double>((i + t) % 4) * 50);
    });
  }
  for (auto& t : threads) t.join();
  stop = true;
  reader.join();
  const auto s = h.Read();
  EXPECT_EQ(s.count, std::uint64_t{kThreads} * kPerThread);
  // Values 0, 50, 100, 150 equally often: 0 -> le=1, 50 and 100 -> le=100, 150 -> +Inf.
  const std::uint64_t quarter = s.count / 4;
  EXPECT_EQ(s.cumulative, (std::vector<std::uint64_t>{quarter, quarter, 3 * quarter, s.count}));
  // Every partial sum is a multiple of 50 well below 2^53, so the total is exact.
  EXPECT_EQ(s.sum, 75.0 * static_cast<double>(s.count));
}

TEST(MetricsTest, FailureReasonNames) {
  EXPECT_STREQ(FailureReasonName(FailureReason::kBadInput), "bad_input");
  EXPECT_STREQ(FailureReasonName(FailureReason::kModelFailure), "model_failure");
  EXPECT_STREQ(FailureReasonName(FailureReason::kOverloaded), "overloaded");
  EXPECT_STREQ(FailureReasonName(FailureReason::kDeadline), "deadline");
}

TEST(MetricsTest, RegisterReturnsTheSameVersion) {
  Metrics metrics;
  ModelMetrics& a = metrics.Register("m", "1");
  ModelMetrics& b = metrics.Register("m", "2");
  EXPECT_EQ(&metrics.Register("m", "1"), &a);
  EXPECT_NE(&a, &b);
  ASSERT_EQ(metrics.All().size(), 2u);
  EXPECT_EQ(metrics.All()[0], &a);
  EXPECT_EQ(metrics.All()[1]->version, "2");
}

// Two models with observations in every family.
void Populate(Metrics& metrics) {
  ModelMetrics& a = metrics.Register("mlp", "1");
  ModelMetrics& b = metrics.Register("we\"ird\\name\nx", "2");
  a.AddSuccess(2'000'000, 100'000, 1'500'000, 1'700'000'000'000);
  a.AddSuccess(30'000'000'000, 50'000, 20'000'000'000, 1'700'000'000'500);
  a.AddFailure(FailureReason::kOverloaded, 1000);
  a.AddExecution(3);
  a.AddExecution(1);
  a.queue_depth = 5;
  a.load_ns = 1'250'000'000;
  b.AddFailure(FailureReason::kBadInput, 10);
  b.AddExecution(2000);
  b.AddSuccess(70'000'000'000, 0, 70'000'000'000, 1);  // beyond the last bound: +Inf only
}

TEST(MetricsTest, PrometheusFamiliesAppearOnceEach) {
  Metrics metrics;
  Populate(metrics);
  const std::string text = metrics.RenderPrometheus();
  const Exposition e = CheckExposition(text);
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"dlsys_inference_request_success_total", "counter"},
      {"dlsys_inference_request_failure_total", "counter"},
      {"dlsys_inference_count_total", "counter"},
      {"dlsys_inference_exec_count_total", "counter"},
      {"dlsys_inference_queue_duration_seconds", "histogram"},
      {"dlsys_inference_compute_duration_seconds", "histogram"},
      {"dlsys_inference_request_duration_seconds", "histogram"},
      {"dlsys_inference_batch_size", "histogram"},
      {"dlsys_inference_queue_depth", "gauge"},
      {"dlsys_inference_executing_requests", "gauge"},
      {"dlsys_model_load_duration_seconds", "gauge"},
      {"process_resident_memory_bytes", "gauge"},
      {"process_start_time_seconds", "gauge"},
  };
  ASSERT_EQ(e.order.size(), expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(e.order[i], expected[i].first);
    EXPECT_EQ(e.types.at(expected[i].first), expected[i].second);
  }
  // Every model version in every per-model family; every failure reason, zeros included.
  EXPECT_EQ(e.samples.at("dlsys_inference_request_success_total").size(), 2u);
  EXPECT_EQ(e.samples.at("dlsys_inference_request_failure_total").size(), 8u);
  EXPECT_EQ(e.samples.at("dlsys_inference_request_duration_seconds").size(), 2u * (19 + 1 + 2));
  EXPECT_EQ(e.samples.at("dlsys_inference_batch_size").size(), 2u * (11 + 1 + 2));
  EXPECT_NE(text.find("dlsys_inference_request_failure_total{model=\"mlp\",version=\"1\","
                      "reason=\"deadline\"} 0\n"),
            std::string::npos);
  EXPECT_NE(text.find("dlsys_inference_request_failure_total{model=\"mlp\",version=\"1\","
                      "reason=\"overloaded\"} 1\n"),
            std::string::npos);
}

TEST(MetricsTest, PrometheusValues) {
  Metrics metrics;
  Populate(metrics);
  const std::string text = metrics.RenderPrometheus();
  const std::string mlp = "{model=\"mlp\",version=\"1\"";
  auto has = [&](const std::string& line) {
    EXPECT_NE(text.find(line + "\n"), std::string::npos) << line << "\nin\n" << text;
  };
  has("dlsys_inference_request_success_total" + mlp + "} 2");
  has("dlsys_inference_count_total" + mlp + "} 4");
  has("dlsys_inference_exec_count_total" + mlp + "} 2");
  has("dlsys_inference_queue_depth" + mlp + "} 5");
  has("dlsys_model_load_duration_seconds" + mlp + "} 1.25");
  // Bounds as the Prometheus client libraries write them; counts cumulative.
  const std::string req = "dlsys_inference_request_duration_seconds";
  has(req + "_bucket" + mlp + ",le=\"5e-05\"} 0");
  has(req + "_bucket" + mlp + ",le=\"0.0001\"} 0");
  has(req + "_bucket" + mlp + ",le=\"0.0025\"} 1");
  has(req + "_bucket" + mlp + ",le=\"10\"} 1");
  has(req + "_bucket" + mlp + ",le=\"30\"} 2");
  has(req + "_bucket" + mlp + ",le=\"60\"} 2");
  has(req + "_bucket" + mlp + ",le=\"+Inf\"} 2");
  has(req + "_sum" + mlp + "} 30.002");
  has(req + "_count" + mlp + "} 2");
  has("dlsys_inference_batch_size_bucket" + mlp + ",le=\"1\"} 1");
  has("dlsys_inference_batch_size_bucket" + mlp + ",le=\"2\"} 1");
  has("dlsys_inference_batch_size_bucket" + mlp + ",le=\"4\"} 2");
  has("dlsys_inference_batch_size_bucket" + mlp + ",le=\"1024\"} 2");
  EXPECT_NE(text.find("\nprocess_resident_memory_bytes "), std::string::npos);
  EXPECT_NE(text.find("\nprocess_start_time_seconds "), std::string::npos);
}

TEST(MetricsTest, LabelValuesAreEscaped) {
  Metrics metrics;
  Populate(metrics);
  const std::string text = metrics.RenderPrometheus();
  EXPECT_NE(text.find("dlsys_inference_request_success_total{model=\"we\\\"ird\\\\name\\nx\","
                      "version=\"2\"} 1\n"),
            std::string::npos)
      << text;
  // The parser reads them back unchanged.
  const Exposition e = CheckExposition(text);
  bool found = false;
  for (const auto& s : e.samples.at("dlsys_inference_request_success_total")) {
    found = found || s.labels.at("model") == "we\"ird\\name\nx";
  }
  EXPECT_TRUE(found);
}

TEST(MetricsTest, NoModelsIsStillValid) {
  Metrics metrics;
  const Exposition e = CheckExposition(metrics.RenderPrometheus());
  EXPECT_EQ(e.order.size(), 13u);
}

TEST(MetricsTest, StartTimeAndMemory) {
  const double before =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  Metrics metrics;
  const Exposition e = CheckExposition(metrics.RenderPrometheus());
  const double start = std::stod(e.samples.at("process_start_time_seconds").at(0).value);
  EXPECT_GE(start, before - 1);
  EXPECT_LE(start, before + 60);
  EXPECT_GT(ResidentMemoryBytes(), 1u << 20);
  EXPECT_GT(std::stoull(e.samples.at("process_resident_memory_bytes").at(0).value), 0u);
}

TEST(MetricsTest, PromtoolAcceptsTheExposition) {
  if (!std::filesystem::exists("/usr/bin/promtool")) GTEST_SKIP() << "promtool not installed";
  Metrics metrics;
  Populate(metrics);
  dlsys::testing::TempDir dir;
  const std::string file = dir / "metrics.txt";
  dlsys::testing::Spit(file, metrics.RenderPrometheus());
  const std::string out = dir / "promtool.out";
  const int status = std::system(
      ("/usr/bin/promtool check metrics < '" + file + "' > '" + out + "' 2>&1").c_str());
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << dlsys::testing::Slurp(out);
}

TEST(MetricsTest, PromtoolCatchesALintProblem) {
  // The harness itself can fail: a counter without _total is a lint problem (exit 3).
  if (!std::filesystem::exists("/usr/bin/promtool")) GTEST_SKIP() << "promtool not installed";
  dlsys::testing::TempDir dir;
  const std::string file = dir / "bad.txt";
  dlsys::testing::Spit(file,
                       "# HELP foo_requests Requests.\n# TYPE foo_requests counter\n"
                       "foo_requests 1\n");
  const int status =
      std::system(("/usr/bin/promtool check metrics < '" + file + "' > /dev/null 2>&1").c_str());
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_NE(WEXITSTATUS(status), 0);
}

TEST(MetricsTest, StatsJsonFollowsTritonFormat) {
  Metrics metrics;
  Populate(metrics);
  const auto all = nlohmann::json::parse(metrics.RenderStatsJson("", ""));
  ASSERT_EQ(all.at("model_stats").size(), 2u);
  const auto j = nlohmann::json::parse(metrics.RenderStatsJson("mlp", ""));
  ASSERT_EQ(j.at("model_stats").size(), 1u);
  const auto& m = j.at("model_stats")[0];
  EXPECT_EQ(m.at("name"), "mlp");
  EXPECT_EQ(m.at("version"), "1");
  EXPECT_EQ(m.at("last_inference"), 1'700'000'000'500u);
  EXPECT_EQ(m.at("inference_count"), 4u);
  EXPECT_EQ(m.at("execution_count"), 2u);
  const auto& s = m.at("inference_stats");
  EXPECT_EQ(s.at("success"), (nlohmann::json{{"count", 2}, {"ns", 30'002'000'000u}}));
  EXPECT_EQ(s.at("fail"), (nlohmann::json{{"count", 1}, {"ns", 1000}}));
  EXPECT_EQ(s.at("queue"), (nlohmann::json{{"count", 2}, {"ns", 150'000}}));
  EXPECT_EQ(s.at("compute_infer"), (nlohmann::json{{"count", 2}, {"ns", 20'001'500'000u}}));
  for (const char* zero : {"compute_input", "compute_output", "cache_hit", "cache_miss"}) {
    EXPECT_EQ(s.at(zero), (nlohmann::json{{"count", 0}, {"ns", 0}})) << zero;
  }
  EXPECT_TRUE(m.at("batch_stats").is_array());

  EXPECT_EQ(nlohmann::json::parse(metrics.RenderStatsJson("mlp", "2")).at("model_stats").size(),
            0u);
  EXPECT_EQ(nlohmann::json::parse(metrics.RenderStatsJson("nope", "")).at("model_stats").size(),
            0u);
  // ASCII only: the odd name is escaped, not raw.
  const std::string weird = metrics.RenderStatsJson("we\"ird\\name\nx", "2");
  EXPECT_NE(weird.find(R"("name":"we\"ird\\name\nx")"), std::string::npos) << weird;
  EXPECT_EQ(nlohmann::json::parse(weird).at("model_stats")[0].at("inference_stats").at("fail"),
            (nlohmann::json{{"count", 1}, {"ns", 10}}));
}

}  // namespace
}  // namespace dlsys::serve
