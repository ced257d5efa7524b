// Reading JSON-lines logs (the dlsys record, docs/logging.md, or any JSON object per line) and
// summarizing the requests in them per group (by default model and model_version): counts,
// status classes, latency quantiles (QuantileSketch), batch sizes, time span.
//
// A line is a request when its object has a numeric `status` or `latency_ms`; other objects
// (server events) are counted as events. Lines that are not one JSON object, are longer than
// max_line_bytes, are not valid UTF-8, or give a known field the wrong type (`status` not an
// integer, `latency_ms`/`batch_size` not a number, `@timestamp`/`log.level` not a string) are
// counted as bad and otherwise ignored: never fatal. Memory is bounded whatever the input:
// fixed-size read buffers per thread and at most max_groups groups (further keys are counted
// in one "(other)" group, named so in every key field).
//
// Plain files are split into byte ranges read by all cores (pread, no mmap: a file truncated
// meanwhile is read short, not a SIGBUS); gzip and zstd files (by their magic bytes, e.g.
// rotated logs) and "-" (stdin) are read as one stream.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "monitor/sketch.h"

namespace dlsys::monitor {

struct ScanOptions {
  std::vector<std::string> by = {"model", "model_version"};  // group key fields
  // FIELD=VALUE filters, all must match: VALUE equals the field's string, or the JSON text of
  // a number, boolean or null ("status=503", "model=mlp16"). A missing field never matches.
  std::vector<std::pair<std::string, std::string>> where;
  // Minimum `log.level` (TRACE DEBUG INFO WARN ERROR FATAL); records without one pass.
  std::optional<int> min_level;
  // Records stamped before this (µs since the Unix epoch) are skipped; unstamped ones pass.
  std::optional<std::int64_t> since_us;
  unsigned threads = 0;                   // 0 = all cores
  std::size_t max_line_bytes = 1 << 20;   // longer lines are bad
  // At most this many groups (each holds a ~9 KiB sketch per thread); the rest are "(other)".
  std::size_t max_groups = 1000;
  // A plain file is split into ranges of at least this size, one per thread (tests lower it).
  std::uint64_t min_range_bytes = 8 << 20;
};

struct GroupStats {
  std::vector<std::string> key;  // one value per ScanOptions::by field ("-" when missing)
  std::uint64_t requests = 0;
  std::uint64_t status_4xx = 0;
  std::uint64_t status_5xx = 0;
  QuantileSketch latency_ms;  // of the requests that have latency_ms
  double batch_size_sum = 0;
  std::uint64_t batch_size_count = 0;
  std::int64_t first_us = 0;  // earliest and latest @timestamp (0 = none seen)
  std::int64_t last_us = 0;

  void Merge(const GroupStats& other);
  // Requests per second over [first, last] (0 when fewer than two stamped requests).
  double RatePerSecond() const;
};

struct ScanSummary {
  std::uint64_t bytes = 0;
  std::uint64_t lines = 0;     // non-empty lines
  std::uint64_t requests = 0;  // counted in groups (after filters)
  std::uint64_t events = 0;    // valid objects that are not requests (after filters)
  std::uint64_t filtered_out = 0;
  std::uint64_t bad_lines = 0;
  bool groups_capped = false;      // more than max_groups keys: the rest are in "(other)"
  std::vector<GroupStats> groups;  // by descending requests, then key
  unsigned threads = 1;
};

// Parses "2026-12-01T18:43:23.133Z" (RFC 3339: any fraction digits, 'Z' or ±HH:MM) into µs
// since the Unix epoch; nullopt if it is not one.
std::optional<std::int64_t> ParseRfc3339Us(std::string_view text);
// "2026-12-01T18:43:23.133000Z" (UTC, microseconds) for µs since the Unix epoch.
std::string FormatRfc3339Us(std::int64_t us);
// Parses "90s", "5m", "2h", "1d", "250ms", "1h30m" into µs; nullopt if malformed or zero.
std::optional<std::int64_t> ParseDurationUs(std::string_view text);

// Reads every path ("-" = stdin) and summarizes. kNotFound if a file does not exist; kInvalid
// if it is not a regular file or a pipe (a directory, a device), cannot be read, or is a
// corrupt or truncated gzip/zstd stream (the message names the file).
[[nodiscard]] Result<ScanSummary> Scan(const std::vector<std::string>& paths,
                                       const ScanOptions& options);

// Follows one growing log file like `tail -F`: Poll() reads what was appended since the last
// call (the first call reads what the file already holds) and never blocks. When the path
// names another file (rotation), the old one is read to its end first, its last line counted
// even without a newline, and the new one is read from its start; when the file shrinks
// (truncation) reading starts over at 0. Lines in flight (no newline yet) wait for the next
// Poll. Not thread-safe.
class Follower {
 public:
  // kNotFound if the file does not exist; kInvalid if it is not a regular file or is
  // compressed (follow the uncompressed log; summarize rotated .gz files without --follow).
  [[nodiscard]] static Result<std::unique_ptr<Follower>> Open(const std::string& path,
                                                              const ScanOptions& options);
  ~Follower();
  // Bytes read; kInvalid if a read fails, or kNotFound if the path vanished at a rotation and
  // its replacement cannot be opened.
  [[nodiscard]] Result<std::uint64_t> Poll();
  ScanSummary Summary() const;  // everything counted since Open
  std::uint64_t rotations() const;
  std::uint64_t truncations() const;

 private:
  Follower() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dlsys::monitor
