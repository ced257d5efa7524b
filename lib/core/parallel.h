// Runs independent tasks on a few threads.
#pragma once

#include <cstddef>
#include <functional>

namespace dlsys::core {

// Number of threads worth using for CPU-bound work: hardware concurrency, at least 1,
// overridable by DLSYS_THREADS.
unsigned WorkerCount();

// Calls fn(i) for every i in [0, count) on up to `threads` threads (0 = WorkerCount()),
// the calling thread included. Returns when all calls have returned. fn must be thread-safe
// and must not throw.
void ParallelFor(std::size_t count, unsigned threads, const std::function<void(std::size_t)>& fn);

}  // namespace dlsys::core
