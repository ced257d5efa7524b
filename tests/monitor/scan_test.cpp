#include "monitor/scan.h"

#include <gtest/gtest.h>
#include <zlib.h>
#include <zstd.h>
#include <unistd.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "test_tmp.h"

namespace dlsys::monitor {
namespace {

using dlsys::testing::Spit;
using dlsys::testing::TempDir;

// A dlsys serve access record (docs/logging.md), as one line.
std::string Request(const std::string& version, int status, double latency_ms, int batch,
                    const std::string& ts = "2026-12-01T10:00:00.000000Z",
                    const std::string& model = "mlp16") {
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "{\"@timestamp\":\"%s\",\"log.level\":\"%s\",\"message\":\"POST\",\"event\":"
                "\"serve.request\",\"status\":%d,\"latency_ms\":%.6f,\"model\":\"%s\","
                "\"model_version\":\"%s\",\"batch_size\":%d,\"client.port\":4242}\n",
                ts.c_str(), status >= 500 ? "ERROR" : status >= 400 ? "WARN" : "INFO", status,
                latency_ms, model.c_str(), version.c_str(), batch);
  return buf;
}

std::string Ts(int second, int micros = 0) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "2026-12-01T10:%02d:%02d.%06dZ", second / 60, second % 60, micros);
  return buf;
}

const GroupStats* Find(const ScanSummary& s, const std::vector<std::string>& key) {
  for (const auto& g : s.groups) {
    if (g.key == key) return &g;
  }
  return nullptr;
}

class ScanTest : public ::testing::Test {
 protected:
  std::string Write(const std::string& name, const std::string& text) {
    const std::string path = dir_ / name;
    Spit(path, text);
    return path;
  }
  ScanSummary MustScan(const std::vector<std::string>& paths, const ScanOptions& o = {}) {
    auto r = Scan(paths, o);
    EXPECT_TRUE(r) << (r ? "" : r.error().message);
    return r ? std::move(*r) : ScanSummary{};
  }
  TempDir dir_;
};

TEST_F(ScanTest, CountsRequestsPerModelVersionWithExactMeansAndBoundedQuantiles) {
  std::string log;
  std::vector<double> v1;
  for (int i = 0; i < 1000; ++i) {
    const double lat = 0.1 + 0.01 * i;  // 0.1 .. 10.09 ms
    const bool v2 = i % 4 == 0;
    if (!v2) v1.push_back(lat);
    log += Request(v2 ? "2.0.0" : "1.0.0", i % 50 == 0 ? 503 : i % 30 == 0 ? 400 : 200, lat,
                   1 + i % 3, Ts(i / 10, (i % 10) * 100000));
  }
  log += "{\"@timestamp\":\"2026-12-01T10:00:00Z\",\"event\":\"serve.ready\",\"message\":\"x\"}\n";
  const auto s = MustScan({Write("a.log", log)});
  EXPECT_EQ(s.lines, 1001u);
  EXPECT_EQ(s.requests, 1000u);
  EXPECT_EQ(s.events, 1u);
  EXPECT_EQ(s.bad_lines, 0u);
  ASSERT_EQ(s.groups.size(), 2u);
  EXPECT_EQ(s.groups[0].key, (std::vector<std::string>{"mlp16", "1.0.0"})) << "most requests first";
  const GroupStats& g = s.groups[0];
  EXPECT_EQ(g.requests, 750u);
  std::uint64_t s5 = 0, s4 = 0;
  double sum = 0;
  for (int i = 0; i < 1000; ++i) {
    if (i % 4 == 0) continue;
    s5 += i % 50 == 0;
    s4 += i % 50 != 0 && i % 30 == 0;
    sum += 0.1 + 0.01 * i;
  }
  EXPECT_EQ(g.status_5xx, s5);
  EXPECT_EQ(g.status_4xx, s4);
  EXPECT_NEAR(g.latency_ms.mean(), sum / 750, 1e-9);
  std::sort(v1.begin(), v1.end());
  for (double q : {0.5, 0.95, 0.99}) {
    const double exact = v1[static_cast<std::size_t>(std::floor(q * (v1.size() - 1)))];
    EXPECT_LE(std::abs(g.latency_ms.Quantile(q) - exact), 0.01 * exact) << q;
  }
  // Stamped 100 ms apart over the whole log: 750 requests over ~99.9 s.
  EXPECT_NEAR(g.RatePerSecond(), 749.0 / 99.9, 0.1);
  EXPECT_NEAR(g.batch_size_sum / static_cast<double>(g.batch_size_count), 2.0, 0.01);
}

TEST_F(ScanTest, BadLinesAreCountedAndNeverFatal) {
  std::string log = Request("1.0.0", 200, 1, 1);
  log += "not json at all\n";
  log += "{\"status\":200,\"latency_ms\":1.0\n";                       // partial
  log += "{\"status\":\"200\",\"latency_ms\":1.0}\n";                  // status as a string
  log += "{\"status\":200.5,\"latency_ms\":1.0}\n";                    // status not an integer
  log += "{\"status\":200,\"latency_ms\":\"fast\"}\n";                 // latency as a string
  log += "{\"@timestamp\":5,\"status\":200}\n";                        // timestamp as a number
  log += "{\"status\":200,\"model\":\"\xff\xfe\"}\n";                  // invalid UTF-8
  log += "[1,2,3]\n";                                                  // not an object
  log += "{\"status\":200} trailing\n";                                // two values
  log += "{\"status\":200,\"pad\":\"" + std::string(3000, 'x') + "\"}\n";  // over max_line_bytes
  log += "\n   \n";                                                    // blank: not counted
  log += Request("1.0.0", 200, 2, 1);
  ScanOptions o;
  o.max_line_bytes = 2048;
  const auto s = MustScan({Write("bad.log", log)}, o);
  EXPECT_EQ(s.requests, 2u);
  EXPECT_EQ(s.bad_lines, 10u);
  EXPECT_EQ(s.lines, 12u);
}

TEST_F(ScanTest, LinesLongerThanAReadBlockAreBadAndTheNextLineStillCounts) {
  std::string log = Request("1.0.0", 200, 1, 1);
  log += "{\"pad\":\"" + std::string(5 << 20, 'y') + "\"}\n";  // over the read block
  log += Request("1.0.0", 200, 2, 1);
  log += std::string(6 << 20, 'z');  // and one at the end without a newline
  const std::string path = Write("huge.log", log);
  for (const std::uint64_t map_min : {std::uint64_t{0}, UINT64_MAX}) {
    SCOPED_TRACE(map_min == 0 ? "mapped" : "read in blocks");
    ScanOptions o;
    o.map_min_bytes = map_min;
    const auto s = MustScan({path}, o);
    EXPECT_EQ(s.requests, 2u);
    EXPECT_EQ(s.bad_lines, 2u);
  }
}

// A file truncated while it is mapped (copytruncate) raises SIGBUS on the pages past its new
// end: caught, and the file is read again as it is now.
TEST_F(ScanTest, AFileTruncatedWhileMappedIsReadAgainAsItIsNow) {
  std::string log;
  for (int i = 0; i < 20000; ++i) log += Request("1.0.0", 200, 1 + i % 7, 1);
  const std::string path = Write("shrinking.log", log);
  const std::size_t keep = log.size() / 4;  // cut back to the last whole line below
  std::string kept = log.substr(0, keep);
  kept = kept.substr(0, kept.rfind('\n') + 1);
  ScanOptions o;
  o.map_min_bytes = 0;
  o.threads = 2;
  o.min_range_bytes = 1;
  bool truncated = false;
  o.on_mapped = [&] {
    truncated = ::truncate(path.c_str(), static_cast<off_t>(kept.size())) == 0;
  };
  const auto s = MustScan({path}, o);
  ASSERT_TRUE(truncated);
  ScanOptions plain;
  plain.map_min_bytes = UINT64_MAX;
  const auto expect = MustScan({Write("kept.log", kept)}, plain);
  EXPECT_EQ(s.requests, expect.requests);
  EXPECT_EQ(s.lines, expect.lines);
  EXPECT_EQ(s.bytes, kept.size());
  EXPECT_LT(s.requests, 20000u);
}

TEST_F(ScanTest, EveryThreadCountMatchesOneThreadExactly) {
  // Many small ranges: lines cross every range boundary; the last line has no newline.
  std::string log;
  for (int i = 0; i < 3000; ++i) {
    log += Request(i % 3 ? "1.0.0" : "1.1.0", i % 97 == 0 ? 500 : 200, 0.5 + (i % 100) * 0.1,
                   1, Ts(i % 600));
    if (i % 500 == 0) log += "garbage line\n";
  }
  log.pop_back();
  const std::string path = Write("many.log", log);
  ScanOptions one;
  one.threads = 1;
  one.map_min_bytes = UINT64_MAX;
  const auto base = MustScan({path}, one);
  EXPECT_EQ(base.requests, 3000u);
  EXPECT_EQ(base.bad_lines, 6u);
  for (unsigned t : {1u, 2u, 3u, 7u, 16u})
  for (const std::uint64_t map_min : {std::uint64_t{0}, UINT64_MAX}) {
    SCOPED_TRACE("threads " + std::to_string(t) + (map_min == 0 ? ", mapped" : ""));
    ScanOptions o;
    o.threads = t;
    o.min_range_bytes = 1000;
    o.map_min_bytes = map_min;
    const auto s = MustScan({path}, o);
    EXPECT_EQ(s.threads, t);
    EXPECT_EQ(s.lines, base.lines);
    EXPECT_EQ(s.requests, base.requests);
    EXPECT_EQ(s.bad_lines, base.bad_lines);
    EXPECT_EQ(s.bytes, log.size());
    ASSERT_EQ(s.groups.size(), base.groups.size());
    for (std::size_t i = 0; i < s.groups.size(); ++i) {
      EXPECT_EQ(s.groups[i].key, base.groups[i].key);
      EXPECT_EQ(s.groups[i].requests, base.groups[i].requests);
      EXPECT_EQ(s.groups[i].status_5xx, base.groups[i].status_5xx);
      EXPECT_EQ(s.groups[i].latency_ms.Quantile(0.99), base.groups[i].latency_ms.Quantile(0.99));
      EXPECT_EQ(s.groups[i].first_us, base.groups[i].first_us);
      EXPECT_EQ(s.groups[i].last_us, base.groups[i].last_us);
    }
  }
}

std::string Gzip(const std::string& data) {
  z_stream z{};
  deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&z, data.size()) + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

std::string Zstd(const std::string& data) {
  std::string out(ZSTD_compressBound(data.size()), '\0');
  out.resize(ZSTD_compress(out.data(), out.size(), data.data(), data.size(), 3));
  return out;
}

TEST_F(ScanTest, GzipAndZstdRotatedLogsCountLikeThePlainText) {
  std::string log;
  for (int i = 0; i < 500; ++i) log += Request("1.0.0", 200, 1 + i % 7, 1);
  const auto plain = MustScan({Write("a.log", log)});
  // Two gzip members back to back, as `cat a.gz b.gz` gives.
  const std::string half = log.substr(0, log.size() / 2 + 17);
  const auto gz = MustScan({Write("a.log.1.gz", Gzip(half) + Gzip(log.substr(half.size())))});
  const auto zst = MustScan({Write("a.log.2.zst", Zstd(log))});
  for (const auto* s : {&gz, &zst}) {
    EXPECT_EQ(s->requests, plain.requests);
    EXPECT_EQ(s->bad_lines, 0u);
    EXPECT_EQ(s->bytes, log.size()) << "bytes are the decompressed size";
    EXPECT_EQ(s->groups.at(0).latency_ms.sum(), plain.groups.at(0).latency_ms.sum());
  }
  // Several inputs add up.
  const auto both = MustScan({dir_ / "a.log", dir_ / "a.log.2.zst"});
  EXPECT_EQ(both.requests, 2 * plain.requests);
}

TEST_F(ScanTest, CorruptOrTruncatedCompressedLogsAreErrorsNamingTheFile) {
  std::string log;
  for (int i = 0; i < 2000; ++i) log += Request("1.0.0", 200, 1, 1);
  const std::string gz = Gzip(log);
  const std::string zst = Zstd(log);
  for (const auto& [name, data] : std::map<std::string, std::string>{
           {"cut.gz", gz.substr(0, gz.size() / 2)},
           {"flipped.gz", gz.substr(0, 40) + std::string(1, static_cast<char>(gz[40] ^ 0x55)) +
                              gz.substr(41)},
           {"cut.zst", zst.substr(0, zst.size() / 2)}}) {
    SCOPED_TRACE(name);
    auto r = Scan({Write(name, data)}, {});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Code::kInvalid);
    EXPECT_NE(r.error().message.find(name), std::string::npos) << r.error().message;
  }
}

TEST_F(ScanTest, MissingFilesAndDirectoriesAreRefused) {
  auto missing = Scan({dir_ / "nope.log"}, {});
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Code::kNotFound);
  auto directory = Scan({dir_.path().string()}, {});
  ASSERT_FALSE(directory);
  EXPECT_EQ(directory.error().code, Code::kInvalid);
  EXPECT_NE(directory.error().message.find("directory"), std::string::npos);
}

TEST_F(ScanTest, WhereLevelSinceAndByChooseAndGroupRecords) {
  std::string log;
  log += Request("1.0.0", 200, 1, 1, "2026-12-01T10:00:00Z");
  log += Request("1.0.0", 503, 2, 1, "2026-12-01T10:05:00Z");
  log += Request("2.0.0", 200, 3, 1, "2026-12-01T10:10:00Z", "other");
  log += Request("2.0.0", 404, 4, 1, "2026-12-01T10:10:00+01:00");  // 09:10 UTC
  const std::string path = Write("f.log", log);
  ScanOptions o;
  o.where = {{"model", "mlp16"}, {"status", "503"}};
  auto s = MustScan({path}, o);
  EXPECT_EQ(s.requests, 1u);
  EXPECT_EQ(s.filtered_out, 3u);
  o = {};
  o.min_level = 3;  // WARN and above
  EXPECT_EQ(MustScan({path}, o).requests, 2u);
  o = {};
  o.since_us = ParseRfc3339Us("2026-12-01T10:04:00Z");
  EXPECT_EQ(MustScan({path}, o).requests, 2u);
  o = {};
  o.by = {"model"};
  s = MustScan({path}, o);
  ASSERT_EQ(s.groups.size(), 2u);
  EXPECT_EQ(s.groups[0].key, (std::vector<std::string>{"mlp16"}));
  EXPECT_EQ(s.groups[0].requests, 3u);
  o.by = {"status"};  // a number as a key
  s = MustScan({path}, o);
  ASSERT_NE(Find(s, {"503"}), nullptr);
  o.by = {"missing_field"};
  s = MustScan({path}, o);
  ASSERT_EQ(s.groups.size(), 1u);
  EXPECT_EQ(s.groups[0].key, (std::vector<std::string>{"-"}));
}

TEST_F(ScanTest, GroupsAreCappedSoMemoryStaysBounded) {
  std::string log;
  for (int i = 0; i < 50; ++i) log += Request("v" + std::to_string(i), 200, 1, 1);
  ScanOptions o;
  o.max_groups = 10;
  const auto s = MustScan({Write("g.log", log)}, o);
  EXPECT_TRUE(s.groups_capped);
  EXPECT_EQ(s.groups.size(), 11u);
  EXPECT_EQ(s.requests, 50u);
  EXPECT_NE(Find(s, {"(other)", "(other)"}), nullptr);
}

TEST(Rfc3339, ParsesFractionsAndOffsetsAndRefusesTheRest) {
  EXPECT_EQ(ParseRfc3339Us("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(ParseRfc3339Us("1970-01-01T00:00:01.5Z"), 1500000);
  EXPECT_EQ(ParseRfc3339Us("2026-12-01T18:43:23.133456Z"), 1796150603133456);
  EXPECT_EQ(ParseRfc3339Us("2026-12-01T19:43:23.133456+01:00"), 1796150603133456);
  EXPECT_EQ(ParseRfc3339Us("1969-12-31T23:59:59Z"), -1000000);
  for (const char* bad : {"", "2026-12-01", "2026-12-01T18:43:23", "2026-13-01T00:00:00Z",
                          "2026-12-01T18:43:23.Z", "2026-12-01T18:43:23Zx", "x026-12-01T18:43:23Z"}) {
    EXPECT_FALSE(ParseRfc3339Us(bad)) << bad;
  }
  EXPECT_EQ(FormatRfc3339Us(1796150603133456), "2026-12-01T18:43:23.133456Z");
  EXPECT_EQ(FormatRfc3339Us(-1), "1969-12-31T23:59:59.999999Z");
}

TEST(Duration, ParsesUnitsAndRefusesTheRest) {
  EXPECT_EQ(ParseDurationUs("90s"), 90000000);
  EXPECT_EQ(ParseDurationUs("15m"), 900000000);
  EXPECT_EQ(ParseDurationUs("1h30m"), 5400000000);
  EXPECT_EQ(ParseDurationUs("250ms"), 250000);
  EXPECT_EQ(ParseDurationUs("2d"), 172800000000);
  for (const char* bad : {"", "5", "m", "-5m", "5x", "0s", "99999999999999999999h"}) {
    EXPECT_FALSE(ParseDurationUs(bad)) << bad;
  }
}

}  // namespace
}  // namespace dlsys::monitor
