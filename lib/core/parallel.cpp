#include "core/parallel.h"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

namespace dlsys::core {

Result<unsigned> ParseThreadCount(std::string_view text, std::string_view what) {
  unsigned n = 0;
  bool ok = !text.empty();
  for (char c : text) {
    if (c < '0' || c > '9') {
      ok = false;
      break;
    }
    if (n <= kMaxThreads) n = n * 10 + static_cast<unsigned>(c - '0');  // stops before overflow
  }
  if (!ok || n < 1 || n > kMaxThreads) {
    return Fail(Code::kUsage, std::string(what) + "='" + std::string(text) +
                                  "' is not a thread count: give a whole number from 1 to " +
                                  std::to_string(kMaxThreads));
  }
  return n;
}

Result<std::optional<unsigned>> ThreadsFromEnv() {
  const char* env = std::getenv("DLSYS_THREADS");
  if (env == nullptr || *env == '\0') return std::optional<unsigned>();
  DLSYS_ASSIGN_OR_RETURN(unsigned n, ParseThreadCount(env, "DLSYS_THREADS"));
  return std::optional<unsigned>(n);
}

unsigned WorkerCount() {
  if (auto env = ThreadsFromEnv(); env && *env) return **env;
  return std::max(1u, std::thread::hardware_concurrency());
}

void ParallelFor(std::size_t count, unsigned threads, const std::function<void(std::size_t)>& fn) {
  if (threads == 0) threads = WorkerCount();
  threads = std::min(threads, kMaxThreads);
  threads = static_cast<unsigned>(std::min<std::size_t>(threads, count));
  std::atomic<std::size_t> next{0};
  auto work = [&] {
    for (std::size_t i = next++; i < count; i = next++) fn(i);
  };
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
}

void NameThisThread(const char* name) { ::pthread_setname_np(::pthread_self(), name); }

}  // namespace dlsys::core
