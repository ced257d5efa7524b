// Fuzzes dlsys monitor --url's reading of a server's /metrics (a network reply: hostile): the
// Prometheus text parser, then two scrapes of the result through the window that computes
// rate() and histogram_quantile per group, and the alert-rule and ssh:// URL parsers on the
// same bytes.
//
// Invariants: a body that parses has at most the limit's samples; the sanitizers watch the rest
// (summarizing and histogram_quantile on whatever buckets the body names).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "monitor/alert.h"
#include "monitor/prom.h"
#include "monitor/remote.h"
#include "invariant.h"

using dlsys::fuzz::Check;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)dlsys::monitor::ParseAlertRule(text.substr(0, 256));
  (void)dlsys::monitor::ParseSshUrl(text.substr(0, 256));
  dlsys::monitor::PromLimits limits;
  limits.max_samples = 512;
  auto parsed = dlsys::monitor::ParsePromText(text, limits);
  if (!parsed) return 0;
  Check(parsed->samples.size() <= limits.max_samples, "sample limit");
  dlsys::monitor::ScrapeWindow window(60'000, 8, 256);
  window.Add(*parsed, 1'000);
  window.Add(*parsed, 3'000);
  dlsys::monitor::PromGroupOptions options;
  (void)window.Summarize(options);
  std::vector<dlsys::monitor::PromBucket> buckets;
  for (const auto& s : parsed->samples) {
    const auto le = dlsys::monitor::ParseGoFloat(s.Label("le"));
    if (le) buckets.push_back({*le, s.value});
  }
  const double q = dlsys::monitor::HistogramQuantile(0.99, buckets);
  (void)q;
  return 0;
}
