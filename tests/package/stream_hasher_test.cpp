#include "package/internal/stream_hasher.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "core/encoding.h"
#include "signing/digest.h"
#include "test_tmp.h"

namespace dlsys::package::internal {
namespace {

// Feeds `data` in chunks of at most `chunk` bytes, ending a job every `job` bytes (and at the
// end); returns the digests and what was kept.
std::pair<std::vector<std::string>, std::string> Feed(const std::string& data, std::size_t chunk,
                                                      std::size_t job, bool pipelined) {
  std::string keep;
  StreamHasher hasher(&keep, pipelined);
  std::size_t pos = 0;
  do {
    const std::size_t in_job = job - pos % job;
    std::span<std::byte> buf = hasher.Acquire();
    const std::size_t n = std::min({chunk, buf.size(), in_job, data.size() - pos});
    std::memcpy(buf.data(), data.data() + pos, n);
    pos += n;
    hasher.Submit(n, pos % job == 0 || pos == data.size());
  } while (pos < data.size());
  return {hasher.Finish(), keep};
}

TEST(StreamHasherTest, PipelinedAndInlineGiveTheDigestOfEveryJob) {
  const std::string data = dlsys::testing::RandomBytes(5 * 1000 * 1000 + 17, 7);
  const std::size_t job = 2 * 1000 * 1000;
  std::vector<std::string> want;
  for (std::size_t off = 0; off < data.size(); off += job) {
    want.push_back(signing::Sha256Hex(core::AsBytes(std::string_view(data).substr(off, job))));
  }
  for (bool pipelined : {false, true}) {
    for (std::size_t chunk : {std::size_t{1000}, std::size_t{1} << 20}) {
      auto [digests, keep] = Feed(data, chunk, job, pipelined);
      EXPECT_EQ(digests, want) << pipelined << " " << chunk;
      EXPECT_EQ(keep, data);
    }
  }
}

TEST(StreamHasherTest, EmptyJobHasTheEmptyDigest) {
  for (bool pipelined : {false, true}) {
    auto [digests, keep] = Feed("", 100, 100, pipelined);
    ASSERT_EQ(digests.size(), 1u);
    EXPECT_EQ(digests[0], signing::Sha256Hex({}));
  }
}

TEST(StreamHasherTest, AbandonStopsWithoutWaitingForQueuedWork) {
  StreamHasher hasher(nullptr, true);
  for (int i = 0; i < 2; ++i) {
    auto buf = hasher.Acquire();
    hasher.Submit(buf.size(), false);
  }
  hasher.Abandon();  // and the destructor after it must not hang
}

}  // namespace
}  // namespace dlsys::package::internal
