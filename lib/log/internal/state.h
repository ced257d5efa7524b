// The process-wide log configuration, shared by Init/Shutdown (log.cpp) and Record
// (record.cpp). Internal to lib/log: it exposes spdlog.
#pragma once

#include <spdlog/logger.h>

#include <memory>
#include <string>
#include <string_view>

#include "log/log.h"

namespace dlsys::log::internal {

// One configuration, immutable once made. A Record holds the State it was made under, so a
// concurrent Init or Shutdown never pulls the writer from under a record being emitted; the
// background writer (async) writes what it holds and stops when the last holder lets go.
struct State {
  Options options;  // as given to Init
  Format format = Format::kText;
  std::string service;
  std::string host;
  long pid = 0;
  std::shared_ptr<spdlog::logger> logger;
};

// The current configuration (the default one — WARN, text, stderr — before Init and after
// Shutdown). Thread-safe.
std::shared_ptr<const State> CurrentState();

// Writes one formatted line (without its newline) through the state's logger.
void WriteLine(const State& state, Level level, std::string_view line);

}  // namespace dlsys::log::internal
