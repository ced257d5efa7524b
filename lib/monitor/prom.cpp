#include "monitor/prom.h"

#include <algorithm>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <deque>
#include <limits>

#include "core/text.h"
#include "core/utf8.h"

namespace dlsys::monitor {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

bool IsNameStart(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
}
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsBlank(char c) { return c == ' ' || c == '\t'; }

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

std::optional<double> ParseFloatImpl(std::string_view s, bool allow_hex) {
  if (s.empty()) return std::nullopt;
  const bool has_sign = s[0] == '+' || s[0] == '-';
  const bool neg = s[0] == '-';
  const std::string_view rest = s.substr(has_sign ? 1 : 0);
  // Go's special(): [+-]inf, [+-]infinity, and nan without a sign, in any case.
  if (EqualsIgnoreCase(rest, "inf") || EqualsIgnoreCase(rest, "infinity")) return neg ? -kInf : kInf;
  if (!has_sign && EqualsIgnoreCase(rest, "nan")) return kNaN;
  if (rest.empty() || rest.find('_') != std::string_view::npos) return std::nullopt;
  double v = 0;
  std::from_chars_result r;
  if (rest.size() > 2 && rest[0] == '0' && (rest[1] == 'x' || rest[1] == 'X')) {
    // Go requires the p exponent of a hexadecimal float.
    if (!allow_hex || rest.find_first_of("pP") == std::string_view::npos) return std::nullopt;
    const std::string_view hex = rest.substr(2);
    if (hex.empty() || hex[0] == '+' || hex[0] == '-') return std::nullopt;
    r = std::from_chars(hex.data(), hex.data() + hex.size(), v, std::chars_format::hex);
  } else {
    if (!IsDigit(rest[0]) && rest[0] != '.') return std::nullopt;
    for (char c : rest) {
      if (!IsDigit(c) && c != '.' && c != 'e' && c != 'E' && c != '+' && c != '-') {
        return std::nullopt;
      }
    }
    r = std::from_chars(rest.data(), rest.data() + rest.size(), v, std::chars_format::general);
  }
  if (r.ptr != rest.data() + rest.size() && !(r.ec == std::errc::result_out_of_range)) {
    return std::nullopt;
  }
  if (r.ec == std::errc::result_out_of_range) {
    // Go fails on overflow but rounds an underflow to 0 (or a subnormal): strtod tells which.
    const std::string copy(s);
    char* end = nullptr;
    const double d = std::strtod(copy.c_str(), &end);
    if (std::isinf(d)) return std::nullopt;
    return d;
  }
  if (r.ec != std::errc()) return std::nullopt;
  return neg ? -v : v;
}

// ---- Parser -------------------------------------------------------------------------------

// One line of the body, tokenized as promlex.l does (blanks between tokens are skipped).
class LineParser {
 public:
  LineParser(std::string_view line, std::size_t number, const PromLimits& limits)
      : s_(line), number_(number), limits_(limits) {}

  // Appends to `out` what the line holds; an error names the line.
  Result<void> Parse(PromExposition& out) {
    SkipBlanks();
    if (at_ == s_.size()) return {};
    if (s_[at_] == '#') return Comment(out);
    return SampleLine(out);
  }

 private:
  tl::unexpected<Error> Bad(const std::string& what) const {
    return Fail(Code::kInvalid, "line " + std::to_string(number_) + ": " + what,
                {"line " + std::to_string(number_) + ": " + core::Truncate(s_, 120)});
  }

  void SkipBlanks() {
    while (at_ < s_.size() && IsBlank(s_[at_])) ++at_;
  }

  std::string_view Name(bool metric) {
    const std::size_t start = at_;
    if (at_ < s_.size() && (metric ? IsNameStart(s_[at_]) : (IsNameStart(s_[at_]) && s_[at_] != ':'))) {
      ++at_;
      while (at_ < s_.size() &&
             (IsDigit(s_[at_]) || (metric ? IsNameStart(s_[at_]) : (IsNameStart(s_[at_]) && s_[at_] != ':')))) {
        ++at_;
      }
    }
    return s_.substr(start, at_ - start);
  }

  Result<void> Comment(PromExposition& out) {
    ++at_;  // '#'
    // "#x" and "# anything" other than HELP/TYPE followed by a blank are comments.
    if (at_ >= s_.size() || !IsBlank(s_[at_])) return {};
    SkipBlanks();
    const std::string_view rest = s_.substr(at_);
    const bool help = rest.starts_with("HELP");
    if (!(help || rest.starts_with("TYPE")) || rest.size() < 5 || !IsBlank(rest[4])) return {};
    at_ += 4;
    SkipBlanks();
    const std::string_view name = Name(true);
    const char* kind = help ? "HELP" : "TYPE";
    if (name.empty()) return Bad(std::string("expected a metric name after ") + kind);
    if (at_ < s_.size() && !IsBlank(s_[at_])) {
      return Bad(std::string("expected a blank after the metric name in ") + kind);
    }
    // Prometheus drops exactly one blank before the text.
    const std::string_view text = at_ < s_.size() ? s_.substr(at_ + 1) : std::string_view();
    if (help) {
      if (!core::IsValidUtf8(text)) return Bad("the HELP text is not valid UTF-8");
      return {};
    }
    static const std::pair<const char*, PromType> kTypes[] = {
        {"counter", PromType::kCounter},     {"gauge", PromType::kGauge},
        {"histogram", PromType::kHistogram}, {"summary", PromType::kSummary},
        {"untyped", PromType::kUntyped}};
    for (const auto& [word, type] : kTypes) {
      if (text == word) {
        out.types.emplace_back(std::string(name), type);
        return {};
      }
    }
    return Bad("invalid metric type '" + core::Truncate(text, 40) +
               "' (expected counter, gauge, histogram, summary or untyped)");
  }

  Result<void> LabelValue(std::string& value) {
    ++at_;  // opening quote
    while (at_ < s_.size() && s_[at_] != '"') {
      char c = s_[at_++];
      if (c == '\\') {
        if (at_ >= s_.size()) break;
        const char e = s_[at_++];
        // Only these three are unescaped; Prometheus keeps other escapes as written.
        if (e == 'n') {
          c = '\n';
        } else if (e == '\\' || e == '"') {
          c = e;
        } else {
          value += '\\';
          c = e;
        }
      }
      value += c;
    }
    if (at_ >= s_.size()) return Bad("unterminated label value (a '\"' is missing)");
    ++at_;  // closing quote
    if (!core::IsValidUtf8(value)) return Bad("a label value is not valid UTF-8");
    return {};
  }

  Result<void> Labels(PromSample& sample) {
    ++at_;  // '{'
    for (;;) {
      SkipBlanks();
      if (at_ < s_.size() && s_[at_] == '}') {
        ++at_;
        return {};
      }
      const std::string_view name = Name(false);
      if (name.empty()) return Bad("expected a label name or '}'");
      for (const auto& l : sample.labels) {
        if (l.name == name) return Bad("label '" + std::string(name) + "' given twice");
      }
      if (sample.labels.size() >= limits_.max_labels) {
        return Bad("more than " + std::to_string(limits_.max_labels) + " labels");
      }
      SkipBlanks();
      if (at_ >= s_.size() || s_[at_] != '=') return Bad("expected '=' after label name");
      ++at_;
      SkipBlanks();
      if (at_ >= s_.size() || s_[at_] != '"') return Bad("expected a quoted label value");
      PromLabel label{std::string(name), {}};
      DLSYS_TRY(LabelValue(label.value));
      sample.labels.push_back(std::move(label));
      SkipBlanks();
      // A trailing comma is allowed; so is none between labels (promparse.go accepts both).
      if (at_ < s_.size() && s_[at_] == ',') ++at_;
    }
  }

  Result<void> SampleLine(PromExposition& out) {
    PromSample sample;
    const std::string_view name = Name(true);
    if (name.empty()) return Bad("expected a metric name, a '#' line or a blank line");
    sample.name = std::string(name);
    SkipBlanks();
    if (at_ < s_.size() && s_[at_] == '{') {
      DLSYS_TRY(Labels(sample));
      SkipBlanks();
    }
    const std::size_t start = at_;
    while (at_ < s_.size() && !IsBlank(s_[at_]) && s_[at_] != '{') ++at_;
    const std::string_view value = s_.substr(start, at_ - start);
    if (value.empty()) return Bad("expected a value after the metric");
    const auto v = value.find_first_of("pP_") == std::string_view::npos
                       ? ParseFloatImpl(value, false)
                       : std::nullopt;
    if (!v) return Bad("'" + core::Truncate(value, 40) + "' is not a number");
    sample.value = *v;
    SkipBlanks();
    if (at_ < s_.size()) {
      const std::size_t ts_start = at_;
      while (at_ < s_.size() && IsDigit(s_[at_])) ++at_;
      const std::string_view ts = s_.substr(ts_start, at_ - ts_start);
      if (ts.empty()) return Bad("expected a timestamp (milliseconds) or the end of the line");
      std::int64_t t = 0;
      const auto r = std::from_chars(ts.data(), ts.data() + ts.size(), t);
      if (r.ec != std::errc()) return Bad("timestamp '" + core::Truncate(ts, 40) + "' is out of range");
      SkipBlanks();
      if (at_ < s_.size()) return Bad("expected the end of the line after the timestamp");
      sample.timestamp_ms = t;
    }
    if (out.samples.size() >= limits_.max_samples) {
      return Bad("more than " + std::to_string(limits_.max_samples) + " samples");
    }
    out.samples.push_back(std::move(sample));
    return {};
  }

  std::string_view s_;
  std::size_t at_ = 0;
  std::size_t number_;
  const PromLimits& limits_;
};

// ---- Go's time.Duration.Seconds() for a millisecond range --------------------------------

double GoSeconds(std::int64_t ms) {
  const std::int64_t ns = ms * 1000000;
  const std::int64_t sec = ns / 1000000000;
  const std::int64_t nsec = ns % 1000000000;
  return static_cast<double>(sec) + static_cast<double>(nsec) / 1e9;
}

std::optional<double> ExtrapolatedRate(std::span<const PromPoint> all, std::int64_t range_start,
                                       std::int64_t range_end, bool is_rate) {
  const auto by_time = [](const PromPoint& p, std::int64_t t) { return p.t_ms < t; };
  const auto first = std::lower_bound(all.begin(), all.end(), range_start, by_time);
  const auto last = std::lower_bound(first, all.end(), range_end + 1, by_time);
  const std::span<const PromPoint> points(first, last);
  if (points.size() < 2) return std::nullopt;
  double result = points.back().value - points.front().value;
  double prev = points.front().value;
  for (const auto& p : points.subspan(1)) {
    if (p.value < prev) result += prev;  // a counter reset
    prev = p.value;
  }
  double to_start = static_cast<double>(points.front().t_ms - range_start) / 1000;
  const double to_end = static_cast<double>(range_end - points.back().t_ms) / 1000;
  const double sampled = static_cast<double>(points.back().t_ms - points.front().t_ms) / 1000;
  const double average = sampled / static_cast<double>(points.size() - 1);
  if (result > 0 && points.front().value >= 0) {
    // Counters are never negative: extrapolate no further back than the zero point.
    const double to_zero = sampled * (points.front().value / result);
    if (to_zero < to_start) to_start = to_zero;
  }
  const double threshold = average * 1.1;
  double interval = sampled;
  interval += to_start < threshold ? to_start : average / 2;
  interval += to_end < threshold ? to_end : average / 2;
  double factor = interval / sampled;
  if (is_rate) factor /= GoSeconds(range_end - range_start);
  return result * factor;
}

// ---- HTTP ---------------------------------------------------------------------------------

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

// The text format only: this parser reads nothing else (Prometheus offers OpenMetrics first).
constexpr const char* kAccept = "text/plain;version=0.0.4;q=1,*/*;q=0.1";

std::string HostPort(const ScrapeUrl& url) {
  const bool v6 = url.host.find(':') != std::string::npos;
  return (v6 ? "[" + url.host + "]" : url.host) + ":" + std::to_string(url.port);
}

std::string Seconds(std::chrono::milliseconds d) {
  const auto ms = d.count();
  return ms % 1000 == 0 ? std::to_string(ms / 1000) + "s" : std::to_string(ms) + "ms";
}

// ---- The window ---------------------------------------------------------------------------

constexpr std::string_view kSuccess = "dlsys_inference_request_success_total";
constexpr std::string_view kFailure = "dlsys_inference_request_failure_total";
constexpr std::string_view kInferences = "dlsys_inference_count_total";
constexpr std::string_view kExecutions = "dlsys_inference_exec_count_total";
constexpr std::string_view kBucket = "dlsys_inference_request_duration_seconds_bucket";
constexpr std::string_view kSum = "dlsys_inference_request_duration_seconds_sum";
constexpr std::string_view kCount = "dlsys_inference_request_duration_seconds_count";
constexpr std::string_view kQueueDepth = "dlsys_inference_queue_depth";
constexpr std::string_view kExecuting = "dlsys_inference_executing_requests";

bool Kept(std::string_view name) {
  for (auto n : {kSuccess, kFailure, kInferences, kExecutions, kBucket, kSum, kCount, kQueueDepth,
                 kExecuting}) {
    if (name == n) return true;
  }
  return false;
}

std::string_view LabelOf(const std::vector<PromLabel>& labels, std::string_view name) {
  for (const auto& l : labels) {
    if (l.name == name) return l.value;
  }
  return {};
}

std::string_view LabelName(const std::string& name) {
  return name == "model_version" ? std::string_view("version") : std::string_view(name);
}

void Accumulate(std::optional<double>& acc, std::optional<double> v) {
  if (v) acc = acc ? *acc + *v : *v;
}

double Or(const std::optional<double>& v) { return v ? *v : kNaN; }

double Quantile(double q, const std::map<std::string, double>& by_le) {
  std::vector<PromBucket> buckets;
  for (const auto& [le, count] : by_le) {
    // PromQL skips a bucket whose le does not parse.
    if (auto bound = ParseFloatImpl(le, true)) buckets.push_back({*bound, count});
  }
  if (buckets.empty()) return kNaN;
  return HistogramQuantile(q, std::move(buckets));
}

}  // namespace

std::string_view PromSample::Label(std::string_view label) const {
  return LabelOf(labels, label);
}

std::optional<double> ParseGoFloat(std::string_view text) { return ParseFloatImpl(text, true); }

Result<PromExposition> ParsePromText(std::string_view body, const PromLimits& limits) {
  if (body.size() > limits.max_body_bytes) {
    return Fail(Code::kInvalid, "the metrics are " + std::to_string(body.size()) +
                                    " bytes, more than the limit of " +
                                    std::to_string(limits.max_body_bytes));
  }
  PromExposition out;
  std::size_t number = 0;
  for (std::size_t at = 0; at < body.size();) {
    ++number;
    const std::size_t nl = std::min(body.find('\n', at), body.size());
    const std::string_view line = body.substr(at, nl - at);
    at = nl + 1;
    if (line.size() > limits.max_line_bytes) {
      return Fail(Code::kInvalid, "line " + std::to_string(number) + ": longer than " +
                                      std::to_string(limits.max_line_bytes) + " bytes");
    }
    if (line.find('\0') != std::string_view::npos) {
      return Fail(Code::kInvalid, "line " + std::to_string(number) + ": a NUL byte");
    }
    DLSYS_TRY(LineParser(line, number, limits).Parse(out));
  }
  return out;
}

double HistogramQuantile(double q, std::vector<PromBucket> buckets) {
  if (std::isnan(q)) return kNaN;
  if (q < 0) return -kInf;
  if (q > 1) return kInf;
  if (buckets.empty()) return kNaN;
  for (const auto& b : buckets) {
    if (std::isnan(b.upper_bound)) return kNaN;
  }
  std::sort(buckets.begin(), buckets.end(),
            [](const PromBucket& a, const PromBucket& b) { return a.upper_bound < b.upper_bound; });
  if (!std::isinf(buckets.back().upper_bound) || buckets.back().upper_bound < 0) return kNaN;
  // coalesceBuckets: equal bounds (e.g. le="0.2" and le="2e-1") are one bucket.
  std::size_t n = 0;
  for (std::size_t i = 1; i < buckets.size(); ++i) {
    if (buckets[i].upper_bound == buckets[n].upper_bound) {
      buckets[n].count += buckets[i].count;
    } else {
      buckets[++n] = buckets[i];
    }
  }
  buckets.resize(n + 1);
  // ensureMonotonic: the envelope, so the binary search below is well defined.
  double max = buckets[0].count;
  for (std::size_t i = 1; i < buckets.size(); ++i) {
    if (buckets[i].count > max) {
      max = buckets[i].count;
    } else if (buckets[i].count < max) {
      buckets[i].count = max;
    }
  }
  if (buckets.size() < 2) return kNaN;
  const double observations = buckets.back().count;
  if (observations == 0) return kNaN;
  double rank = q * observations;
  // Go's sort.Search over all but the +Inf bucket, step for step.
  std::size_t lo = 0, hi = buckets.size() - 1;
  while (lo < hi) {
    const std::size_t mid = (lo + hi) / 2;
    if (!(buckets[mid].count >= rank)) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  const std::size_t b = lo;
  if (b == buckets.size() - 1) return buckets[buckets.size() - 2].upper_bound;
  if (b == 0 && buckets[0].upper_bound <= 0) return buckets[0].upper_bound;
  double start = 0;
  const double end = buckets[b].upper_bound;
  double count = buckets[b].count;
  if (b > 0) {
    start = buckets[b - 1].upper_bound;
    count -= buckets[b - 1].count;
    rank -= buckets[b - 1].count;
  }
  return start + (end - start) * (rank / count);
}

std::optional<double> Increase(std::span<const PromPoint> points, std::int64_t range_start_ms,
                               std::int64_t range_end_ms) {
  return ExtrapolatedRate(points, range_start_ms, range_end_ms, false);
}

std::optional<double> Rate(std::span<const PromPoint> points, std::int64_t range_start_ms,
                           std::int64_t range_end_ms) {
  return ExtrapolatedRate(points, range_start_ms, range_end_ms, true);
}

Result<ScrapeUrl> ParseScrapeUrl(std::string_view url) {
  const auto bad = [&](const std::string& what) {
    return Fail(Code::kUsage, "--url '" + std::string(url) + "': " + what,
                {"give http://HOST:PORT/metrics, e.g. --url http://127.0.0.1:8080/metrics"});
  };
  for (char c : url) {
    if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
      return bad("only printable ASCII without spaces is allowed");
    }
  }
  const std::size_t colon = url.find("://");
  if (colon == std::string_view::npos) return bad("not a URL (no scheme)");
  const std::string_view scheme = url.substr(0, colon);
  if (EqualsIgnoreCase(scheme, "https")) {
    return Fail(Code::kUsage,
                "--url '" + std::string(url) + "': https is not supported, only http",
                {"scrape over plain http (e.g. on the host or through `ssh -L`), or let "
                 "Prometheus scrape the TLS endpoint"});
  }
  if (!EqualsIgnoreCase(scheme, "http")) return bad("the scheme must be http://");
  std::string_view rest = url.substr(colon + 3);
  if (rest.find('#') != std::string_view::npos) return bad("a fragment ('#') is not allowed");
  const std::size_t path_at = std::min(rest.find_first_of("/?"), rest.size());
  std::string_view authority = rest.substr(0, path_at);
  ScrapeUrl out;
  out.text = std::string(url);
  out.target = std::string(rest.substr(path_at));
  if (out.target.empty()) out.target = "/metrics";
  if (out.target[0] == '?') out.target = "/" + out.target;
  if (authority.find('@') != std::string_view::npos) return bad("user info is not supported");
  std::string_view port;
  if (!authority.empty() && authority[0] == '[') {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) return bad("an IPv6 address needs its closing ']'");
    out.host = std::string(authority.substr(1, close - 1));
    boost::system::error_code ec;
    const auto addr = asio::ip::make_address_v6(out.host, ec);
    if (ec || out.host.empty()) return bad("'" + out.host + "' is not an IPv6 address");
    (void)addr;
    std::string_view after = authority.substr(close + 1);
    if (!after.empty() && after[0] != ':') return bad("expected ':PORT' after ']'");
    if (!after.empty()) port = after.substr(1);
    if (!after.empty() && port.empty()) return bad("an empty port");
  } else {
    const std::size_t c = authority.find(':');
    out.host = std::string(authority.substr(0, c));
    if (c != std::string_view::npos) {
      port = authority.substr(c + 1);
      if (port.empty()) return bad("an empty port");
    }
    if (out.host.empty()) return bad("no host");
    for (char ch : out.host) {
      if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '-')) {
        return bad("'" + out.host + "' is not a host name or an IPv4 address");
      }
    }
  }
  if (!port.empty()) {
    unsigned p = 0;
    const auto r = std::from_chars(port.data(), port.data() + port.size(), p);
    if (r.ec != std::errc() || r.ptr != port.data() + port.size() || p < 1 || p > 65535) {
      return bad("port '" + std::string(port) + "' is not a number from 1 to 65535");
    }
    out.port = static_cast<std::uint16_t>(p);
  }
  return out;
}

Result<ScrapeResponse> Scrape(const ScrapeUrl& url, std::chrono::milliseconds timeout,
                              std::size_t max_body_bytes) {
  ScrapeResponse out;
  out.time_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  asio::io_context ioc;
  tcp::resolver resolver(ioc);
  tcp::socket socket(ioc);
  asio::steady_timer deadline(ioc);
  beast::flat_buffer buffer;
  http::request<http::empty_body> request{http::verb::get, url.target, 11};
  request.set(http::field::host, HostPort(url));
  request.set(http::field::accept, kAccept);
  request.set(http::field::user_agent, "dlsys-monitor");
  request.set(http::field::connection, "close");
  http::response_parser<http::string_body> parser;
  parser.body_limit(max_body_bytes);

  const char* stage = "resolving the host";
  boost::system::error_code failure;
  bool timed_out = false, finished = false;
  const auto finish = [&](boost::system::error_code ec) {
    finished = true;
    failure = ec;
    deadline.cancel();
  };
  deadline.expires_after(timeout);
  deadline.async_wait([&](boost::system::error_code ec) {
    if (ec || finished) return;
    timed_out = true;
    resolver.cancel();
    boost::system::error_code ignored;
    socket.close(ignored);
  });
  const auto on_read = [&](boost::system::error_code ec, std::size_t) { finish(ec); };
  // Beast 1.74 does not apply body_limit to a Content-Length it reads through async_read:
  // read the header, check the length, then the body (chunked bodies are limited by Beast).
  const auto on_header = [&](boost::system::error_code ec, std::size_t) {
    if (ec) return finish(ec);
    if (parser.content_length() && *parser.content_length() > max_body_bytes) {
      return finish(http::error::body_limit);
    }
    http::async_read(socket, buffer, parser, on_read);
  };
  const auto on_write = [&](boost::system::error_code ec, std::size_t) {
    if (ec) return finish(ec);
    stage = "reading the response";
    http::async_read_header(socket, buffer, parser, on_header);
  };
  const auto on_connect = [&](boost::system::error_code ec, const tcp::endpoint&) {
    if (ec) return finish(ec);
    stage = "sending the request";
    http::async_write(socket, request, on_write);
  };
  const auto on_resolve = [&](boost::system::error_code ec, tcp::resolver::results_type results) {
    if (ec) return finish(ec);
    stage = "connecting";
    asio::async_connect(socket, results, on_connect);
  };
  resolver.async_resolve(url.host, std::to_string(url.port), tcp::resolver::numeric_service,
                         on_resolve);
  ioc.run();

  const std::string where = HostPort(url);
  if (timed_out) {
    return Fail(Code::kUnavailable, "no answer from " + url.text + " within " +
                                        Seconds(timeout) + " (while " + stage + ")",
                {"is dlsys serve running on " + where + " and not overloaded?"});
  }
  if (failure) {
    if (std::string_view(stage) == "resolving the host") {
      return Fail(Code::kUnavailable, "cannot resolve '" + url.host + "': " + failure.message(),
                  {"check the host name in --url"});
    }
    if (std::string_view(stage) != "reading the response") {
      return Fail(Code::kUnavailable, "cannot scrape " + url.text + ": " + failure.message() +
                                          " (while " + stage + ")",
                  {"is dlsys serve running on " + where + "?"});
    }
    if (failure == http::error::body_limit) {
      return Fail(Code::kInvalid, url.text + " sent a body larger than " +
                                      std::to_string(max_body_bytes) + " bytes");
    }
    if (failure == http::error::header_limit) {
      return Fail(Code::kInvalid, url.text + " sent response headers over the size limit");
    }
    if (failure == http::error::end_of_stream || failure == http::error::partial_message ||
        failure == asio::error::eof || failure == asio::error::connection_reset) {
      return Fail(Code::kUnavailable, url.text + " closed the connection before a complete "
                                      "response (" + failure.message() + ")",
                  {"is it dlsys serve (or another HTTP server) running on " + where + "?"});
    }
    return Fail(Code::kInvalid, url.text + " did not answer valid HTTP/1.1: " + failure.message());
  }
  auto response = parser.release();
  if (response.body().size() > max_body_bytes) {  // whatever the framing
    return Fail(Code::kInvalid, url.text + " sent a body larger than " +
                                    std::to_string(max_body_bytes) + " bytes");
  }
  if (response.result_int() != 200) {
    std::string first = response.body().substr(0, 200);
    std::vector<std::string> details;
    if (!first.empty()) details.push_back("body: " + first);
    if (response.result_int() / 100 == 3) {
      details.push_back("redirects are not followed: give the final URL (Location: " +
                        core::Truncate(std::string(response[http::field::location]), 200) + ")");
    }
    return Fail(Code::kUnavailable, url.text + " answered " +
                                        std::to_string(response.result_int()) + " " +
                                        core::Truncate(std::string(response.reason()), 80) +
                                        ", not 200",
                std::move(details));
  }
  const std::string encoding(response[http::field::content_encoding]);
  if (!encoding.empty() && !EqualsIgnoreCase(encoding, "identity")) {
    return Fail(Code::kInvalid, url.text + " answered with Content-Encoding '" +
                                    core::Truncate(encoding, 40) + "', which monitor does not read",
                {"monitor asks for no encoding; the server should not compress"});
  }
  out.content_type = core::Truncate(std::string(response[http::field::content_type]), 200);
  const std::string_view ct = out.content_type;
  if (ct.find("openmetrics") != std::string_view::npos ||
      ct.find("protobuf") != std::string_view::npos) {
    return Fail(Code::kInvalid, url.text + " answered '" + out.content_type +
                                    "'; monitor reads the text format 0.0.4 only",
                {"monitor asks for it with Accept: " + std::string(kAccept)});
  }
  out.body = std::move(response.body());
  return out;
}

// ---- ScrapeWindow ---------------------------------------------------------------------------

struct ScrapeWindow::Impl {
  struct Series {
    std::string name;
    std::vector<PromLabel> labels;  // sorted by name
    std::deque<PromPoint> points;
    std::size_t last_scrape = 0;  // index of the scrape that last had it
  };
  std::int64_t window_ms;
  std::size_t max_scrapes, max_series;
  std::map<std::string, Series> series;  // by name and sorted labels, as PromQL orders them
  std::deque<std::int64_t> scrape_times;
  std::size_t scrapes = 0;
  std::int64_t first_ms = 0, last_ms = 0;
};

ScrapeWindow::ScrapeWindow(std::int64_t window_ms, std::size_t max_scrapes,
                           std::size_t max_series)
    : impl_(std::make_unique<Impl>()) {
  impl_->window_ms = window_ms;
  impl_->max_scrapes = std::max<std::size_t>(2, max_scrapes);
  impl_->max_series = max_series;
}

ScrapeWindow::~ScrapeWindow() = default;

std::size_t ScrapeWindow::scrapes() const { return impl_->scrapes; }

void ScrapeWindow::Add(const PromExposition& exposition, std::int64_t scrape_time_ms) {
  Impl& w = *impl_;
  // The wall clock may step back; keep scrape times increasing, as sample times must be.
  if (w.scrapes > 0 && scrape_time_ms <= w.last_ms) scrape_time_ms = w.last_ms + 1;
  if (w.scrapes == 0) w.first_ms = scrape_time_ms;
  w.last_ms = scrape_time_ms;
  ++w.scrapes;
  w.scrape_times.push_back(scrape_time_ms);
  for (const auto& s : exposition.samples) {
    if (!Kept(s.name)) continue;
    std::vector<PromLabel> labels = s.labels;
    std::sort(labels.begin(), labels.end(),
              [](const PromLabel& a, const PromLabel& b) { return a.name < b.name; });
    std::string id = s.name;
    for (const auto& l : labels) id += '\0' + l.name + '\0' + l.value;
    auto it = w.series.find(id);
    if (it == w.series.end()) {
      if (w.series.size() >= w.max_series) continue;
      it = w.series.emplace(id, Impl::Series{s.name, std::move(labels), {}, 0}).first;
    }
    auto& series = it->second;
    const std::int64_t t = s.timestamp_ms.value_or(scrape_time_ms);
    // Prometheus rejects a sample that is not newer than the series' last one.
    if (!series.points.empty() && t <= series.points.back().t_ms) continue;
    series.points.push_back({t, s.value});
    series.last_scrape = w.scrapes;
  }
  const std::int64_t oldest = w.last_ms - w.window_ms;
  while (w.scrape_times.size() > w.max_scrapes ||
         (!w.scrape_times.empty() && w.scrape_times.front() < oldest)) {
    w.scrape_times.pop_front();
  }
  for (auto it = w.series.begin(); it != w.series.end();) {
    auto& points = it->second.points;
    while (!points.empty() && (points.front().t_ms < oldest || points.size() > w.max_scrapes)) {
      points.pop_front();
    }
    it = points.empty() ? w.series.erase(it) : std::next(it);
  }
}

PromSummary ScrapeWindow::Summarize(const PromGroupOptions& options) const {
  const Impl& w = *impl_;
  PromSummary out;
  if (w.scrapes == 0) return out;
  out.range_end_ms = w.last_ms;
  out.range_start_ms = std::max(w.first_ms, w.last_ms - w.window_ms);
  for (auto t : w.scrape_times) out.scrapes_in_range += t >= out.range_start_ms ? 1 : 0;

  struct Acc {
    std::optional<double> success_rate, failure_rate, sum_rate, count_rate, infer_rate, exec_rate;
    std::map<std::string, double> bucket_rate;  // sum by (le)
    std::optional<double> success, failure, sum, count, inferences, executions, queue, executing;
    std::map<std::string, double> by_reason;
    std::map<std::string, double> bucket;
    bool has_bucket_rate = false;
  };
  std::map<std::vector<std::string>, Acc> groups;
  for (const auto& [id, s] : w.series) {
    bool match = true;
    for (const auto& [label, value] : options.where) {
      if (LabelOf(s.labels, LabelName(label)) != value) match = false;
    }
    if (!match) continue;
    std::vector<std::string> key;
    for (const auto& b : options.by) key.emplace_back(LabelOf(s.labels, LabelName(b)));
    Acc& a = groups[key];
    const std::vector<PromPoint> points(s.points.begin(), s.points.end());
    const auto rate = Rate(points, out.range_start_ms, out.range_end_ms);
    const bool current = s.last_scrape == w.scrapes;
    const std::optional<double> now =
        current ? std::optional<double>(s.points.back().value) : std::nullopt;
    if (s.name == kSuccess) {
      Accumulate(a.success_rate, rate);
      Accumulate(a.success, now);
    } else if (s.name == kFailure) {
      Accumulate(a.failure_rate, rate);
      Accumulate(a.failure, now);
      if (now) a.by_reason[std::string(LabelOf(s.labels, "reason"))] += *now;
    } else if (s.name == kBucket) {
      const std::string le(LabelOf(s.labels, "le"));
      if (rate) a.bucket_rate[le] += *rate;
      if (now) a.bucket[le] += *now;
    } else if (s.name == kSum) {
      Accumulate(a.sum_rate, rate);
      Accumulate(a.sum, now);
    } else if (s.name == kCount) {
      Accumulate(a.count_rate, rate);
      Accumulate(a.count, now);
    } else if (s.name == kInferences) {
      Accumulate(a.infer_rate, rate);
      Accumulate(a.inferences, now);
    } else if (s.name == kExecutions) {
      Accumulate(a.exec_rate, rate);
      Accumulate(a.executions, now);
    } else if (s.name == kQueueDepth) {
      Accumulate(a.queue, now);
    } else if (s.name == kExecuting) {
      Accumulate(a.executing, now);
    }
  }
  for (auto& [key, a] : groups) {
    // A group whose series all left the window before its last scrape is gone.
    if (!a.success && !a.failure && !a.success_rate && !a.failure_rate) continue;
    PromGroup g;
    g.key = key;
    auto& win = g.window;
    std::optional<double> requests_rate;
    Accumulate(requests_rate, a.success_rate);
    Accumulate(requests_rate, a.failure_rate);
    win.requests_per_s = Or(requests_rate);
    win.failures_per_s = Or(a.failure_rate);
    win.error_rate = win.failures_per_s / win.requests_per_s;
    win.p50_s = Quantile(0.5, a.bucket_rate);
    win.p95_s = Quantile(0.95, a.bucket_rate);
    win.p99_s = Quantile(0.99, a.bucket_rate);
    win.mean_s = Or(a.sum_rate) / Or(a.count_rate);
    win.batch_size_mean = Or(a.infer_rate) / Or(a.exec_rate);
    auto& t = g.total;
    t.successes = Or(a.success);
    t.failures = Or(a.failure);
    std::optional<double> requests;
    Accumulate(requests, a.success);
    Accumulate(requests, a.failure);
    t.requests = Or(requests);
    t.failures_by_reason.assign(a.by_reason.begin(), a.by_reason.end());
    t.latency_count = Or(a.count);
    t.p50_s = Quantile(0.5, a.bucket);
    t.p95_s = Quantile(0.95, a.bucket);
    t.p99_s = Quantile(0.99, a.bucket);
    t.mean_s = Or(a.sum) / Or(a.count);
    t.inferences = Or(a.inferences);
    t.executions = Or(a.executions);
    t.batch_size_mean = t.inferences / t.executions;
    t.queue_depth = Or(a.queue);
    t.executing = Or(a.executing);
    out.groups.push_back(std::move(g));
  }
  const auto requests = [](const PromGroup& g) {
    return std::isnan(g.total.requests) ? 0.0 : g.total.requests;
  };
  std::sort(out.groups.begin(), out.groups.end(), [&](const PromGroup& x, const PromGroup& y) {
    if (requests(x) != requests(y)) return requests(x) > requests(y);
    return x.key < y.key;
  });
  if (out.groups.size() > options.max_groups) {
    out.groups.resize(options.max_groups);
    out.groups_capped = true;
  }
  return out;
}

}  // namespace dlsys::monitor
