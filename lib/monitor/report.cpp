#include "monitor/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string_view>
#include <utility>

#include "core/file.h"
#include "core/text.h"

namespace dlsys::monitor {
namespace {

// ---------------------------------------------------------------------------------------------
// Text: every foreign string is made visible (controls, bidi overrides, bad UTF-8), cut, and
// HTML-escaped, so it can only ever be text, in an element or in a quoted attribute.

void AppendEscaped(std::string& out, std::string_view s) {
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
}

std::string Text(std::string_view s, std::size_t max_chars = kReportMaxTextChars) {
  std::string out;
  AppendEscaped(out, core::Truncate(core::TerminalSafe(s), max_chars));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Numbers and times. Non-finite values are shown as a dash, never as "nan" or "inf".

constexpr const char* kDash = "–";

std::string Printf(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

std::string Fixed(double v, int digits) {
  char buf[400];  // %f of 1e308 has 309 digits
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

// Three significant digits or more, never exponent notation below 1e9: 0.152, 12.6, 1234.
std::string Num(double v) {
  if (!std::isfinite(v)) return kDash;
  const double a = std::fabs(v);
  if (a >= 1e9) return Printf("%.3g", v);
  if (a == 0) return "0";
  if (a < 0.001) return Printf("%.2g", v);
  if (a < 10) return Fixed(v, 3);
  if (a < 100) return Fixed(v, 2);
  if (a < 1000) return Fixed(v, 1);
  return Fixed(v, 0);
}

std::string Percent(double fraction) {
  if (!std::isfinite(fraction)) return kDash;
  return Fixed(100 * fraction, 2) + "%";
}

std::string PValue(double p) {
  if (!std::isfinite(p)) return kDash;
  if (p < 0.0001) return "&lt; 0.0001";
  return Fixed(p, 4);
}

std::string Count(std::uint64_t n) {
  std::string digits = std::to_string(n);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

// Howard Hinnant's days_from_civil inverse: exact for every int64 day count we can get here.
void CivilFromDays(std::int64_t z, std::int64_t& y, unsigned& m, unsigned& d) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y = static_cast<std::int64_t>(yoe) + era * 400 + (m <= 2);
}

struct Utc {
  std::int64_t year;
  unsigned month, day, hour, minute, second;
};

Utc ToUtc(std::int64_t us) {
  std::int64_t secs = us / 1000000 - (us % 1000000 < 0 ? 1 : 0);
  std::int64_t days = secs / 86400;
  std::int64_t rem = secs % 86400;
  if (rem < 0) {
    rem += 86400;
    --days;
  }
  Utc u{};
  CivilFromDays(days, u.year, u.month, u.day);
  u.hour = static_cast<unsigned>(rem / 3600);
  u.minute = static_cast<unsigned>(rem / 60 % 60);
  u.second = static_cast<unsigned>(rem % 60);
  return u;
}

// "2026-12-01 18:43:23 UTC".
std::string DateTime(std::int64_t us) {
  const Utc u = ToUtc(us);
  char buf[80];
  std::snprintf(buf, sizeof buf, "%04lld-%02u-%02u %02u:%02u:%02u UTC",
                static_cast<long long>(u.year), u.month, u.day, u.hour, u.minute, u.second);
  return buf;
}

// "1 d 2 h", "3 h 5 min", "12 min 4 s", "42 s", "250 ms".
std::string Duration(std::int64_t us) {
  if (us < 0) return kDash;
  if (us < 1000000) return std::to_string(us / 1000) + " ms";
  const std::int64_t s = us / 1000000;
  const auto two = [](std::int64_t a, const char* ua, std::int64_t b, const char* ub) {
    std::string out = std::to_string(a) + " " + ua;
    if (b > 0) out += " " + std::to_string(b) + " " + ub;
    return out;
  };
  if (s < 60) return std::to_string(s) + " s";
  if (s < 3600) return two(s / 60, "min", s % 60, "s");
  if (s < 86400) return two(s / 3600, "h", s / 60 % 60, "min");
  return two(s / 86400, "d", s / 3600 % 24, "h");
}

// ---------------------------------------------------------------------------------------------
// Verdict levels.

const char* LevelClass(ReportLevel level) {
  switch (level) {
    case ReportLevel::kOk:
      return "ok";
    case ReportLevel::kWarn:
      return "warn";
    case ReportLevel::kBad:
      return "bad";
    case ReportLevel::kNeutral:
      break;
  }
  return "neutral";
}

// A symbol as well as a colour, so the verdict survives grey-scale printing and colour blindness.
const char* LevelIcon(ReportLevel level) {
  switch (level) {
    case ReportLevel::kOk:
      return "✓";
    case ReportLevel::kWarn:
      return "⚠";
    case ReportLevel::kBad:
      return "✖";
    case ReportLevel::kNeutral:
      break;
  }
  return "•";
}

std::string Badge(ReportLevel level, std::string_view verdict) {
  return std::string("<span class=\"badge ") + LevelClass(level) + "\">" + LevelIcon(level) + " " +
         (verdict.empty() ? std::string(kDash) : Text(verdict, 60)) + "</span>";
}

// ---------------------------------------------------------------------------------------------
// Axes: "nice" ticks (1, 2, 5 × 10^k) for values and calendar-aligned ticks for time.

double NiceStep(double raw) {
  if (!(raw > 0) || !std::isfinite(raw)) return 1;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  for (double f : {1.0, 2.0, 5.0}) {
    if (raw <= f * mag) return f * mag;
  }
  return 10 * mag;
}

struct Scale {
  double lo = 0, hi = 1, step = 0.2;
};

// lo..hi widened to whole steps, about `target` intervals; always a non-empty range.
Scale NiceScale(double lo, double hi, int target) {
  if (!(hi > lo)) {
    const double pad = lo == 0 ? 1 : std::fabs(lo) * 0.5;
    lo = lo > 0 ? 0 : lo - (lo == 0 ? 0 : pad);
    hi = hi + pad;
  }
  Scale s;
  s.step = NiceStep((hi - lo) / target);
  s.lo = std::floor(lo / s.step) * s.step;
  s.hi = std::ceil(hi / s.step) * s.step;
  if (!std::isfinite(s.lo) || !std::isfinite(s.hi) || !(s.hi > s.lo)) {
    s.lo = lo;
    s.hi = hi;
  }
  return s;
}

// A tick label: SI suffixes for big numbers, enough decimals to tell neighbouring ticks apart.
std::string TickLabel(double v, double step) {
  if (std::fabs(v) < step * 1e-9) return "0";
  const double a = std::fabs(v);
  if (a >= 1e15) return Printf("%.3g", v);
  static constexpr std::pair<double, const char*> kSi[] = {
      {1e12, "T"}, {1e9, "G"}, {1e6, "M"}, {1e4, "k"}};
  for (const auto& [unit, suffix] : kSi) {
    if (a >= unit) return Printf("%.4g", v / unit) + suffix;
  }
  if (step < 1e-6) return Printf("%.3g", v);
  const int digits =
      step >= 1 ? 0 : std::min(6, static_cast<int>(std::ceil(-std::log10(step) - 1e-9)));
  return Fixed(v, digits);
}

struct TimeTicks {
  std::vector<std::int64_t> at_us;
  bool with_date = false;     // the span crosses days: "12-01 18:40"
  bool with_seconds = false;  // steps below a minute: "18:40:15"
};

TimeTicks MakeTimeTicks(std::int64_t t0, std::int64_t t1, int target) {
  static constexpr std::int64_t kSteps[] = {
      1,    2,    5,     10,    15,    30,    60,     120,    300,     600,     900,     1800,
      3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800, 1209600, 2592000, 7776000, 31536000};
  TimeTicks ticks;
  const std::int64_t span_s = std::max<std::int64_t>(1, (t1 - t0) / 1000000);
  std::int64_t step = kSteps[std::size(kSteps) - 1];
  for (std::int64_t s : kSteps) {
    if (span_s / s <= target) {
      step = s;
      break;
    }
  }
  // Very long spans: multiples of a year so there are never more than about `target` ticks.
  while (span_s / step > target) step *= 2;
  const std::int64_t step_us = step * 1000000;
  std::int64_t first = t0 / step_us * step_us;
  if (first < t0) first += step_us;
  for (std::int64_t t = first; t <= t1 && ticks.at_us.size() < 64; t += step_us) {
    ticks.at_us.push_back(t);
    if (t > std::numeric_limits<std::int64_t>::max() - step_us) break;
  }
  ticks.with_seconds = step < 60;
  ticks.with_date = span_s >= 86400 || ToUtc(t0).day != ToUtc(t1).day;
  return ticks;
}

std::string TimeLabel(std::int64_t us, const TimeTicks& ticks, std::int64_t span_us) {
  const Utc u = ToUtc(us);
  char buf[64];
  if (span_us >= 180LL * 86400 * 1000000) {
    std::snprintf(buf, sizeof buf, "%04lld-%02u-%02u", static_cast<long long>(u.year), u.month,
                  u.day);
  } else if (ticks.with_date && !ticks.with_seconds && u.hour == 0 && u.minute == 0) {
    std::snprintf(buf, sizeof buf, "%02u-%02u", u.month, u.day);
  } else if (ticks.with_date) {
    std::snprintf(buf, sizeof buf, "%02u-%02u %02u:%02u", u.month, u.day, u.hour, u.minute);
  } else if (ticks.with_seconds) {
    std::snprintf(buf, sizeof buf, "%02u:%02u:%02u", u.hour, u.minute, u.second);
  } else {
    std::snprintf(buf, sizeof buf, "%02u:%02u", u.hour, u.minute);
  }
  return buf;
}

// ---------------------------------------------------------------------------------------------
// Line charts.

// Values beyond this are drawn at it (the tables show the true value): keeps every coordinate
// and tick finite.
constexpr double kMaxPlotted = 1e300;

// Stamps outside the years 0001..9999 (a corrupt or hostile log) are not drawn, so no
// difference of two stamps can overflow.
constexpr std::int64_t kMinTimeUs = -62135596800LL * 1000000;
constexpr std::int64_t kMaxTimeUs = 253402300799LL * 1000000 + 999999;
bool SaneTime(std::int64_t us) { return us >= kMinTimeUs && us <= kMaxTimeUs; }

struct Line {
  std::string name;                                     // already escaped
  std::string css;                                      // stroke class: "l0".."l5"
  std::vector<std::pair<std::int64_t, double>> points;  // sorted by time; may hold NaN
};

struct LineChart {
  std::string title;    // already escaped
  std::string y_label;  // already escaped, with the unit: "latency (ms)"
  int width = 560;
  int height = 220;
  std::int64_t gap_us = 0;  // a longer gap between points breaks the line (0 = never)
  std::vector<Line> lines;
};

struct Frame {
  double left = 60, right = 14, top = 14, bottom = 40;
};

std::string Coord(double v) { return Fixed(v, 1); }

// The value axis of a chart: horizontal grid lines at the scale's steps, their labels left of
// the plot, and the rotated axis title (already escaped).
template <typename YOf>
void AppendValueAxis(std::string& out, const Frame& f, double pw, double ph, const Scale& ys,
                     const YOf& y_of, std::string_view title) {
  out += "<g class=\"grid\">";
  std::string labels;
  for (int i = 0; i <= 40; ++i) {
    const double v = ys.lo + i * ys.step;
    if (v > ys.hi + ys.step * 1e-6) break;
    const std::string y = Coord(y_of(v));
    out += "<line x1=\"" + Coord(f.left) + "\" x2=\"" + Coord(f.left + pw) + "\" y1=\"" + y +
           "\" y2=\"" + y + "\"/>";
    labels += "<text x=\"" + Coord(f.left - 6) + "\" y=\"" + y + "\" dy=\"0.32em\">" +
              TickLabel(v, ys.step) + "</text>";
  }
  out += "</g><g class=\"tick y\">" + labels + "</g>";
  out += "<text class=\"axis-title\" transform=\"translate(13 " + Coord(f.top + ph / 2) +
         ") rotate(-90)\">";
  out += title;
  out += "</text>";
}

void AppendLegend(std::string& out, const std::vector<Line>& lines) {
  if (lines.size() < 2) return;
  out += "<ul class=\"legend\">";
  for (const auto& l : lines) {
    out += "<li><svg width=\"26\" height=\"10\" aria-hidden=\"true\"><line class=\"" + l.css +
           "\" x1=\"1\" y1=\"5\" x2=\"25\" y2=\"5\"/></svg>" + l.name + "</li>";
  }
  out += "</ul>";
}

void AppendLineChart(std::string& out, const LineChart& chart, int& next_id) {
  const int id = next_id++;
  const Frame f;
  const double pw = chart.width - f.left - f.right;
  const double ph = chart.height - f.top - f.bottom;
  std::int64_t t0 = std::numeric_limits<std::int64_t>::max();
  std::int64_t t1 = std::numeric_limits<std::int64_t>::min();
  double vmin = 0, vmax = 0;
  std::size_t drawn = 0;
  for (const auto& l : chart.lines) {
    for (const auto& [t, v] : l.points) {
      if (!std::isfinite(v) || !SaneTime(t)) continue;
      const double c = std::clamp(v, -kMaxPlotted, kMaxPlotted);
      t0 = std::min(t0, t);
      t1 = std::max(t1, t);
      vmin = std::min(vmin, c);
      vmax = std::max(vmax, c);
      ++drawn;
    }
  }
  out += "<figure class=\"chart\"><svg class=\"chart\" viewBox=\"0 0 " +
         std::to_string(chart.width) + " " + std::to_string(chart.height) +
         "\" role=\"img\" aria-labelledby=\"c" + std::to_string(id) + "t c" + std::to_string(id) +
         "d\"><title id=\"c" + std::to_string(id) + "t\">" + chart.title + "</title>";
  std::string desc = drawn == 0 ? std::string("no data")
                                : std::to_string(drawn) + " points from " + DateTime(t0) + " to " +
                                      DateTime(t1) + ", highest " + Num(vmax);
  out += "<desc id=\"c" + std::to_string(id) + "d\">" + desc + "</desc>";
  // One point, or all within a second (below the axis' resolution): a minute either side so
  // they sit in the middle.
  if (drawn > 0 && t1 - t0 < 1'000'000) {
    t0 -= 60'000'000;
    t1 += 60'000'000;
  }
  const Scale ys = NiceScale(vmin, vmax, 4);
  const auto x_of = [&](std::int64_t t) {
    return f.left + pw * (static_cast<double>(t - t0) / static_cast<double>(t1 - t0));
  };
  const auto y_of = [&](double v) {
    v = std::clamp(v, -kMaxPlotted, kMaxPlotted);
    return f.top + ph * (1 - (v - ys.lo) / (ys.hi - ys.lo));
  };
  AppendValueAxis(out, f, pw, ph, ys, y_of, chart.y_label);
  // Time ticks.
  out += "<g class=\"tick x\">";
  if (drawn > 0) {
    const TimeTicks ticks = MakeTimeTicks(t0, t1, std::max(2, static_cast<int>(pw / 90)));
    for (std::int64_t t : ticks.at_us) {
      const std::string x = Coord(x_of(t));
      out += "<line x1=\"" + x + "\" x2=\"" + x + "\" y1=\"" + Coord(f.top + ph) + "\" y2=\"" +
             Coord(f.top + ph + 4) + "\"/><text x=\"" + x + "\" y=\"" + Coord(f.top + ph + 17) +
             "\">" + TimeLabel(t, ticks, t1 - t0) + "</text>";
    }
  }
  out += "</g><path class=\"axis\" d=\"M" + Coord(f.left) + " " + Coord(f.top) + "V" +
         Coord(f.top + ph) + "H" + Coord(f.left + pw) + "\"/>";
  out += "<text class=\"axis-title\" x=\"" + Coord(f.left + pw / 2) + "\" y=\"" +
         Coord(chart.height - 4.0) + "\">time (UTC)</text>";
  if (drawn == 0) {
    out += "<text class=\"empty\" x=\"" + Coord(f.left + pw / 2) + "\" y=\"" +
           Coord(f.top + ph / 2) + "\">no data</text>";
  }
  // The lines: a non-finite value or a long gap ends a segment; a lone point is a dot.
  for (const auto& l : chart.lines) {
    std::vector<std::pair<double, double>> segment;
    const auto flush = [&] {
      if (segment.size() == 1) {
        out += "<circle class=\"" + l.css + "\" cx=\"" + Coord(segment[0].first) + "\" cy=\"" +
               Coord(segment[0].second) + "\" r=\"2.5\"/>";
      } else if (segment.size() > 1) {
        out += "<polyline class=\"" + l.css + "\" points=\"";
        for (std::size_t i = 0; i < segment.size(); ++i) {
          out += (i ? " " : "") + Coord(segment[i].first) + "," + Coord(segment[i].second);
        }
        out += "\"/>";
      }
      segment.clear();
    };
    std::int64_t prev_t = 0;
    for (const auto& [t, v] : l.points) {
      if (!std::isfinite(v) || !SaneTime(t)) {
        flush();
        continue;
      }
      if (!segment.empty() && chart.gap_us > 0 && t - prev_t > chart.gap_us) flush();
      segment.emplace_back(x_of(t), y_of(v));
      prev_t = t;
    }
    flush();
  }
  out += "</svg>";
  AppendLegend(out, chart.lines);
  out += "</figure>";
}

// ---------------------------------------------------------------------------------------------
// Series: sorted, then merged down to kReportMaxPoints.

std::vector<ReportSeriesPoint> Downsample(std::vector<ReportSeriesPoint> points,
                                          std::size_t* merged_per_point) {
  std::stable_sort(points.begin(), points.end(),
                   [](const auto& a, const auto& b) { return a.t_us < b.t_us; });
  *merged_per_point = 1;
  const std::size_t n = points.size();
  if (n <= kReportMaxPoints) return points;
  *merged_per_point = (n + kReportMaxPoints - 1) / kReportMaxPoints;
  std::vector<ReportSeriesPoint> out;
  out.reserve(kReportMaxPoints);
  for (std::size_t b = 0; b < kReportMaxPoints; ++b) {
    const std::size_t from = b * n / kReportMaxPoints;
    const std::size_t to = (b + 1) * n / kReportMaxPoints;
    if (from >= to) continue;
    ReportSeriesPoint m;
    m.t_us = points[from].t_us;
    m.p95_ms = m.p99_ms = std::numeric_limits<double>::quiet_NaN();
    double rate_sum = 0, p50_sum = 0, errors = 0, rate_weight = 0;
    std::size_t rate_n = 0, p50_n = 0;
    for (std::size_t i = from; i < to; ++i) {
      const auto& p = points[i];
      m.requests += p.requests;
      if (std::isfinite(p.requests_per_s)) rate_sum += p.requests_per_s, ++rate_n;
      if (std::isfinite(p.error_rate)) {
        errors += p.error_rate * static_cast<double>(p.requests);
        rate_weight += static_cast<double>(p.requests);
      }
      if (std::isfinite(p.p50_ms)) p50_sum += p.p50_ms, ++p50_n;
      // fmax ignores a NaN operand: the maximum of the finite values, NaN if there are none.
      if (std::isfinite(p.p95_ms)) m.p95_ms = std::fmax(m.p95_ms, p.p95_ms);
      if (std::isfinite(p.p99_ms)) m.p99_ms = std::fmax(m.p99_ms, p.p99_ms);
    }
    const double nan = std::numeric_limits<double>::quiet_NaN();
    m.requests_per_s = rate_n ? rate_sum / static_cast<double>(rate_n) : nan;
    m.error_rate = rate_weight > 0 ? errors / rate_weight : nan;
    m.p50_ms = p50_n ? p50_sum / static_cast<double>(p50_n) : nan;
    out.push_back(m);
  }
  return out;
}

template <typename Get>
std::vector<std::pair<std::int64_t, double>> Pick(const std::vector<ReportSeriesPoint>& points,
                                                  Get get) {
  std::vector<std::pair<std::int64_t, double>> out;
  out.reserve(points.size());
  for (const auto& p : points) out.emplace_back(p.t_us, get(p));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Page sections.

constexpr const char* kStyle = R"CSS(
:root{color-scheme:light;--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--bg:#f6f8fa;--card:#fff;
--ok:#1a7f37;--warn:#9a6700;--bad:#cf222e;--neutral:#59636e}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,
"Noto Sans","DejaVu Sans",sans-serif;color:var(--fg);background:var(--bg)}
main{max-width:1240px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 2px;overflow-wrap:anywhere}
h2{font-size:17px;margin:0 0 12px}
h3{font-size:15px;margin:0 0 8px;overflow-wrap:anywhere}
p{margin:6px 0}
.sub{color:var(--muted);margin:0}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:16px 20px;
margin:0 0 16px}
.facts{display:grid;grid-template-columns:repeat(auto-fill,minmax(160px,1fr));gap:10px 24px;
margin:14px 0 0}
.facts div{min-width:0}
.facts div.span2{grid-column:span 2}
.facts dt{color:var(--muted);font-size:11px;text-transform:uppercase;letter-spacing:.05em}
.facts dd{margin:0;font-size:15px;font-variant-numeric:tabular-nums;overflow-wrap:anywhere}
.facts dd.small{font-size:13px}
nav{margin:14px 0 0;font-size:13px}
nav a{color:#0969da;text-decoration:none;margin-right:14px}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{padding:6px 10px;border-bottom:1px solid var(--line);text-align:right;white-space:nowrap;
vertical-align:top}
thead th{font-size:12px;font-weight:600;color:var(--muted);background:#f6f8fa;
border-bottom:2px solid var(--line)}
tbody tr:nth-child(even){background:#fbfcfd}
th.key,td.key{text-align:left;white-space:normal;overflow-wrap:anywhere;min-width:12ch;
max-width:28ch}
tbody th{text-align:left;font-weight:600}
th.txt,td.txt{text-align:left}
td.num-bad{color:var(--bad);font-weight:600}
.note{color:var(--muted);font-size:12px}
.group{margin-top:20px;padding-top:14px;border-top:1px solid var(--line)}
.group:first-of-type{margin-top:8px;padding-top:0;border-top:0}
.group h3 .k{color:var(--muted);font-weight:400}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:12px 20px}
.charts .wide{grid-column:1/-1}
figure.chart{margin:0;min-width:0}
figcaption{font-size:13px;font-weight:600;margin:0 0 2px}
svg.chart{display:block;width:100%;height:auto;font-size:11px}
.grid line{stroke:#eaeef2;stroke-width:1}
path.axis{fill:none;stroke:#8c959f;stroke-width:1}
.tick text{fill:var(--muted)}
.tick.y text{text-anchor:end}
.tick.x text{text-anchor:middle}
.tick.x line{stroke:#8c959f}
.bins text{font-size:10px}
.axis-title{fill:var(--muted);text-anchor:middle;font-size:11px}
.empty{fill:var(--muted);text-anchor:middle;font-size:14px}
polyline,svg line.l0,svg line.l1,svg line.l2,svg line.l3,svg line.l4,svg line.l5{fill:none;
stroke-width:2;stroke-linejoin:round;stroke-linecap:round}
circle{stroke:none}
.l0{stroke:#0072b2;fill:#0072b2}
.l1{stroke:#e69f00;fill:#e69f00;stroke-dasharray:7 4}
.l2{stroke:#d55e00;fill:#d55e00;stroke-dasharray:2 4}
.l3{stroke:#009e73;fill:#009e73;stroke-dasharray:10 3 2 3}
.l4{stroke:#cc79a7;fill:#cc79a7;stroke-dasharray:4 2}
.l5{stroke:#56b4e9;fill:#56b4e9;stroke-dasharray:1 3}
polyline.l0,polyline.l1,polyline.l2,polyline.l3,polyline.l4,polyline.l5{fill:none}
.legend{list-style:none;padding:0;margin:2px 0 0 60px;display:flex;flex-wrap:wrap;gap:2px 16px;
font-size:12px;color:var(--muted)}
.legend li{display:flex;align-items:center;gap:6px;overflow-wrap:anywhere}
.legend svg{flex:none}
.badge{display:inline-block;padding:1px 9px;border-radius:999px;font-size:12px;font-weight:600;
border:1px solid;white-space:nowrap}
.badge.ok{color:var(--ok);background:#dafbe1;border-color:#4ac26b}
.badge.warn{color:#7d4e00;background:#fff8c5;border-color:#d4a72c}
.badge.bad{color:#fff;background:var(--bad);border-color:var(--bad)}
.badge.neutral{color:var(--neutral);background:#f6f8fa;border-color:var(--line)}
.verdict{border-left:6px solid var(--neutral)}
.verdict.ok{border-left-color:var(--ok)}
.verdict.warn{border-left-color:#d4a72c}
.verdict.bad{border-left-color:var(--bad)}
.headline{font-size:16px;font-weight:600;margin:0 0 10px;overflow-wrap:anywhere}
.drifts{display:grid;grid-template-columns:repeat(auto-fit,minmax(460px,1fr));gap:16px 24px}
.drift{min-width:0}
.stats{color:var(--muted);font-size:12px;font-variant-numeric:tabular-nums;margin:0 0 4px}
.bar-b{fill:#9fb3cf}
.bar-c{fill:#e69f00}
.bar-b.sw{stroke:#6c84a8;stroke-width:1}
.alerts td.key{max-width:none}
footer{color:var(--muted);font-size:12px;margin:8px 0 24px}
footer ul{margin:4px 0;padding-left:18px}
@media (max-width:720px){
main{padding:10px}.card{padding:12px}
.charts,.drifts{grid-template-columns:1fr}
.charts .wide{overflow-x:auto}
.charts .wide svg.chart{min-width:640px}
th,td{padding:4px 6px}
.legend{margin-left:0}
}
@media print{
body{background:#fff;font-size:11pt}
main{max-width:none;padding:0}
nav{display:none}
.card{border-color:#bbb;break-inside:avoid-page}
.group,.drift,figure.chart{break-inside:avoid}
.charts,.drifts{grid-template-columns:1fr 1fr}
.charts .wide{grid-column:1/-1}
.scroll{overflow:visible}
tbody tr:nth-child(even){background:none}
.badge.bad{color:var(--bad);background:#fff}
}
)CSS";

std::string KeyLabel(const ReportData& d, const std::vector<std::string>& key) {
  std::string out;
  for (std::size_t i = 0; i < key.size(); ++i) {
    if (i) out += " ";
    if (i < d.by.size()) out += "<span class=\"k\">" + Text(d.by[i], 40) + "=</span>";
    out += Text(key[i], 60);
  }
  return out.empty() ? std::string("(all requests)") : out;
}

// Plain text of a key for legends ("mlp16 1.1.0").
std::string KeyText(const std::vector<std::string>& key) {
  std::string out;
  for (std::size_t i = 0; i < key.size(); ++i) out += (i ? " " : "") + Text(key[i], 40);
  return out.empty() ? std::string("(all requests)") : out;
}

void AppendHeader(std::string& out, const ReportData& d, const std::string& title) {
  out += "<header class=\"card\"><h1>" + title + "</h1><p class=\"sub\">generated " +
         (d.generated_us ? DateTime(d.generated_us) : std::string(kDash)) + " by dlsys " +
         (d.dlsys_version.empty() ? std::string(kDash) : Text(d.dlsys_version, 40)) + "</p>";
  out += "<dl class=\"facts\">";
  const auto fact = [&](const char* name, const std::string& value, bool small = false,
                        bool wide = false) {
    out += std::string(wide ? "<div class=\"span2\"><dt>" : "<div><dt>") + name + "</dt><dd" +
           (small ? " class=\"small\"" : "") + ">" + value + "</dd></div>";
  };
  std::string inputs;
  for (std::size_t i = 0; i < d.inputs.size() && i < kReportMaxInputs; ++i) {
    inputs += (i ? "<br>" : "") + Text(d.inputs[i] == "-" ? "(standard input)" : d.inputs[i]);
  }
  if (d.inputs.size() > kReportMaxInputs) {
    inputs += "<br>… and " + Count(d.inputs.size() - kReportMaxInputs) + " more";
  }
  fact(d.inputs.size() == 1 ? "input" : "inputs", inputs.empty() ? kDash : inputs, true, true);
  if (d.first_us != 0 && d.last_us != 0 && SaneTime(d.first_us) && SaneTime(d.last_us)) {
    fact("from", DateTime(d.first_us), true);
    fact("to", DateTime(d.last_us), true);
    fact("span", Duration(d.last_us - d.first_us));
  } else {
    fact("time span", "no time stamps");
  }
  fact("requests", Count(d.requests));
  fact("bad lines", Count(d.bad_lines));
  fact("other records", Count(d.other_records));
  std::string by;
  for (std::size_t i = 0; i < d.by.size(); ++i) by += (i ? ", " : "") + Text(d.by[i], 40);
  fact("grouped by", by.empty() ? kDash : by);
  fact("groups", Count(d.groups.size()) + (d.groups_capped ? " (capped)" : ""));
  if (d.window_us > 0) fact("chart resolution", Duration(d.window_us));
  out += "</dl><nav aria-label=\"sections\">";
  if (d.comparison) out += "<a href=\"#canary\">Canary</a>";
  out += "<a href=\"#alerts\">Alerts</a><a href=\"#summary\">Summary</a>";
  if (!d.groups.empty()) out += "<a href=\"#charts\">Charts</a>";
  if (!d.drift.empty()) out += "<a href=\"#drift\">Drift</a>";
  out += "</nav></header>";
}

void AppendAlerts(std::string& out, const ReportData& d) {
  const ReportLevel level = d.alerts.empty() ? ReportLevel::kOk : ReportLevel::kBad;
  out += std::string("<section id=\"alerts\" class=\"card verdict ") + LevelClass(level) +
         "\"><h2>Alerts</h2>";
  if (d.alerts.empty()) {
    out += "<p>" + Badge(ReportLevel::kOk, "none fired") + "</p></section>";
    return;
  }
  out += "<p class=\"headline\">" + Badge(ReportLevel::kBad, "fired") + " " +
         Count(d.alerts.size()) + (d.alerts.size() == 1 ? " alert" : " alerts") + "</p>";
  out +=
      "<div class=\"scroll\"><table class=\"alerts\"><thead><tr><th class=\"key\" "
      "scope=\"col\">rule</th><th class=\"key\" scope=\"col\">group</th><th "
      "scope=\"col\">value</th></tr></thead><tbody>";
  for (std::size_t i = 0; i < d.alerts.size() && i < kReportMaxAlerts; ++i) {
    const auto& a = d.alerts[i];
    out += "<tr><td class=\"key\"><code>" + Text(a.rule) + "</code></td><td class=\"key\">" +
           Text(a.group) + "</td><td>" + Num(a.value) + "</td></tr>";
  }
  out += "</tbody></table></div>";
  if (d.alerts.size() > kReportMaxAlerts) {
    out += "<p class=\"note\">The first " + Count(kReportMaxAlerts) + " of " +
           Count(d.alerts.size()) + " fired alerts are listed.</p>";
  }
  out += "</section>";
}

ReportLevel Worst(ReportLevel a, ReportLevel b) {
  return static_cast<int>(a) >= static_cast<int>(b) ? a : b;
}

std::string MoreNeeded(const std::optional<std::uint64_t>& needed, std::uint64_t have,
                       const char* what) {
  if (!needed || *needed <= have) return "";
  return "<p class=\"note\">About " + Count(*needed - have) +
         " more requests per arm would show a " + what + " difference of the size seen.</p>";
}

void AppendComparison(std::string& out, const ReportData& d) {
  if (!d.comparison) return;
  const ReportComparison& c = *d.comparison;
  const ReportLevel level = Worst(c.rate_level, c.latency_level);
  static constexpr const char* kHeadline[] = {
      "Not enough data to judge the canary", "No significant difference from stable",
      "The canary needs a look", "The canary is worse than stable"};
  out += std::string("<section id=\"canary\" class=\"card verdict ") + LevelClass(level) +
         "\"><h2>Canary verdict</h2><p class=\"headline\"><span class=\"badge " +
         LevelClass(level) + "\">" + LevelIcon(level) + " " + kHeadline[static_cast<int>(level)] +
         "</span></p>";
  out += "<p>canary <b>" + Text(c.field, 40) + "=" + Text(c.canary, 60) +
         "</b> against stable <b>" + Text(c.field, 40) + "=" + Text(c.stable, 60) + "</b></p>";
  out +=
      "<div class=\"scroll\"><table><thead><tr><th class=\"key\" scope=\"col\">metric</th>"
      "<th scope=\"col\">stable</th><th scope=\"col\">canary</th><th class=\"txt\" "
      "scope=\"col\">test</th>"
      "<th class=\"key\" scope=\"col\">verdict</th></tr></thead><tbody>";
  out += "<tr><th scope=\"row\">requests</th><td>" + Count(c.stable_requests) + "</td><td>" +
         Count(c.canary_requests) + "</td><td></td><td class=\"key\"></td></tr>";
  out += "<tr><th scope=\"row\">5xx rate</th><td>" + Percent(c.stable_error_rate) + "</td><td>" +
         Percent(c.canary_error_rate) + "</td><td class=\"txt\">z " + Num(c.z) + ", p " +
         PValue(c.rate_p) + "</td><td class=\"key\">" + Badge(c.rate_level, c.rate_verdict) +
         "</td></tr>";
  out += "<tr><th scope=\"row\">latency p50 (ms)</th><td>" + Num(c.stable_p50_ms) + "</td><td>" +
         Num(c.canary_p50_ms) + "</td><td class=\"txt\" rowspan=\"2\">KS D " + Num(c.ks_d) +
         ", p " + PValue(c.latency_p) + "</td><td class=\"key\" rowspan=\"2\">" +
         Badge(c.latency_level, c.latency_verdict) + "</td></tr>";
  out += "<tr><th scope=\"row\">latency p99 (ms)</th><td>" + Num(c.stable_p99_ms) + "</td><td>" +
         Num(c.canary_p99_ms) + "</td></tr></tbody></table></div>";
  const std::uint64_t have = std::min(c.stable_requests, c.canary_requests);
  out += MoreNeeded(c.rate_needed, have, "5xx-rate");
  out += MoreNeeded(c.latency_needed, have, "latency");
  out +=
      "<p class=\"note\">5xx rate: two-proportion z-test; latency: two-sample "
      "Kolmogorov-Smirnov test on the latency sketches; significance level 0.05.</p>";
  out += "</section>";
}

void AppendSummary(std::string& out, const ReportData& d) {
  out += "<section id=\"summary\" class=\"card\"><h2>Summary per group</h2>";
  if (d.groups.empty()) {
    out += "<p>No requests in the input.</p></section>";
    return;
  }
  std::size_t key_cols = d.by.size();
  for (const auto& g : d.groups) key_cols = std::max(key_cols, g.key.size());
  key_cols = std::min<std::size_t>(key_cols, 8);
  out += "<div class=\"scroll\"><table><thead><tr>";
  for (std::size_t i = 0; i < key_cols; ++i) {
    out +=
        "<th class=\"key\" scope=\"col\">" + (i < d.by.size() ? Text(d.by[i], 40) : "") + "</th>";
  }
  for (const char* h : {"requests", "req/s", "4xx", "5xx", "5xx rate", "p50 ms", "p95 ms", "p99 ms",
                        "max ms", "mean ms", "batch"}) {
    out += std::string("<th scope=\"col\">") + h + "</th>";
  }
  out += "</tr></thead><tbody>";
  for (std::size_t r = 0; r < d.groups.size() && r < kReportMaxTableGroups; ++r) {
    const auto& g = d.groups[r];
    out += "<tr>";
    for (std::size_t i = 0; i < key_cols; ++i) {
      out += "<td class=\"key\">" + (i < g.key.size() ? Text(g.key[i], 60) : "") + "</td>";
    }
    const bool lat = g.latency_count > 0;
    const auto ms = [&](double v) { return lat ? Num(v) : std::string(kDash); };
    out += "<td>" + Count(g.requests) + "</td><td>" +
           (g.rate_per_s > 0 ? Num(g.rate_per_s) : std::string(kDash)) + "</td><td>" +
           Count(g.status_4xx) + "</td><td>" + Count(g.status_5xx) + "</td><td" +
           (g.status_5xx > 0 ? " class=\"num-bad\"" : "") + ">" + Percent(g.error_rate) +
           "</td><td>" + ms(g.p50_ms) + "</td><td>" + ms(g.p95_ms) + "</td><td>" + ms(g.p99_ms) +
           "</td><td>" + ms(g.max_ms) + "</td><td>" + ms(g.mean_ms) + "</td><td>" +
           (g.batch_size_mean ? Num(*g.batch_size_mean) : std::string(kDash)) + "</td></tr>";
  }
  out += "</tbody></table></div>";
  if (d.groups.size() > kReportMaxTableGroups) {
    out += "<p class=\"note\">Showing the " + Count(kReportMaxTableGroups) + " busiest of " +
           Count(d.groups.size()) + " groups.</p>";
  }
  if (d.groups_capped) {
    out +=
        "<p class=\"note\">The log held more distinct keys than the scan keeps; the rest "
        "are counted in the group named “(other)”.</p>";
  }
  out +=
      "<p class=\"note\">5xx rate = 5xx / requests. Latency quantiles are within 1% of the "
      "true value (DDSketch). – = no data.</p></section>";
}

struct GroupSeries {
  std::vector<ReportSeriesPoint> points;
  std::size_t merged = 1;
};

// A gap of more than 1.5 buckets between two points (no requests in between) breaks the line,
// so it does not pretend to know what happened there. 0 = never break.
std::int64_t GapUs(const ReportData& d, std::size_t merged) {
  const double gap = 1.5 * static_cast<double>(d.window_us) * static_cast<double>(merged);
  return gap > 0 && gap < 1e18 ? static_cast<std::int64_t>(gap) : 0;
}

void AppendOverview(std::string& out, const ReportData& d, const std::vector<GroupSeries>& series,
                    int& next_id) {
  std::size_t with_series = 0;
  for (const auto& s : series) with_series += !s.points.empty();
  if (with_series < 2) return;
  static constexpr const char* kCss[] = {"l0", "l1", "l2", "l3", "l4", "l5"};
  LineChart p99{"p99 latency per group", "p99 latency (ms)", 560, 230, 0, {}};
  LineChart rate{"Throughput per group", "requests / s", 560, 230, 0, {}};
  std::size_t merged = 1;
  for (std::size_t i = 0; i < series.size() && p99.lines.size() < kReportMaxOverviewLines; ++i) {
    if (series[i].points.empty()) continue;
    const std::string name = KeyText(d.groups[i].key);
    const char* css = kCss[p99.lines.size()];
    p99.lines.push_back(
        {name, css, Pick(series[i].points, [](const auto& p) { return p.p99_ms; })});
    rate.lines.push_back(
        {name, css, Pick(series[i].points, [](const auto& p) { return p.requests_per_s; })});
    merged = std::max(merged, series[i].merged);
  }
  p99.gap_us = rate.gap_us = GapUs(d, merged);
  out += "<div class=\"group\"><h3>All groups</h3><div class=\"charts\">";
  AppendLineChart(out, p99, next_id);
  AppendLineChart(out, rate, next_id);
  out += "</div>";
  if (with_series > kReportMaxOverviewLines) {
    out += "<p class=\"note\">The " + Count(kReportMaxOverviewLines) +
           " busiest groups are overlaid.</p>";
  }
  out += "</div>";
}

void AppendCharts(std::string& out, const ReportData& d) {
  if (d.groups.empty()) return;
  out += "<section id=\"charts\" class=\"card\"><h2>Over time</h2>";
  std::vector<GroupSeries> series;
  const std::size_t shown = std::min(d.groups.size(), kReportMaxChartGroups);
  for (std::size_t i = 0; i < shown; ++i) {
    GroupSeries s;
    s.points = Downsample(d.groups[i].series, &s.merged);
    series.push_back(std::move(s));
  }
  int next_id = 0;
  AppendOverview(out, d, series, next_id);
  for (std::size_t i = 0; i < shown; ++i) {
    const auto& g = d.groups[i];
    const auto& pts = series[i].points;
    const std::int64_t gap = GapUs(d, series[i].merged);
    const std::string name = KeyText(g.key);
    out += "<div class=\"group\"><h3>" + KeyLabel(d, g.key) + "</h3>";
    LineChart latency{"Latency of " + name, "latency (ms)", 1100, 250, gap, {}};
    latency.lines = {{"p50", "l0", Pick(pts, [](const auto& p) { return p.p50_ms; })},
                     {"p95", "l1", Pick(pts, [](const auto& p) { return p.p95_ms; })},
                     {"p99", "l2", Pick(pts, [](const auto& p) { return p.p99_ms; })}};
    LineChart rate{"Throughput of " + name, "requests / s", 560, 220, gap, {}};
    rate.lines = {
        {"requests / s", "l3", Pick(pts, [](const auto& p) { return p.requests_per_s; })}};
    LineChart errors{"5xx rate of " + name, "5xx rate (%)", 560, 220, gap, {}};
    errors.lines = {
        {"5xx rate", "l2", Pick(pts, [](const auto& p) { return 100 * p.error_rate; })}};
    out +=
        "<div class=\"charts\"><div class=\"wide\"><figcaption>Latency p50 / p95 / p99"
        "</figcaption>";
    AppendLineChart(out, latency, next_id);
    out += "</div><div><figcaption>Throughput</figcaption>";
    AppendLineChart(out, rate, next_id);
    out += "</div><div><figcaption>5xx rate</figcaption>";
    AppendLineChart(out, errors, next_id);
    out += "</div></div>";
    if (series[i].merged > 1) {
      out += "<p class=\"note\">" + Count(g.series.size()) + " points merged into " +
             Count(pts.size()) + " (rates and p50 averaged, p95/p99 the highest).</p>";
    }
    out += "</div>";
  }
  if (d.groups.size() > shown) {
    out += "<p class=\"note\">Charts are drawn for the " + Count(shown) + " busiest of " +
           Count(d.groups.size()) + " groups; the summary table has the others.</p>";
  }
  out += "</section>";
}

void AppendDriftChart(std::string& out, const ReportDrift& f, int& next_id) {
  const int id = next_id++;
  const std::size_t n = std::min(f.bins.size(), kReportMaxDriftBins);
  const double width = 560, height = 220;
  const Frame fr{56, 10, 12, 44};
  const double pw = width - fr.left - fr.right, ph = height - fr.top - fr.bottom;
  double vmax = 0;
  for (std::size_t i = 0; i < n; ++i) {
    for (double v : {f.bins[i].baseline_fraction, f.bins[i].current_fraction}) {
      if (std::isfinite(v)) vmax = std::max(vmax, std::min(v, 1.0));
    }
  }
  const Scale ys = NiceScale(0, vmax * 100, 4);
  const auto y_of = [&](double pct) { return fr.top + ph * (1 - (pct - ys.lo) / (ys.hi - ys.lo)); };
  out +=
      "<figure class=\"chart\"><svg class=\"chart\" viewBox=\"0 0 560 220\" role=\"img\" "
      "aria-labelledby=\"d" +
      std::to_string(id) + "t\"><title id=\"d" + std::to_string(id) + "t\">Distribution of " +
      Text(f.feature, 60) +
      ": baseline against current, share "
      "of each sample per bin</title>";
  AppendValueAxis(out, fr, pw, ph, ys, y_of, "share of sample (%)");
  if (n == 0) {
    out += "<text class=\"empty\" x=\"" + Coord(fr.left + pw / 2) + "\" y=\"" +
           Coord(fr.top + ph / 2) + "\">no data</text>";
  }
  const double slot = n ? pw / static_cast<double>(n) : pw;
  const double bar = std::max(0.5, slot * 0.38);
  // Label every k-th bin so labels never overlap; each gets the room of k slots.
  // (A label character is about 6 units wide at the 10-unit font.)
  const std::size_t every =
      std::max<std::size_t>(1, static_cast<std::size_t>(std::ceil(40.0 / slot)));
  const std::size_t label_chars =
      std::max<std::size_t>(3, static_cast<std::size_t>(slot * static_cast<double>(every) / 6.0));
  out += "<g class=\"tick x bins\">";
  for (std::size_t i = 0; i < n; ++i) {
    const auto& b = f.bins[i];
    const double x = fr.left + slot * static_cast<double>(i) + slot / 2;
    const auto pct = [](double v) {
      return std::isfinite(v) ? std::clamp(v, 0.0, 1.0) * 100 : 0.0;
    };
    const double yb = y_of(pct(b.baseline_fraction)), yc = y_of(pct(b.current_fraction));
    const double base = fr.top + ph;
    out += "<g><title>" + Text(b.label, 60) + ": baseline " + Percent(b.baseline_fraction) +
           ", current " + Percent(b.current_fraction) + "</title><rect class=\"bar-b\" x=\"" +
           Coord(x - bar) + "\" y=\"" + Coord(yb) + "\" width=\"" + Coord(bar) + "\" height=\"" +
           Coord(base - yb) + "\"/><rect class=\"bar-c\" x=\"" + Coord(x) + "\" y=\"" + Coord(yc) +
           "\" width=\"" + Coord(bar) + "\" height=\"" + Coord(base - yc) + "\"/></g>";
    if (i % every == 0) {
      out += "<text x=\"" + Coord(x) + "\" y=\"" + Coord(base + 15) + "\">" +
             Text(b.label, label_chars) + "</text>";
    }
  }
  out += "</g><path class=\"axis\" d=\"M" + Coord(fr.left) + " " + Coord(fr.top) + "V" +
         Coord(fr.top + ph) + "H" + Coord(fr.left + pw) + "\"/>";
  out += "<text class=\"axis-title\" x=\"" + Coord(fr.left + pw / 2) + "\" y=\"" +
         Coord(height - 4) + "\">" +
         (f.kind == "categorical" ? std::string("category") : std::string("bin")) + "</text>";
  out +=
      "</svg><ul class=\"legend\"><li><svg width=\"12\" height=\"12\" aria-hidden=\"true\">"
      "<rect class=\"bar-b sw\" x=\"0.5\" y=\"0.5\" width=\"11\" height=\"11\"/></svg>baseline "
      "(" +
      Count(f.n_baseline) +
      ")</li><li><svg width=\"12\" height=\"12\" "
      "aria-hidden=\"true\"><rect class=\"bar-c\" width=\"12\" height=\"12\"/></svg>current (" +
      Count(f.n_current) + ")</li></ul></figure>";
}

void AppendDrift(std::string& out, const ReportData& d) {
  if (d.drift.empty()) return;
  ReportLevel worst = ReportLevel::kNeutral;
  std::size_t drifted = 0;
  for (const auto& f : d.drift) {
    worst = Worst(worst, f.level);
    drifted += f.level == ReportLevel::kBad;
  }
  out += std::string("<section id=\"drift\" class=\"card verdict ") + LevelClass(worst) +
         "\"><h2>Drift: baseline against current</h2><p>" + Count(drifted) + " of " +
         Count(d.drift.size()) + (d.drift.size() == 1 ? " feature" : " features") +
         " drifted.</p><div class=\"drifts\">";
  int next_id = 0;
  for (std::size_t i = 0; i < d.drift.size() && i < kReportMaxDriftFeatures; ++i) {
    const auto& f = d.drift[i];
    out += "<div class=\"drift\"><h3>" + Text(f.feature, 80) + " " + Badge(f.level, f.verdict) +
           "</h3><p class=\"stats\">" + Text(f.kind, 20);
    const auto stat = [&](const char* name, const std::optional<double>& v) {
      if (v) out += std::string(" · ") + name + " " + Num(*v);
    };
    stat("PSI", f.psi);
    stat("KS D", f.ks_d);
    if (f.ks_p) out += " (p " + PValue(*f.ks_p) + ")";
    stat("JS", f.js);
    if (f.chi2_p) out += " · χ² p " + PValue(*f.chi2_p);
    out += "</p>";
    AppendDriftChart(out, f, next_id);
    if (f.bins.size() > kReportMaxDriftBins) {
      out += "<p class=\"note\">The first " + Count(kReportMaxDriftBins) + " of " +
             Count(f.bins.size()) + " bins are drawn.</p>";
    }
    out += "</div>";
  }
  out += "</div>";
  if (d.drift.size() > kReportMaxDriftFeatures) {
    out += "<p class=\"note\">The first " + Count(kReportMaxDriftFeatures) + " of " +
           Count(d.drift.size()) + " features are shown.</p>";
  }
  out +=
      "<p class=\"note\">PSI = population stability index; KS D = largest distance between "
      "the two cumulative distributions (with its p-value); JS = Jensen-Shannon distance; "
      "χ² p = p-value of the chi-square test that both histograms come from one "
      "distribution.</p></section>";
}

}  // namespace

std::string RenderHtmlReport(const ReportData& data) {
  const std::string title = data.title.empty() ? std::string("dlsys monitor report")
                                               : Text(data.title, kReportMaxTextChars);
  std::string out;
  out.reserve(64 * 1024);
  out +=
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
      "style-src 'unsafe-inline'; img-src data:\">"
      "<meta name=\"referrer\" content=\"no-referrer\">"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
      "<meta name=\"generator\" content=\"dlsys monitor\"><title>" +
      title + "</title><style>" + kStyle + "</style></head><body><main>";
  AppendHeader(out, data, title);
  AppendComparison(out, data);
  AppendAlerts(out, data);
  AppendSummary(out, data);
  AppendCharts(out, data);
  AppendDrift(out, data);
  out +=
      "<footer>Made by <code>dlsys monitor --report</code>. This page is self-contained: "
      "no scripts, no fonts, no images from elsewhere; it loads nothing over the network."
      "</footer></main></body></html>\n";
  return out;
}

Result<void> WriteHtmlReport(const std::string& path, const ReportData& data, bool overwrite) {
  return core::WriteFileAtomic(path, RenderHtmlReport(data), overwrite, 0644);
}

}  // namespace dlsys::monitor
