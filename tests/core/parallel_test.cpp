#include "core/parallel.h"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

namespace dlsys::core {
namespace {

TEST(ParallelForTest, VisitsEveryIndexExactlyOnce) {
  for (std::size_t count : {0u, 1u, 7u, 1000u}) {
    for (unsigned threads = 1; threads <= 8; ++threads) {
      auto visits = std::make_unique<std::atomic<int>[]>(count + 1);
      ParallelFor(count, threads, [&](std::size_t i) {
        ASSERT_LT(i, count);
        visits[i].fetch_add(1);
      });
      for (std::size_t i = 0; i < count; ++i) {
        ASSERT_EQ(visits[i].load(), 1) << "index " << i << " count " << count << " threads "
                                       << threads;
      }
    }
  }
}

TEST(ParallelForTest, ZeroThreadsMeansWorkerCount) {
  std::atomic<std::size_t> sum{0};
  ParallelFor(100, 0, [&](std::size_t i) { sum += i; });
  EXPECT_EQ(sum.load(), 4950u);
}

TEST(ParallelForTest, UsesSeveralThreadsWhenAsked) {
  // Each call waits until a second thread has also entered, so a single-threaded
  // implementation would never see two distinct thread ids (the wait is bounded).
  std::mutex mu;
  std::set<std::thread::id> ids;
  std::atomic<int> inside{0};
  ParallelFor(4, 4, [&](std::size_t) {
    {
      std::lock_guard lock(mu);
      ids.insert(std::this_thread::get_id());
    }
    ++inside;
    for (int spin = 0; spin < 2000 && inside.load() < 2; ++spin) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  EXPECT_GE(ids.size(), 2u);
}

TEST(WorkerCountTest, HonoursEnvironment) {
  const char* old = std::getenv("DLSYS_THREADS");
  std::string saved = old ? old : "";
  ::setenv("DLSYS_THREADS", "3", 1);
  EXPECT_EQ(WorkerCount(), 3u);
  ::setenv("DLSYS_THREADS", "garbage", 1);
  EXPECT_GE(WorkerCount(), 1u);
  if (old) ::setenv("DLSYS_THREADS", saved.c_str(), 1); else ::unsetenv("DLSYS_THREADS");
}

}  // namespace
}  // namespace dlsys::core
