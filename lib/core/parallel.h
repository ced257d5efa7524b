// Runs independent tasks on a few threads.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string_view>

#include "core/error.h"

namespace dlsys::core {

// The most threads a caller may ask for (--threads, DLSYS_THREADS).
inline constexpr unsigned kMaxThreads = 256;

// Parses a thread count given as text: decimal digits only, value 1..kMaxThreads. kUsage
// otherwise, with a message naming `what` (e.g. "DLSYS_THREADS") and the valid range.
[[nodiscard]] Result<unsigned> ParseThreadCount(std::string_view text, std::string_view what);

// DLSYS_THREADS: nullopt when unset or empty, else ParseThreadCount's result. Callers that
// can report errors (the CLI) call this to refuse an invalid value.
[[nodiscard]] Result<std::optional<unsigned>> ThreadsFromEnv();

// Number of threads worth using for CPU-bound work: DLSYS_THREADS when it is valid (an
// invalid value is ignored here; see ThreadsFromEnv), else hardware concurrency, at least 1.
unsigned WorkerCount();

// Calls fn(i) for every i in [0, count) on up to `threads` threads (0 = WorkerCount(); at
// most kMaxThreads),
// the calling thread included. Returns when all calls have returned. fn must be thread-safe
// and must not throw.
void ParallelFor(std::size_t count, unsigned threads, const std::function<void(std::size_t)>& fn);

// Names the calling thread for `top -H`, `ps -L`, perf and gdb (Linux keeps the first 15 bytes).
void NameThisThread(const char* name);

}  // namespace dlsys::core
