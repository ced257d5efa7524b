// Fuzzes dlsys monitor's log reader (logs are hostile input): the data is a log file, summarized
// by one thread reading blocks with pread, and again split into many small byte ranges read by
// three threads through a memory map.
//
// Invariants: the two summaries are identical (a line belongs to the range it starts in,
// whatever the split), every line is a request, another record, filtered out or bad, and
// quantiles lie between the group's min and max.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "monitor/scan.h"
#include "invariant.h"

using dlsys::fuzz::Check;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const int fd = ::memfd_create("log", 0);
  if (fd < 0) return 0;
  std::size_t done = 0;
  while (done < size) {
    const ssize_t n = ::write(fd, data + done, size - done);
    if (n <= 0) break;
    done += static_cast<std::size_t>(n);
  }
  const std::string path = "/proc/self/fd/" + std::to_string(fd);
  dlsys::monitor::ScanOptions one;
  one.threads = 1;
  one.by = {"model", "status"};
  one.max_line_bytes = 512;
  one.max_groups = 8;
  one.map_min_bytes = UINT64_MAX;  // read in blocks with pread
  dlsys::monitor::ScanOptions many = one;
  many.threads = 3;
  many.min_range_bytes = 16;
  many.map_min_bytes = 0;  // through a memory map
  auto a = dlsys::monitor::Scan({path}, one);
  auto b = dlsys::monitor::Scan({path}, many);
  ::close(fd);
  Check(a.has_value() == b.has_value(), "both scans succeed or both fail");
  if (!a) return 0;
  Check(a->lines == b->lines && a->requests == b->requests && a->events == b->events &&
            a->bad_lines == b->bad_lines && a->filtered_out == b->filtered_out,
        "the same counts for any split");
  Check(a->lines == a->requests + a->events + a->bad_lines + a->filtered_out,
        "every line is counted once");
  Check(a->groups.size() == b->groups.size(), "the same groups");
  for (std::size_t i = 0; i < a->groups.size(); ++i) {
    const auto& x = a->groups[i];
    const auto& y = b->groups[i];
    Check(x.key == y.key && x.requests == y.requests && x.status_5xx == y.status_5xx &&
              x.latency_ms.count() == y.latency_ms.count() && x.first_us == y.first_us &&
              x.last_us == y.last_us,
          "the same group totals");
    const auto& l = x.latency_ms;
    for (double q : {0.0, 0.5, 0.99, 1.0}) {
      Check(l.count() == 0 || (l.Quantile(q) >= l.min() && l.Quantile(q) <= l.max()),
            "quantiles between min and max");
    }
  }
  return 0;
}
