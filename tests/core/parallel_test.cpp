#include "core/parallel.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

namespace dlsys::core {
namespace {

TEST(ParseThreadCountTest, AcceptsOneToMaxAndNothingElse) {
  EXPECT_EQ(ParseThreadCount("1", "DLSYS_THREADS").value(), 1u);
  EXPECT_EQ(ParseThreadCount("256", "DLSYS_THREADS").value(), 256u);
  EXPECT_EQ(ParseThreadCount("016", "DLSYS_THREADS").value(), 16u);
  for (const char* bad :
       {"", "0", "257", "9999", "-1", "+4", " 4", "4 ", "4x", "1e2", "99999999999999999999"}) {
    auto r = ParseThreadCount(bad, "DLSYS_THREADS");
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, Code::kUsage) << bad;
    EXPECT_NE(r.error().message.find("DLSYS_THREADS"), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("1 to 256"), std::string::npos) << r.error().message;
  }
}

TEST(ParallelForTest, VisitsEveryIndexExactlyOnce) {
  for (std::size_t count : {0u, 1u, 7u, 1000u}) {
    for (unsigned threads = 1; threads <= 8; ++threads) {
      auto visits = std::make_unique<std::atomic<int>[]>(count + 1);
      ParallelFor(count, threads, [&](std::size_t i) {
        ASSERT_LT(i, count);
        visits[i].fetch_add(1);
      });
      for (std::size_t i = 0; i < count; ++i) {
        ASSERT_EQ(visits[i].load(), 1)
            << "index " << i << " count " << count << " threads " << threads;
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
  // Invalid values are ignored (the CLI refuses them through ThreadsFromEnv).
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  for (const char* bad : {"0", "9999", "12abc", "-3", "99999999999999999999"}) {
    ::setenv("DLSYS_THREADS", bad, 1);
    EXPECT_EQ(WorkerCount(), cores) << bad;
    EXPECT_FALSE(ThreadsFromEnv()) << bad;
  }
  ::setenv("DLSYS_THREADS", "", 1);
  EXPECT_EQ(ThreadsFromEnv().value(), std::nullopt);
  ::setenv("DLSYS_THREADS", "256", 1);
  EXPECT_EQ(ThreadsFromEnv().value(), 256u);
  if (old)
    ::setenv("DLSYS_THREADS", saved.c_str(), 1);
  else
    ::unsetenv("DLSYS_THREADS");
}

}  // namespace
}  // namespace dlsys::core
