// The structured log shared by every dlsys command: one JSON object per line (ECS-compatible
// field names, schemas/log-record.schema.json, docs/logging.md) or a human text line.
//
//   dlsys::log::Record(dlsys::log::Level::kInfo, "serve.ready", "serving 2 models")
//       .Str("model", "mlp").Int("batch_size", 4).Num("latency_ms", 1.25).Emit();
//
// A record is built on the caller's thread (the timestamp is taken when the Record is made)
// and written through spdlog: synchronously with one write() call per line, or, when
// Options::async (the server), appended to a buffer that a background thread writes every
// 2 ms, whole lines per write() call. Records below the configured level cost one branch.
// Every string is escaped: JSON output is ASCII-only; text output is terminal-safe.
//
// Before Init and after Shutdown the log is the default one: WARN and above, text, stderr.
// Async: at most 1 MiB of lines wait for the writer; a thread that finds that much waiting
// writes it itself (and so waits for the disk) rather than lose records.
//
// Thread-safety: Init/Shutdown from main only; everything else from any thread. A child made
// by fork() should call Init before it logs when the parent's log is async (threads do not
// survive fork: its lines would be written only once 1 MiB gathered, or at Shutdown).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/error.h"

namespace dlsys::log {

enum class Level { kTrace, kDebug, kInfo, kWarn, kError, kFatal };
enum class Format { kText, kJson };

// "TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL".
const char* LevelName(Level level);
// OpenTelemetry severity number: 1, 5, 9, 13, 17, 21.
int SeverityNumber(Level level);
// "trace", "debug", "info", "warn" (or "warning"), "error", "fatal", in any case.
std::optional<Level> ParseLevel(std::string_view name);
// "text" or "json".
std::optional<Format> ParseFormat(std::string_view name);

struct Options {
  Level level = Level::kWarn;
  Format format = Format::kText;
  std::string file;               // "" = stderr; else appended to (created 0644)
  bool async = false;             // buffered, written by a background thread (serve)
  std::string service = "dlsys";  // the `service` field, e.g. "dlsys-serve"
};

// Configures the process-wide log, replacing the previous configuration (whose writer thread,
// if any, writes what it holds and stops). The file must be a regular file: a FIFO, device or
// directory is refused without blocking. kInvalid if the file cannot be opened or is not a
// regular file (the message names it); the previous configuration then stays.
[[nodiscard]] Result<void> Init(const Options& options);
// The options of the last successful Init (Options{} before Init and after Shutdown), e.g. for
// a command that reconfigures the log it was started with: serve turns on async and names
// its service.
Options CurrentOptions();
// Flushes and stops the background writer, if any, once every line emitted before has been
// written; then back to the default log. Safe to call more than once.
void Shutdown();
bool Enabled(Level level);

namespace internal {
struct State;
}
class Channel;

// One record. Fields appear in the order they are added, after the fixed ones:
// @timestamp, log.level, message, ecs.version, severity, event, service, host, pid.
// Adding a key twice keeps both (callers must not); keys are trusted constants.
class Record {
 public:
  Record(Level level, std::string_view event, std::string_view message);
  ~Record();  // does NOT emit: call Emit()
  Record(Record&&) noexcept;
  Record& operator=(Record&&) = delete;

  Record& Str(std::string_view key, std::string_view value);
  Record& Int(std::string_view key, std::int64_t value);
  Record& Num(std::string_view key, double value);  // non-finite become null
  Record& Bool(std::string_view key, bool value);
  // A JSON value written verbatim (must be valid JSON), e.g. sampled features. Kept on one
  // line and ASCII-only: control bytes become spaces, non-ASCII characters \uXXXX escapes.
  Record& Json(std::string_view key, std::string_view json);
  void Emit();

 private:
  friend class Channel;
  Record(std::shared_ptr<const internal::State> state, Level level, std::string_view event,
         std::string_view message);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A destination of its own (serve's access log): a file ("-" = stdout), format, level and
// async writer independent of the process log. Thread-safe; records made from it stay valid
// after the Channel is gone (its writer drains them first).
class Channel {
 public:
  // kInvalid if the file cannot be opened for appending (message names it).
  [[nodiscard]] static Result<std::unique_ptr<Channel>> Open(const Options& options);
  ~Channel();
  bool Enabled(Level level) const { return level >= level_; }
  Record Make(Level level, std::string_view event, std::string_view message) const;

 private:
  Channel() = default;
  std::shared_ptr<const internal::State> state_;
  Level level_ = Level::kInfo;
};

// Shorthands: Info("pack.done", "packed mlp 1.0.0").Str("archive", path).Emit();
Record Trace(std::string_view event, std::string_view message);
Record Debug(std::string_view event, std::string_view message);
Record Info(std::string_view event, std::string_view message);
Record Warn(std::string_view event, std::string_view message);
Record Error(std::string_view event, std::string_view message);

}  // namespace dlsys::log
