#include "package/internal/measure.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace dlsys::package::internal {

std::optional<std::uint64_t> ReadAnonRssBytes() {
  // Plain read(2) into a stack buffer: the sampler must not allocate what it measures.
  int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  char buf[4096];
  std::size_t used = 0;
  for (;;) {
    ssize_t n = read(fd, buf + used, sizeof buf - 1 - used);
    if (n <= 0) break;
    used += static_cast<std::size_t>(n);
    if (used == sizeof buf - 1) break;
  }
  close(fd);
  buf[used] = '\0';
  const char* line = std::strstr(buf, "\nRssAnon:");
  if (line == nullptr) return std::nullopt;
  char* end = nullptr;
  unsigned long long kib = std::strtoull(line + std::strlen("\nRssAnon:"), &end, 10);
  if (end == line + std::strlen("\nRssAnon:")) return std::nullopt;
  return static_cast<std::uint64_t>(kib) * 1024;
}

MemorySampler::MemorySampler(std::chrono::microseconds period)
    : period_(period), baseline_(ReadAnonRssBytes()) {
  if (!baseline_) return;
  peak_.store(*baseline_, std::memory_order_relaxed);
  thread_ = std::thread([this] {
    while (!stop_.load(std::memory_order_acquire)) {
      Sample();
      std::this_thread::sleep_for(period_);
    }
  });
}

MemorySampler::~MemorySampler() { Stop(); }

void MemorySampler::Sample() {
  if (std::optional<std::uint64_t> now = ReadAnonRssBytes()) {
    std::uint64_t peak = peak_.load(std::memory_order_relaxed);
    while (*now > peak && !peak_.compare_exchange_weak(peak, *now, std::memory_order_relaxed)) {
    }
  }
}

std::optional<std::uint64_t> MemorySampler::Stop() {
  if (result_) return *result_;
  stop_.store(true, std::memory_order_release);
  if (thread_.joinable()) thread_.join();
  if (!baseline_) {
    result_.emplace(std::nullopt);
  } else {
    Sample();
    result_.emplace(peak_.load(std::memory_order_relaxed) - *baseline_);
  }
  return *result_;
}

Result<double> MedianLatencyMs(const runtime::Model& model, std::string_view method,
                               const std::vector<runtime::Tensor>& inputs, int runs) {
  std::vector<double> ms;
  for (int i = 0; i < std::max(1, runs); ++i) {
    const auto start = std::chrono::steady_clock::now();
    auto outputs = model.Run(method, inputs);
    const auto stop = std::chrono::steady_clock::now();
    if (!outputs) return tl::unexpected(std::move(outputs.error()));
    ms.push_back(std::chrono::duration<double, std::milli>(stop - start).count());
  }
  std::sort(ms.begin(), ms.end());
  const std::size_t n = ms.size();
  return n % 2 == 1 ? ms[n / 2] : (ms[n / 2 - 1] + ms[n / 2]) / 2;
}

}  // namespace dlsys::package::internal
