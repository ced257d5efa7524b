#include "core/encoding.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <utility>
#include <vector>

namespace dlsys::core {
namespace {

TEST(HexTest, EncodesLowerCase) {
  EXPECT_EQ(HexEncode(AsBytes("")), "");
  EXPECT_EQ(HexEncode(AsBytes(std::string("\x00\x01\x7f\x80\xab\xff", 6))), "00017f80abff");
  EXPECT_EQ(HexEncode(AsBytes("Hi")), "4869");
}

// RFC 4648 section 10 test vectors.
const std::vector<std::pair<std::string, std::string>> kRfc4648 = {
    {"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},         {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
};

TEST(Base64Test, EncodesRfc4648Vectors) {
  for (const auto& [plain, encoded] : kRfc4648) {
    EXPECT_EQ(Base64Encode(AsBytes(plain)), encoded) << "'" << plain << "'";
  }
}

TEST(Base64Test, DecodesRfc4648Vectors) {
  for (const auto& [plain, encoded] : kRfc4648) {
    auto d = Base64Decode(encoded);
    ASSERT_TRUE(d.has_value()) << encoded;
    EXPECT_EQ(*d, plain) << encoded;
  }
}

TEST(Base64Test, UsesStandardAlphabetForHighBits) {
  EXPECT_EQ(Base64Encode(AsBytes(std::string("\xfb\xff\xbf", 3))), "+/+/");
  EXPECT_EQ(Base64Decode("+/+/"), std::string("\xfb\xff\xbf", 3));
}

TEST(Base64Test, RejectsBadLength) {
  for (const char* bad : {"Z", "Zg", "Zg=", "Zm9vY", "Zm9vYg=", "Zm9vYmFy="}) {
    EXPECT_FALSE(Base64Decode(bad).has_value()) << bad;
  }
}

TEST(Base64Test, RejectsCharactersOutsideTheAlphabet) {
  // URL-safe alphabet, white space, NUL and non-ASCII are not standard base64.
  for (std::string bad : {std::string("Zm9-"), std::string("Zm9_"), std::string("Zm 9"),
                          std::string("Zm9v\n"), std::string("Zm\0v", 4),
                          std::string("Zm\xc3\xa9")}) {
    EXPECT_FALSE(Base64Decode(bad).has_value()) << bad;
  }
}

TEST(Base64Test, RejectsMisplacedPadding) {
  for (const char* bad : {"=Zm9", "Z=m9", "Zm=v", "Zg==Zm9v", "Zm8=Zm9v", "Z===", "====",
                          "Zg=a", "Zm9vYg=a"}) {
    EXPECT_FALSE(Base64Decode(bad).has_value()) << bad;
  }
}

TEST(Base64Test, RoundTripsRandomBytes) {
  std::mt19937 gen(42);
  for (std::size_t n = 0; n < 300; ++n) {
    std::string data(n, '\0');
    for (auto& c : data) c = static_cast<char>(gen());
    const std::string encoded = Base64Encode(AsBytes(data));
    EXPECT_EQ(encoded.size(), (n + 2) / 3 * 4);
    auto decoded = Base64Decode(encoded);
    ASSERT_TRUE(decoded.has_value()) << "n=" << n;
    EXPECT_EQ(*decoded, data) << "n=" << n;
  }
}

TEST(SemverTest, AcceptsValidVersions) {
  for (const char* v : {"1.0.0", "0.0.1-alpha.1+build.5", "10.20.30", "0.0.0", "1.2.3-rc.1",
                        "1.0.0-0A.is.legal", "1.0.0+20130313144700", "1.0.0-x-y-z.--"}) {
    EXPECT_TRUE(IsSemver(v)) << v;
  }
}

TEST(SemverTest, RejectsInvalidVersions) {
  for (const char* v : {"1.0", "01.0.0", "1.0.0-", "v1.0.0", "1.0.0+", "", "1", "1.0.0.0",
                        "1.01.0", "1.0.0-01", "1.0.0-alpha..1", " 1.0.0", "1.0.0 ", "1.0.0+a+b"}) {
    EXPECT_FALSE(IsSemver(v)) << "'" << v << "'";
  }
}

TEST(SemverTest, RejectsOverlongVersions) {
  std::string v = "1.0.0+" + std::string(251, 'a');  // 257 characters
  EXPECT_FALSE(IsSemver(v));
  v.pop_back();  // 256
  EXPECT_TRUE(IsSemver(v));
}

TEST(HumanBytesTest, FormatsUnits) {
  EXPECT_EQ(HumanBytes(0), "0 B");
  EXPECT_EQ(HumanBytes(812), "812 B");
  EXPECT_EQ(HumanBytes(1023), "1023 B");
  EXPECT_EQ(HumanBytes(1024), "1.00 KiB");
  EXPECT_EQ(HumanBytes(1536), "1.50 KiB");
  EXPECT_EQ(HumanBytes(20 * 1024), "20.0 KiB");
  EXPECT_EQ(HumanBytes(5ull << 20), "5.00 MiB");
  EXPECT_EQ(HumanBytes(1ull << 30), "1.00 GiB");
  EXPECT_EQ(HumanBytes(3ull << 40), "3.00 TiB");
  EXPECT_EQ(HumanBytes(2048ull << 40), "2048.0 TiB");  // TiB is the largest unit
}

}  // namespace
}  // namespace dlsys::core

TEST(CompareSemver, FollowsSemverPrecedence) {
  // The example chain of semver.org section 11, in ascending order.
  const char* chain[] = {"1.0.0-alpha",      "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta",
                         "1.0.0-beta.2",     "1.0.0-beta.11", "1.0.0-rc.1",       "1.0.0",
                         "1.0.1",            "1.1.0",         "2.0.0",            "10.0.0"};
  for (std::size_t i = 0; i < std::size(chain); ++i) {
    for (std::size_t j = 0; j < std::size(chain); ++j) {
      const int c = dlsys::core::CompareSemver(chain[i], chain[j]);
      EXPECT_EQ(c < 0, i < j) << chain[i] << " vs " << chain[j];
      EXPECT_EQ(c == 0, i == j) << chain[i] << " vs " << chain[j];
    }
  }
  EXPECT_EQ(dlsys::core::CompareSemver("1.2.3+build.1", "1.2.3+build.2"), 0);
}
