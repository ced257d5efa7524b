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
// Plain files are split into byte ranges read by all cores (large ones through a memory map;
// one truncated meanwhile raises a SIGBUS that is caught, and is read again with pread); gzip
// and zstd files (by their magic bytes, e.g. rotated logs) and "-" (stdin) are read as one
// stream.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "monitor/drift_sink.h"
#include "monitor/sketch.h"

namespace dlsys::monitor {

// Sliding windows are made of ticks: kTicksPerWindow per window, aligned to multiples of
// window / kTicksPerWindow since the Unix epoch.
inline constexpr int kTicksPerWindow = 10;
// Groups beyond ScanOptions::window_groups (at most this many; per scan thread, in order of
// first appearance) keep no ticks: their window and series are empty, their totals complete.
inline constexpr std::size_t kMaxWindowGroups = 100;
inline constexpr std::size_t kMaxHistoryTicks = 600;

// --field NAME=PATH[*FACTOR]: the field monitor knows as NAME (status, latency_ms, @timestamp,
// log.level, batch_size or a --by/--where field) is read from PATH in a foreign log: a top-level
// key, or a JSON Pointer (RFC 6901) when it starts with '/'. A mapped number may also be given
// as a string holding one ("503", "0.004": nginx's escape=json quotes every value); a string
// that is not a number (nginx's "-") counts as missing. FACTOR scales a number (request_time
// in seconds * 1000 = latency_ms).
struct FieldMap {
  std::string name;
  std::string path;
  double factor = 1;
};
// Parses NAME=PATH[*FACTOR]; kUsage naming the problem.
[[nodiscard]] Result<FieldMap> ParseFieldMap(std::string_view text);

struct ScanOptions {
  std::vector<std::string> by = {"model", "model_version"};  // group key fields
  // FIELD=VALUE filters, all must match: VALUE equals the field's string, or the JSON text of
  // a number, boolean or null ("status=503", "model=mlp16"). A missing field never matches.
  std::vector<std::pair<std::string, std::string>> where;
  // Minimum `log.level` (TRACE DEBUG INFO WARN ERROR FATAL); records without one pass.
  std::optional<int> min_level;
  // Records stamped before this (µs since the Unix epoch) are skipped; unstamped ones pass.
  std::optional<std::int64_t> since_us;
  // Records stamped at or after this are skipped (a reference window's end).
  std::optional<std::int64_t> until_us;
  unsigned threads = 0;                   // 0 = all cores
  std::size_t max_line_bytes = 1 << 20;   // longer lines are bad
  // At most this many groups (each holds a ~9 KiB sketch per thread); the rest are "(other)".
  std::size_t max_groups = 1000;
  // A plain file is split into ranges of at least this size, one per thread (tests lower it).
  std::uint64_t min_range_bytes = 8 << 20;
  std::vector<FieldMap> fields;  // --field mappings
  // Window length (µs) whose ticks each group keeps (GroupStats::ticks); 0 = none.
  std::int64_t window_us = 60'000'000;
  // Ticks kept per group (the newest ones): the sparklines' and `for DURATION` rules' history.
  std::size_t history_ticks = 3 * kTicksPerWindow;
  // Groups that keep ticks (the first ones seen per scan thread), at most kMaxWindowGroups.
  std::size_t window_groups = kMaxWindowGroups;
  // Drift: the `input` and `prediction` of every request that passes the filters go to a sink
  // made per scan thread by this factory, then merged (nullptr = not collected).
  std::function<std::unique_ptr<DriftSink>()> drift_sink;
  // Filter mode: every line that passes the filters (requests and other records) is handed
  // over as read, in file order; the scan then uses one thread.
  std::function<void(std::string_view line)> on_record;
  // Plain files at least this big are read through a memory map (no copy into read buffers);
  // if one shrinks meanwhile it is read again with pread. Tests lower it.
  std::uint64_t map_min_bytes = 16 << 20;
  std::function<void()> on_mapped;  // tests: called once a file is mapped, before it is read
};

// One tick of a group: what was counted from the records stamped in
// [index * tick, (index + 1) * tick), tick = window / kTicksPerWindow.
struct TickStats {
  std::int64_t index = 0;
  std::uint64_t requests = 0;
  std::uint64_t status_4xx = 0;
  std::uint64_t status_5xx = 0;
  QuantileSketch latency_ms;
  double batch_size_sum = 0;
  std::uint64_t batch_size_count = 0;
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
  // The newest ScanOptions::history_ticks ticks with requests, by ascending index (records
  // stamped before the oldest one kept are in the totals only).
  std::vector<TickStats> ticks;
  // A window's stats (WindowOf): first_us..last_us is the window, the rate is over all of it.
  bool is_window = false;
  bool keeps_ticks = false;  // set by the scan: one of the first kMaxWindowGroups groups

  // Adds the other's counts; of the ticks, the newest max_ticks are kept.
  void Merge(const GroupStats& other, std::size_t max_ticks = kMaxHistoryTicks);
  // Requests per second: over [first, last] (0 when fewer than two stamped requests), or over
  // the whole window.
  double RatePerSecond() const;
};

// Index of the tick holding time t (µs since the epoch).
std::int64_t TickOf(std::int64_t t_us, std::int64_t window_us);
// The group's stats over the window that ends at now_us: its ticks
// [TickOf(now) - kTicksPerWindow + 1, TickOf(now)], i.e. the last window_us to a resolution
// of one tick; first_us/last_us are that span's start and now_us.
GroupStats WindowOf(const GroupStats& g, std::int64_t now_us, std::int64_t window_us);

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
  std::int64_t last_us = 0;  // the newest @timestamp of a counted request (0 = none)
  std::unique_ptr<DriftSink> drift;  // everything sampled (when ScanOptions::drift_sink)
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
  // Follows a pipe (standard input, an ssh child's output): Poll() reads what is there without
  // blocking; when the writer closes it the last line counts and ended() turns true. `fd` is
  // duplicated (and made non-blocking); `name` is for messages.
  [[nodiscard]] static Result<std::unique_ptr<Follower>> OpenStream(int fd, const std::string& name,
                                                                    const ScanOptions& options);
  bool ended() const;  // a stream's writer closed it
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
