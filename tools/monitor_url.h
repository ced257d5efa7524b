// dlsys monitor --url: scrape a running server's Prometheus /metrics every --interval and show
// per model version what PromQL would: rate() over the last --window, histogram_quantile over
// the bucket rates, and the counters' totals since the server started (docs/monitoring.md).
#pragma once

#include <string>
#include <vector>

namespace dlsys::cli::monitor_url {

struct UrlArgs {
  std::string url;
  std::string interval = "2s";
  std::string window = "1m";
  bool once = false;
  bool json = false;
  std::vector<std::string> by;     // label names, comma-separated (default model,version)
  std::vector<std::string> where;  // LABEL=VALUE
};

// Returns the process exit code: 0; 2 for a bad flag or URL (https:// included); 6 when the
// server cannot be reached, times out or answers other than 200; 4 when its answer is not the
// text format (the message names the line). Without --once, runs until SIGINT, SIGTERM or
// SIGHUP, prints a last snapshot and returns 0; only the first scrape's failure ends it.
int Run(const UrlArgs& args);

}  // namespace dlsys::cli::monitor_url
