// What pack measures and the smoke test measures again: peak growth of this process's anonymous
// resident memory over a stretch of work, and the median latency of repeated forward passes.
//
// Anonymous memory (RssAnon in /proc/self/status) is what loading a model and running it
// allocate: tensors, the interpreter's state, activations. File-backed pages (a memory-mapped
// model file touched by concurrent hashing, shared libraries) are not anonymous, so work running
// alongside does not pollute the figure unless it allocates.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>
#include <thread>
#include <vector>

#include "core/error.h"
#include "runtime/runtime.h"

namespace dlsys::package::internal {

// RssAnon of this process in bytes; nullopt where /proc/self/status lacks it.
std::optional<std::uint64_t> ReadAnonRssBytes();

// Samples RssAnon on a background thread from construction until Stop() (or destruction).
// Not thread-safe: one owner calls Stop().
class MemorySampler {
 public:
  explicit MemorySampler(std::chrono::microseconds period = std::chrono::milliseconds(1));
  MemorySampler(const MemorySampler&) = delete;
  MemorySampler& operator=(const MemorySampler&) = delete;
  ~MemorySampler();

  // Stops sampling (taking one last sample) and returns the peak growth over the sample taken
  // at construction, in bytes; nullopt if RssAnon cannot be read. Later calls return the same.
  std::optional<std::uint64_t> Stop();

 private:
  void Sample();

  std::chrono::microseconds period_;
  std::optional<std::uint64_t> baseline_;
  std::atomic<std::uint64_t> peak_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::optional<std::optional<std::uint64_t>> result_;
};

// Runs `method` on `inputs` `runs` times (at least once) and returns the median wall time in
// milliseconds; the first failing run's error otherwise. The caller does any warm-up.
[[nodiscard]] Result<double> MedianLatencyMs(const runtime::Model& model, std::string_view method,
                                             const std::vector<runtime::Tensor>& inputs, int runs);

}  // namespace dlsys::package::internal
