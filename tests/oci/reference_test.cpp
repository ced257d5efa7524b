// oci:// references: distribution's grammar, and kUsage naming what is wrong.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "oci/oci.h"

namespace dlsys::oci {
namespace {

Reference Parsed(const std::string& text) {
  auto r = ParseReference(text);
  EXPECT_TRUE(r.has_value()) << text << ": " << (r ? "" : r.error().message);
  return r ? *r : Reference{};
}

// The message of a refused reference (and that it is refused as a usage error).
std::string Refused(const std::string& text) {
  auto r = ParseReference(text);
  EXPECT_FALSE(r.has_value()) << text << " was accepted";
  if (r) return "";
  EXPECT_EQ(r.error().code, Code::kUsage) << text;
  return r.error().message;
}

const std::string kHex(64, 'a');

TEST(ReferenceParse, HostPortRepositoryTag) {
  const Reference r = Parsed("oci://127.0.0.1:5000/team/iris:1.0.0");
  EXPECT_EQ(r.host, "127.0.0.1:5000");
  EXPECT_EQ(r.repository, "team/iris");
  EXPECT_EQ(r.tag, "1.0.0");
  EXPECT_EQ(r.digest, "");
  EXPECT_EQ(r.ToString(), "oci://127.0.0.1:5000/team/iris:1.0.0");
}

TEST(ReferenceParse, WithoutTagOrWithDigest) {
  const Reference plain = Parsed("oci://ghcr.io/org/models/iris");
  EXPECT_EQ(plain.host, "ghcr.io");
  EXPECT_EQ(plain.repository, "org/models/iris");
  EXPECT_EQ(plain.tag, "");
  const Reference pinned = Parsed("oci://ghcr.io/iris@sha256:" + kHex);
  EXPECT_EQ(pinned.repository, "iris");
  EXPECT_EQ(pinned.tag, "");
  EXPECT_EQ(pinned.digest, "sha256:" + kHex);
  EXPECT_EQ(pinned.ToString(), "oci://ghcr.io/iris@sha256:" + kHex);
}

TEST(ReferenceParse, RepositoryComponentGrammar) {
  for (const char* ok : {"a", "a.b", "a_b", "a__b", "a-b", "a---b", "a0/b1/c2", "x.y_z-w"}) {
    EXPECT_EQ(Parsed(std::string("oci://h/") + ok).repository, ok);
  }
  for (const char* bad :
       {"A", "a..b", "a___b", "-a", "a-", "a/", "/a", "a//b", "a_.b", "a b", ".a", "a/.b"}) {
    EXPECT_NE(Refused(std::string("oci://h/") + bad).find("repository"), std::string::npos) << bad;
  }
  EXPECT_EQ(Parsed("oci://h/" + std::string(255, 'a')).repository.size(), 255u);
  EXPECT_NE(Refused("oci://h/" + std::string(256, 'a')).find("256 characters"), std::string::npos);
}

TEST(ReferenceParse, TagGrammar) {
  EXPECT_EQ(Parsed("oci://h/r:_x").tag, "_x");
  EXPECT_EQ(Parsed("oci://h/r:V1.2-rc_3").tag, "V1.2-rc_3");
  EXPECT_EQ(Parsed("oci://h/r:" + std::string(128, 't')).tag.size(), 128u);
  for (const std::string& bad :
       std::vector<std::string>{"oci://h/r:", "oci://h/r:.x", "oci://h/r:-x", "oci://h/r:a+b",
                                "oci://h/r:" + std::string(129, 't')}) {
    EXPECT_NE(Refused(bad).find("tag"), std::string::npos) << bad;
  }
}

TEST(ReferenceParse, DigestForm) {
  EXPECT_NE(Refused("oci://h/r@sha256:" + std::string(63, 'a')).find("digest"), std::string::npos);
  EXPECT_NE(Refused("oci://h/r@sha256:" + std::string(64, 'A')).find("digest"), std::string::npos);
  EXPECT_NE(Refused("oci://h/r@sha512:" + kHex).find("digest"), std::string::npos);
  EXPECT_NE(Refused("oci://h/r:t@sha256:" + kHex).find("not both"), std::string::npos);
}

TEST(ReferenceParse, Hosts) {
  EXPECT_EQ(Parsed("oci://localhost:5000/r").host, "localhost:5000");
  EXPECT_EQ(Parsed("oci://Registry.Example-1.com/r").host, "Registry.Example-1.com");
  EXPECT_EQ(Parsed("oci://[::1]:5000/r").host, "[::1]:5000");
  EXPECT_EQ(Parsed("oci://[2001:db8::1]/r").host, "[2001:db8::1]");
  for (const char* bad :
       {"oci:///r", "oci://h:0/r", "oci://h:65536/r", "oci://h:x/r", "oci://h:/r", "oci://-h/r",
        "oci://h_x/r", "oci://1.2.3.999/r", "oci://[::g]/r", "oci://[::1/r", "oci://a:b:c/r"}) {
    Refused(bad);
  }
  EXPECT_NE(Refused("oci://h").find("repository is missing"), std::string::npos);
}

TEST(ReferenceParse, SchemeAndEscaping) {
  EXPECT_NE(Refused("docker://h/r").find("oci://"), std::string::npos);
  EXPECT_NE(Refused("h/r").find("oci://"), std::string::npos);
  // A hostile reference is quoted terminal-safe.
  const std::string m = Refused("oci://h/r:\x1b[2J");
  EXPECT_EQ(m.find('\x1b'), std::string::npos);
  EXPECT_NE(m.find("\\x1b"), std::string::npos);
  EXPECT_TRUE(IsOciReference("oci://x"));
  EXPECT_FALSE(IsOciReference("x.dlsys"));
}

TEST(ReferenceLoopback, OnlyLoopbackHosts) {
  EXPECT_TRUE(Parsed("oci://127.0.0.1:5000/r").IsLoopback());
  EXPECT_TRUE(Parsed("oci://127.8.9.10/r").IsLoopback());
  EXPECT_TRUE(Parsed("oci://localhost/r").IsLoopback());
  EXPECT_TRUE(Parsed("oci://[::1]:5000/r").IsLoopback());
  EXPECT_FALSE(Parsed("oci://128.0.0.1/r").IsLoopback());
  EXPECT_FALSE(Parsed("oci://127.example.com/r").IsLoopback());
  EXPECT_FALSE(Parsed("oci://localhost.evil.com/r").IsLoopback());
  EXPECT_FALSE(Parsed("oci://[2001:db8::1]/r").IsLoopback());
}

}  // namespace
}  // namespace dlsys::oci
