#include "signing/digest.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>

#include "core/encoding.h"

namespace dlsys::signing {
namespace {

using core::AsBytes;

constexpr char kEmptySha[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
constexpr char kAbcSha[] = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

// A deterministic, non-repeating byte pattern so shards differ from each other.
std::string Pattern(std::size_t n) {
  std::string s(n, '\0');
  std::uint32_t x = 12345;
  for (char& c : s) {
    x = x * 1103515245u + 12345u;
    c = static_cast<char>(x >> 24);
  }
  return s;
}

TEST(Sha256Test, KnownVectors) {
  EXPECT_EQ(Sha256Hex(AsBytes("")), kEmptySha);
  EXPECT_EQ(Sha256Hex(AsBytes("abc")), kAbcSha);
  EXPECT_EQ(Sha256Hex(AsBytes("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(Sha256Hex(AsBytes(std::string(1000000, 'a'))),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256Test, RawDigestMatchesHex) {
  Sha256Digest d = Sha256(AsBytes("abc"));
  EXPECT_EQ(core::HexEncode(d), kAbcSha);
  EXPECT_EQ(static_cast<unsigned>(d[0]), 0xbau);
}

TEST(Sha256HasherTest, StreamingEqualsOneShot) {
  const std::string data = Pattern(100003);
  for (std::size_t chunk : {1u, 7u, 64u, 4096u, 100003u}) {
    Sha256Hasher h;
    for (std::size_t off = 0; off < data.size(); off += chunk) {
      h.Update(AsBytes(std::string_view(data).substr(off, chunk)));
    }
    EXPECT_EQ(h.FinishHex(), Sha256Hex(AsBytes(data))) << "chunk " << chunk;
  }
}

TEST(Sha256HasherTest, NoUpdateIsEmptyDigest) {
  Sha256Hasher h;
  EXPECT_EQ(h.FinishHex(), kEmptySha);
}

TEST(Sha256HasherTest, FinishResets) {
  Sha256Hasher h;
  h.Update(AsBytes("something else"));
  (void)h.Finish();
  h.Update(AsBytes("ab"));
  h.Update(AsBytes("c"));
  EXPECT_EQ(h.FinishHex(), kAbcSha);
  EXPECT_EQ(h.FinishHex(), kEmptySha);
}

TEST(Sha256HasherTest, MoveKeepsState) {
  Sha256Hasher a;
  a.Update(AsBytes("a"));
  Sha256Hasher b(std::move(a));
  b.Update(AsBytes("b"));
  Sha256Hasher c;
  c = std::move(b);
  c.Update(AsBytes("c"));
  EXPECT_EQ(c.FinishHex(), kAbcSha);
}

TEST(DigestBytesTest, EmptyIsSingleDigest) {
  FileDigest d = DigestBytes({}, 4, 1);
  EXPECT_EQ(d.size, 0u);
  EXPECT_EQ(d.sha256, kEmptySha);
  EXPECT_EQ(d.shard_bytes, 0u);
  EXPECT_TRUE(d.shards.empty());
}

TEST(DigestBytesTest, DefaultShardSizeKeepsSmallFilesWhole) {
  FileDigest d = DigestBytes(AsBytes("abc"));
  EXPECT_EQ(d.size, 3u);
  EXPECT_EQ(d.sha256, kAbcSha);
  EXPECT_EQ(d.shard_bytes, 0u);
  EXPECT_TRUE(d.shards.empty());
}

// size <= shard: one whole-file digest; size > shard: ceil(size / shard) shard digests.
class DigestBytesShardTest : public ::testing::TestWithParam<std::pair<std::size_t, unsigned>> {};

TEST_P(DigestBytesShardTest, MatchesPerShardSha256) {
  constexpr std::uint64_t kShard = 16;
  const auto [size, threads] = GetParam();
  const std::string data = Pattern(size);
  FileDigest d = DigestBytes(AsBytes(data), kShard, threads);
  EXPECT_EQ(d.size, size);
  if (size <= kShard) {
    EXPECT_EQ(d.sha256, Sha256Hex(AsBytes(data)));
    EXPECT_EQ(d.shard_bytes, 0u);
    EXPECT_TRUE(d.shards.empty());
    return;
  }
  EXPECT_TRUE(d.sha256.empty());
  EXPECT_EQ(d.shard_bytes, kShard);
  ASSERT_EQ(d.shards.size(), (size + kShard - 1) / kShard);
  for (std::size_t i = 0; i < d.shards.size(); ++i) {
    const std::string_view shard = std::string_view(data).substr(i * kShard, kShard);
    EXPECT_EQ(d.shards[i], Sha256Hex(AsBytes(shard))) << "shard " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Boundaries, DigestBytesShardTest,
                         ::testing::Values(std::pair<std::size_t, unsigned>{0, 1},
                                           std::pair<std::size_t, unsigned>{1, 1},
                                           std::pair<std::size_t, unsigned>{16, 1},
                                           std::pair<std::size_t, unsigned>{16, 4},
                                           std::pair<std::size_t, unsigned>{17, 1},
                                           std::pair<std::size_t, unsigned>{17, 4},
                                           std::pair<std::size_t, unsigned>{32, 1},
                                           std::pair<std::size_t, unsigned>{32, 4},
                                           std::pair<std::size_t, unsigned>{33, 3},
                                           std::pair<std::size_t, unsigned>{16 * 37 + 5, 1},
                                           std::pair<std::size_t, unsigned>{16 * 37 + 5, 4},
                                           std::pair<std::size_t, unsigned>{16 * 37 + 5, 0}));

TEST(DigestBytesTest, ThreadCountDoesNotChangeResult) {
  const std::string data = Pattern(1 << 20);
  FileDigest one = DigestBytes(AsBytes(data), 4096, 1);
  FileDigest many = DigestBytes(AsBytes(data), 4096, 8);
  ASSERT_EQ(one.shards.size(), 256u);
  EXPECT_EQ(one.shards, many.shards);
  EXPECT_NE(one.shards[0], one.shards[1]);
}

TEST(DigestBytesTest, LastShardIsShort) {
  const std::string data = "0123456789";
  FileDigest d = DigestBytes(AsBytes(data), 4, 2);
  ASSERT_EQ(d.shards.size(), 3u);
  EXPECT_EQ(d.shards[0], Sha256Hex(AsBytes("0123")));
  EXPECT_EQ(d.shards[1], Sha256Hex(AsBytes("4567")));
  EXPECT_EQ(d.shards[2], Sha256Hex(AsBytes("89")));
}

}  // namespace
}  // namespace dlsys::signing
