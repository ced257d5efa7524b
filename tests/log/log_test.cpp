#include "log/log.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/text.h"
#include "log/internal/format.h"
#include "test_tmp.h"

namespace dlsys::log {
namespace {

using dlsys::testing::Slurp;
using dlsys::testing::Spit;
using dlsys::testing::TempDir;

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

bool AsciiOnly(const std::string& s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  }
  return true;
}

std::string JsonString(std::string_view s) {
  std::string out;
  core::AppendAsciiJsonString(out, s);
  return out;
}

class LogTest : public ::testing::Test {
 protected:
  void TearDown() override { Shutdown(); }

  void InitJson(Level level = Level::kTrace, bool async = false) {
    Options o;
    o.level = level;
    o.format = Format::kJson;
    o.file = file_;
    o.async = async;
    o.service = "dlsys-test";
    ASSERT_TRUE(Init(o)) << file_;
  }

  // Every line of the log, each parsed with its key order kept.
  std::vector<nlohmann::ordered_json> Records() {
    std::vector<nlohmann::ordered_json> out;
    for (const auto& line : Lines(Slurp(file_))) {
      out.push_back(nlohmann::ordered_json::parse(line));
    }
    return out;
  }

  TempDir dir_;
  std::string file_ = dir_ / "log.jsonl";
};

TEST(FormatTest, JsonStringEscapesControlsQuotesAndBackslash) {
  EXPECT_EQ(JsonString("plain text"), "\"plain text\"");
  EXPECT_EQ(JsonString("a\"b\\c"), R"("a\"b\\c")");
  EXPECT_EQ(JsonString("\b\f\n\r\t"), R"("\b\f\n\r\t")");
  EXPECT_EQ(JsonString(std::string("\x00\x01\x1b\x1f\x7f", 5)),
            R"("\u0000\u0001\u001b\u001f\u007f")");
}

TEST(FormatTest, JsonStringIsAsciiOnlyWithSurrogatePairs) {
  EXPECT_EQ(JsonString("caf\xc3\xa9"), R"("caf\u00e9")");
  EXPECT_EQ(JsonString("\xe2\x80\xae"), R"("\u202e")");            // RIGHT-TO-LEFT OVERRIDE
  EXPECT_EQ(JsonString("\xf0\x9f\x98\x80"), R"("\ud83d\ude00")");  // U+1F600
  EXPECT_EQ(JsonString("\xf4\x8f\xbf\xbf"), R"("\udbff\udfff")");  // U+10FFFF
  // Round trip through a JSON parser gives the original UTF-8 back.
  const std::string text = "\xce\xbb x \xf0\x9f\x98\x80 \xe4\xb8\xad";
  EXPECT_EQ(nlohmann::json::parse(JsonString(text)).get<std::string>(), text);
}

TEST(FormatTest, InvalidUtf8BecomesReplacementCharacters) {
  EXPECT_EQ(JsonString("a\xff"
                       "b"),
            R"("a\ufffdb")");
  EXPECT_EQ(JsonString("\xc0\xaf"), R"("\ufffd\ufffd")");            // overlong '/'
  EXPECT_EQ(JsonString("\xed\xa0\x80"), R"("\ufffd\ufffd\ufffd")");  // a surrogate
  EXPECT_EQ(JsonString("x\xe2\x82"), R"("x\ufffd\ufffd")");          // truncated
  EXPECT_NO_THROW(nlohmann::json::parse(JsonString("\xf8\x88\x80\x80\x80")));
}

TEST(FormatTest, NumbersAreShortestRoundTripAndNonFiniteIsNull) {
  auto num = [](double v) {
    std::string out;
    internal::AppendJsonNumber(out, v);
    return out;
  };
  EXPECT_EQ(num(0.1), "0.1");
  EXPECT_EQ(num(1.25), "1.25");
  EXPECT_EQ(num(3), "3");
  EXPECT_EQ(num(1e300), "1e+300");
  EXPECT_EQ(nlohmann::json::parse(num(1.0 / 3)).get<double>(), 1.0 / 3);
  EXPECT_EQ(num(std::numeric_limits<double>::quiet_NaN()), "null");
  EXPECT_EQ(num(std::numeric_limits<double>::infinity()), "null");
  EXPECT_EQ(num(-std::numeric_limits<double>::infinity()), "null");
}

TEST(FormatTest, VerbatimJsonStaysOnOneAsciiLine) {
  std::string out;
  internal::AppendJsonVerbatim(out, "{\"a\":\n [1,\t2],\"b\":\"\xc3\xa9\xff\"}");
  EXPECT_EQ(out, R"({"a":  [1, 2],"b":"\u00e9\ufffd"})");
  EXPECT_EQ(nlohmann::json::parse(out)["b"], "\xc3\xa9\xef\xbf\xbd");
}

TEST(FormatTest, TextValuesAreQuotedWhenNeededAndTerminalSafe) {
  auto text = [](std::string_view v) {
    std::string out;
    internal::AppendTextValue(out, v);
    return out;
  };
  EXPECT_EQ(text("mlp"), "mlp");
  EXPECT_EQ(text("two words"), "\"two words\"");
  EXPECT_EQ(text(""), "\"\"");
  EXPECT_EQ(text("a=b"), "\"a=b\"");
  EXPECT_EQ(text("say \"hi\""), R"("say \"hi\"")");
  EXPECT_EQ(text("\x1b[2J"), R"("\\x1b[2J")");  // ESC shown, never sent
}

TEST(FormatTest, TimestampIsRfc3339Utc) {
  using namespace std::chrono;
  const sys_time<microseconds> t = sys_days{year{2026} / December / 1} + hours{15} + minutes{47} +
                                   seconds{28} + microseconds{123456};
  EXPECT_EQ(internal::FormatTimestamp(t, 6), "2026-12-01T15:47:28.123456Z");
  EXPECT_EQ(internal::FormatTimestamp(t, 3), "2026-12-01T15:47:28.123Z");
  EXPECT_EQ(internal::FormatTimestamp(sys_days{year{1970} / January / 1}, 6),
            "1970-01-01T00:00:00.000000Z");
}

TEST(LevelTest, NamesSeveritiesAndParsing) {
  const Level all[] = {Level::kTrace, Level::kDebug, Level::kInfo,
                       Level::kWarn,  Level::kError, Level::kFatal};
  const char* names[] = {"TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"};
  const int severities[] = {1, 5, 9, 13, 17, 21};
  for (int i = 0; i < 6; ++i) {
    EXPECT_STREQ(LevelName(all[i]), names[i]);
    EXPECT_EQ(SeverityNumber(all[i]), severities[i]);
    EXPECT_EQ(ParseLevel(names[i]), all[i]);
  }
  EXPECT_EQ(ParseLevel("debug"), Level::kDebug);
  EXPECT_EQ(ParseLevel("warning"), Level::kWarn);
  EXPECT_EQ(ParseLevel("verbose"), std::nullopt);
  EXPECT_EQ(ParseFormat("json"), Format::kJson);
  EXPECT_EQ(ParseFormat("text"), Format::kText);
  EXPECT_EQ(ParseFormat("JSON5"), std::nullopt);
}

TEST_F(LogTest, FixedFieldsComeFirstThenFieldsInOrder) {
  InitJson();
  Info("pack.done", "packed mlp 1.0.0")
      .Str("model", "mlp")
      .Int("archive_bytes", 1234)
      .Num("duration_ms", 1.5)
      .Bool("signed", true)
      .Json("input", R"({"x":{"shape":[2,4],"count":8}})")
      .Int("negative", -7)
      .Emit();
  Shutdown();
  const auto records = Records();
  ASSERT_EQ(records.size(), 1u);
  const auto& r = records[0];
  std::vector<std::string> keys;
  for (const auto& [key, value] : r.items()) keys.push_back(key);
  const std::vector<std::string> expected = {
      "@timestamp",    "log.level",   "message", "ecs.version", "severity",
      "event",         "service",     "host",    "pid",         "model",
      "archive_bytes", "duration_ms", "signed",  "input",       "negative"};
  EXPECT_EQ(keys, expected);
  EXPECT_EQ(r["log.level"], "INFO");
  EXPECT_EQ(r["message"], "packed mlp 1.0.0");
  EXPECT_EQ(r["ecs.version"], "8.11.0");
  EXPECT_EQ(r["severity"], 9);
  EXPECT_EQ(r["event"], "pack.done");
  EXPECT_EQ(r["service"], "dlsys-test");
  EXPECT_EQ(r["pid"], static_cast<int>(::getpid()));
  EXPECT_FALSE(r["host"].get<std::string>().empty());
  EXPECT_EQ(r["model"], "mlp");
  EXPECT_EQ(r["archive_bytes"], 1234);
  EXPECT_EQ(r["duration_ms"], 1.5);
  EXPECT_EQ(r["signed"], true);
  EXPECT_EQ(r["input"]["x"]["shape"], nlohmann::json::parse("[2,4]"));
  EXPECT_EQ(r["negative"], -7);
  EXPECT_TRUE(std::regex_match(r["@timestamp"].get<std::string>(),
                               std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z)")));
}

TEST_F(LogTest, HostileStringsStayOnOneAsciiLine) {
  InitJson();
  const std::string hostile = std::string("line1\nline2\r\x1b[31m\"q\"\\ \xe2\x80\xae \xff", 27);
  Warn(hostile, hostile).Str(hostile, hostile).Num("nan", std::nan("")).Emit();
  Warn("second", "record").Emit();
  Shutdown();
  const std::string text = Slurp(file_);
  EXPECT_TRUE(AsciiOnly(text));
  const auto records = Records();
  ASSERT_EQ(records.size(), 2u);
  const std::string expected =
      std::string("line1\nline2\r\x1b[31m\"q\"\\ \xe2\x80\xae \xef\xbf\xbd");
  EXPECT_EQ(records[0]["message"], expected);
  EXPECT_EQ(records[0]["event"], expected);
  EXPECT_EQ(records[0][expected], expected);
  EXPECT_TRUE(records[0]["nan"].is_null());
  EXPECT_EQ(records[1]["event"], "second");
}

TEST_F(LogTest, RecordsBelowTheLevelAreNotWritten) {
  InitJson(Level::kInfo);
  EXPECT_FALSE(Enabled(Level::kDebug));
  EXPECT_TRUE(Enabled(Level::kInfo));
  EXPECT_TRUE(Enabled(Level::kFatal));
  Trace("t", "trace").Str("k", "v").Emit();
  Debug("d", "debug").Emit();
  Info("i", "info").Emit();
  Warn("w", "warn").Emit();
  Error("e", "error").Emit();
  Record(Level::kFatal, "f", "fatal").Emit();
  Shutdown();
  std::vector<std::string> events;
  std::vector<int> severities;
  for (const auto& r : Records()) {
    events.push_back(r["event"]);
    severities.push_back(r["severity"]);
  }
  EXPECT_EQ(events, (std::vector<std::string>{"i", "w", "e", "f"}));
  EXPECT_EQ(severities, (std::vector<int>{9, 13, 17, 21}));
}

TEST_F(LogTest, EmitTwiceWritesOnceAndUnemittedRecordsWriteNothing) {
  InitJson();
  auto r = Info("once", "");
  r.Emit();
  r.Emit();
  { auto dropped = Info("never", "not emitted"); }
  Shutdown();
  ASSERT_EQ(Records().size(), 1u);
  EXPECT_EQ(Records()[0]["event"], "once");
}

TEST_F(LogTest, TextFormatIsOneTerminalSafeLine) {
  Options o;
  o.level = Level::kDebug;
  o.file = file_;
  ASSERT_TRUE(Init(o));
  Info("pack.done", "packed\x1b[2J mlp")
      .Str("model", "mlp")
      .Str("note", "two words")
      .Int("n", 3)
      .Num("ms", 0.5)
      .Bool("ok", false)
      .Emit();
  Debug("phase", "x\ny").Emit();
  Shutdown();
  const auto lines = Lines(Slurp(file_));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_TRUE(std::regex_match(
      lines[0],
      std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO  pack\.done: )"
                 R"(packed\\x1b\[2J mlp model=mlp note="two words" n=3 ms=0\.5 ok=false)")))
      << lines[0];
  EXPECT_TRUE(lines[1].ends_with(" DEBUG phase: x\\ny")) << lines[1];
}

TEST_F(LogTest, AsyncWritesEverythingByShutdown) {
  InitJson(Level::kInfo, /*async=*/true);
  constexpr int kRecords = 20000;  // more than the queue holds: emitters must wait, not drop
  for (int i = 0; i < kRecords; ++i) Info("n", "async").Int("i", i).Emit();
  Shutdown();
  const auto records = Records();
  ASSERT_EQ(records.size(), static_cast<std::size_t>(kRecords));
  for (int i = 0; i < kRecords; ++i) ASSERT_EQ(records[i]["i"], i);
}

TEST_F(LogTest, FileIsAppendedToAndCreated0644) {
  Spit(file_, "previous line\n");
  InitJson();
  Info("a", "appended").Emit();
  Shutdown();
  auto lines = Lines(Slurp(file_));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], "previous line");

  const std::string fresh = dir_ / "fresh.jsonl";
  Options o;
  o.file = fresh;
  ASSERT_TRUE(Init(o));
  Shutdown();
  struct stat st {};
  ASSERT_EQ(::stat(fresh.c_str(), &st), 0);
  const mode_t mask = ::umask(0);
  ::umask(mask);
  EXPECT_EQ(st.st_mode & 0777, 0644 & ~mask);
}

TEST_F(LogTest, InitAgainReplacesTheConfiguration) {
  InitJson();
  Info("first", "to the first file").Emit();
  const std::string second = dir_ / "second.jsonl";
  Options o;
  o.level = Level::kInfo;
  o.format = Format::kJson;
  o.file = second;
  ASSERT_TRUE(Init(o));
  EXPECT_EQ(CurrentOptions().file, second);
  EXPECT_EQ(CurrentOptions().level, Level::kInfo);
  Info("second", "to the second file").Emit();
  Debug("dropped", "below the new level").Emit();
  Shutdown();
  const auto records = Records();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0]["event"], "first");
  const auto lines = Lines(Slurp(second));
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(nlohmann::json::parse(lines[0])["event"], "second");
  EXPECT_EQ(CurrentOptions().file, "");
  EXPECT_EQ(CurrentOptions().level, Level::kWarn);
}

TEST_F(LogTest, RefusesFifoAndDirectoryWithoutBlockingAndKeepsTheOldLog) {
  InitJson();
  const std::string fifo = dir_ / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  Options o;
  o.file = fifo;
  auto r = Init(o);  // would block forever without O_NONBLOCK (no reader)
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kInvalid);
  EXPECT_NE(r.error().message.find(fifo), std::string::npos) << r.error().message;

  o.file = dir_.path().string();
  r = Init(o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kInvalid);
  EXPECT_NE(r.error().message.find(o.file), std::string::npos) << r.error().message;

  o.file = dir_ / "missing-dir/log.jsonl";
  r = Init(o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kInvalid);
  EXPECT_NE(r.error().message.find(o.file), std::string::npos) << r.error().message;

  Info("still", "the old log").Emit();
  Shutdown();
  ASSERT_EQ(Records().size(), 1u);
}

TEST_F(LogTest, RefusesFifoWithAReader) {
  const std::string fifo = dir_ / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const int reader = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK);
  ASSERT_GE(reader, 0);
  Options o;
  o.file = fifo;
  auto r = Init(o);
  ::close(reader);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("FIFO"), std::string::npos) << r.error().message;
}

void Hammer() {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 2000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([t] {
      // Long enough that a torn write would show; varied so lines differ in length.
      const std::string payload(100 + 37 * t, static_cast<char>('a' + t));
      for (int i = 0; i < kPerThread; ++i) {
        Info("hammer", payload).Int("thread", t).Int("i", i).Str("\xc3\xa9", payload).Emit();
      }
    });
  }
  for (auto& th : threads) th.join();
}

TEST_F(LogTest, ConcurrentEmitsProduceIntactLines) {
  for (bool async : {false, true}) {
    SCOPED_TRACE(async ? "async" : "sync");
    ::unlink(file_.c_str());
    InitJson(Level::kInfo, async);
    Hammer();
    Shutdown();
    const auto lines = Lines(Slurp(file_));
    ASSERT_EQ(lines.size(), 8u * 2000u);
    std::vector<int> next(8, 0);
    for (const auto& line : lines) {
      nlohmann::json r;
      ASSERT_NO_THROW(r = nlohmann::json::parse(line)) << line;
      const int t = r["thread"];
      ASSERT_EQ(r["i"], next[t]) << "records of one thread keep their order";
      ++next[t];
      ASSERT_EQ(r["message"].get<std::string>().size(), 100u + 37u * t);
    }
  }
}

}  // namespace
}  // namespace dlsys::log
