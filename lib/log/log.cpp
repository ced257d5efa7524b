// Configuration of the process-wide log: levels, Init and Shutdown.
#include "log/log.h"

#include <spdlog/pattern_formatter.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <exception>
#include <mutex>

#include "log/internal/fd_sink.h"
#include "log/internal/state.h"

namespace dlsys::log {
namespace {

std::atomic<int> g_min_level{static_cast<int>(Level::kWarn)};

struct Global {
  std::mutex mu;
  std::shared_ptr<const internal::State> state;  // null: the default, made on first use
};

Global& TheGlobal() {
  static Global* global = new Global;  // never destroyed: records may be emitted at exit
  return *global;
}

const std::string& HostName() {
  static const std::string host = [] {
    char buf[256] = {};
    if (::gethostname(buf, sizeof buf - 1) != 0) return std::string();
    return std::string(buf);
  }();
  return host;
}

spdlog::level::level_enum SpdlogLevel(Level level) {
  switch (level) {
    case Level::kTrace:
      return spdlog::level::trace;
    case Level::kDebug:
      return spdlog::level::debug;
    case Level::kInfo:
      return spdlog::level::info;
    case Level::kWarn:
      return spdlog::level::warn;
    case Level::kError:
      return spdlog::level::err;
    case Level::kFatal:
      return spdlog::level::critical;
  }
  return spdlog::level::critical;
}

// spdlog throws on a bad pattern or when it cannot start its thread.
std::shared_ptr<const internal::State> MakeState(const Options& options, int fd,
                                                 core::UniqueFd owned) {
  auto state = std::make_shared<internal::State>();
  state->options = options;
  state->format = options.format;
  state->service = options.service;
  state->host = HostName();
  state->pid = static_cast<long>(::getpid());
  std::shared_ptr<spdlog::sinks::sink> sink;
  if (options.async) {
    sink = std::make_shared<internal::BatchingFdSink>(fd, std::move(owned));
  } else {
    sink = std::make_shared<internal::FdSink>(fd, std::move(owned));
  }
  // Lines arrive formatted: the pattern adds only the newline.
  sink->set_formatter(
      std::make_unique<spdlog::pattern_formatter>("%v", spdlog::pattern_time_type::utc, "\n"));
  state->logger = std::make_shared<spdlog::logger>("dlsys", std::move(sink));
  state->logger->set_level(spdlog::level::trace);  // filtered before a record is built
  state->logger->set_error_handler([](const std::string&) {});
  return state;
}

}  // namespace

const char* LevelName(Level level) {
  switch (level) {
    case Level::kTrace:
      return "TRACE";
    case Level::kDebug:
      return "DEBUG";
    case Level::kInfo:
      return "INFO";
    case Level::kWarn:
      return "WARN";
    case Level::kError:
      return "ERROR";
    case Level::kFatal:
      return "FATAL";
  }
  return "FATAL";
}

int SeverityNumber(Level level) { return 1 + 4 * static_cast<int>(level); }

std::optional<Level> ParseLevel(std::string_view name) {
  std::string lower;
  for (char c : name) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower == "trace") return Level::kTrace;
  if (lower == "debug") return Level::kDebug;
  if (lower == "info") return Level::kInfo;
  if (lower == "warn" || lower == "warning") return Level::kWarn;
  if (lower == "error") return Level::kError;
  if (lower == "fatal") return Level::kFatal;
  return std::nullopt;
}

std::optional<Format> ParseFormat(std::string_view name) {
  if (name == "text") return Format::kText;
  if (name == "json") return Format::kJson;
  return std::nullopt;
}

Result<void> Init(const Options& options) {
  int fd = STDERR_FILENO;
  core::UniqueFd owned;
  if (!options.file.empty()) {
    DLSYS_ASSIGN_OR_RETURN(owned, internal::OpenAppendFile(options.file));
    fd = owned.get();
  }
  std::shared_ptr<const internal::State> state;
  try {
    state = MakeState(options, fd, std::move(owned));
  } catch (const std::exception& e) {
    return Fail(Code::kInternal, std::string("cannot start the log: ") + e.what());
  }
  std::shared_ptr<const internal::State> old;
  {
    auto& g = TheGlobal();
    std::lock_guard lock(g.mu);
    old = std::exchange(g.state, std::move(state));
    g_min_level.store(static_cast<int>(options.level), std::memory_order_relaxed);
  }
  return {};  // `old` goes here: its writer thread, if any, drains its queue and stops
}

Result<std::unique_ptr<Channel>> Channel::Open(const Options& options) {
  int fd = STDOUT_FILENO;
  core::UniqueFd owned;
  if (options.file != "-") {
    DLSYS_ASSIGN_OR_RETURN(owned, internal::OpenAppendFile(options.file));
    fd = owned.get();
  }
  auto channel = std::unique_ptr<Channel>(new Channel());
  try {
    channel->state_ = MakeState(options, fd, std::move(owned));
  } catch (const std::exception& e) {
    return Fail(Code::kInternal, std::string("cannot start the log: ") + e.what());
  }
  channel->level_ = options.level;
  return channel;
}

Channel::~Channel() {
  if (state_) state_->logger->flush();
}

void Shutdown() {
  std::shared_ptr<const internal::State> old;
  {
    auto& g = TheGlobal();
    std::lock_guard lock(g.mu);
    old = std::move(g.state);
    g_min_level.store(static_cast<int>(Level::kWarn), std::memory_order_relaxed);
  }
  if (old) old->logger->flush();
  // Releasing `old` stops the background writer after it has written every queued line
  // (unless a record still being built on another thread holds it; that one finishes it).
}

Options CurrentOptions() {
  auto& g = TheGlobal();
  std::lock_guard lock(g.mu);
  return g.state ? g.state->options : Options{};
}

bool Enabled(Level level) {
  return static_cast<int>(level) >= g_min_level.load(std::memory_order_relaxed);
}

namespace internal {

std::shared_ptr<const State> CurrentState() {
  auto& g = TheGlobal();
  std::lock_guard lock(g.mu);
  if (!g.state) g.state = MakeState(Options{}, STDERR_FILENO, core::UniqueFd());
  return g.state;
}

void WriteLine(const State& state, Level level, std::string_view line) {
  state.logger->log(SpdlogLevel(level), spdlog::string_view_t(line.data(), line.size()));
}

}  // namespace internal
}  // namespace dlsys::log
