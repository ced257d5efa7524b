// The artifact layout: BuildManifest's canonical output and ParseManifest's strictness.
#include <gtest/gtest.h>

#include <string>

#include "oci/oci.h"

namespace dlsys::oci {
namespace {

const std::string kManifest =
    R"({"created":"2023-11-14T22:13:20Z","lineage":{"git_commit":"4f2c9e1"},"name":"iris",)"
    R"("version":"1.0.0"})";
const std::string kLayer = "sha256:" + std::string(64, 'b');

std::string Built(const std::optional<std::string>& signature = std::nullopt,
                  std::string_view compression = "none", const std::string& manifest = kManifest) {
  auto r = BuildManifest(manifest, signature, kLayer, 12345, compression);
  EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().message);
  return r ? *r : "";
}

std::string Replace(std::string s, const std::string& from, const std::string& to) {
  const auto at = s.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) s.replace(at, from.size(), to);
  return s;
}

std::string RefusedWith(const std::string& json) {
  auto r = ParseManifest(json);
  EXPECT_FALSE(r.has_value()) << json;
  if (r) return "";
  EXPECT_EQ(r.error().code, Code::kInvalid);
  return r.error().message;
}

TEST(LayoutBuild, CanonicalDocumentedForm) {
  // The config digest is `printf %s "$kManifest" | sha256sum`; the form docs/oci.md shows.
  EXPECT_EQ(Built(),
            R"({"annotations":{"org.opencontainers.image.created":"2023-11-14T22:13:20Z",)"
            R"("org.opencontainers.image.revision":"4f2c9e1",)"
            R"("org.opencontainers.image.title":"iris-1.0.0.dlsys",)"
            R"("org.opencontainers.image.version":"1.0.0"},)"
            R"("artifactType":"application/vnd.dlsys.model.v1",)"
            R"("config":{"digest":"sha256:)"
            R"(f4949d41b3dec556bab34cf58f2be2a4f739e2adaf63a395185229a3c9629772",)"
            R"("mediaType":"application/vnd.dlsys.model.config.v1+json","size":101},)"
            R"("layers":[{"annotations":{"org.opencontainers.image.title":"iris-1.0.0.dlsys"},)"
            R"("digest":")" +
                kLayer +
                R"(","mediaType":"application/vnd.dlsys.model.archive.v1.tar",)"
                R"("size":12345}],)"
                R"("mediaType":"application/vnd.oci.image.manifest.v1+json","schemaVersion":2})");
}

TEST(LayoutBuild, SameArchiveSameBytes) {
  EXPECT_EQ(Built("{\"sig\":1}"), Built("{\"sig\":1}"));
  EXPECT_NE(Built("{\"sig\":1}"), Built());
}

TEST(LayoutBuild, CompressionNamesTheLayerMediaType) {
  for (const char* c : {"none", "gzip", "zstd"}) {
    auto m = ParseManifest(Built(std::nullopt, c));
    ASSERT_TRUE(m.has_value()) << m.error().message;
    EXPECT_EQ(*LayerCompression(m->layer), c);
    EXPECT_EQ(m->layer.media_type, std::string(kLayerMediaType) +
                                       (std::string(c) == "none" ? "" : "+" + std::string(c)));
  }
  auto bad = BuildManifest(kManifest, std::nullopt, kLayer, 1, "bzip2");
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code, Code::kInvalid);
  EXPECT_FALSE(BuildManifest(kManifest, std::nullopt, "sha256:xyz", 1, "none").has_value());
}

TEST(LayoutBuild, AnnotationsFromTheManifest) {
  auto plain = ParseManifest(Built());
  ASSERT_TRUE(plain.has_value()) << plain.error().message;
  EXPECT_EQ(plain->annotations.at("org.opencontainers.image.title"), "iris-1.0.0.dlsys");
  EXPECT_EQ(plain->annotations.at("org.opencontainers.image.version"), "1.0.0");
  EXPECT_EQ(plain->annotations.at("org.opencontainers.image.created"), "2023-11-14T22:13:20Z");
  EXPECT_EQ(plain->annotations.at("org.opencontainers.image.revision"), "4f2c9e1");
  EXPECT_EQ(plain->annotations.count("org.opencontainers.image.source"), 0u);
  EXPECT_EQ(plain->annotations.count(std::string(kSignatureAnnotation)), 0u);
  EXPECT_EQ(plain->config.media_type, kConfigMediaType);
  EXPECT_EQ(plain->config.size, kManifest.size());
  EXPECT_EQ(plain->layer.digest, kLayer);
  EXPECT_EQ(plain->layer.size, 12345u);

  const std::string lineage =
      R"({"created":"2023-11-14T22:13:20Z","lineage":{"git_commit":"x","revision":"r1",)"
      R"("source":"https://git.example.com/iris"},"name":"iris","version":"1.0.0"})";
  auto full = ParseManifest(Built("{\"env\":true}", "none", lineage));
  ASSERT_TRUE(full.has_value()) << full.error().message;
  EXPECT_EQ(full->annotations.at("org.opencontainers.image.source"),
            "https://git.example.com/iris");
  EXPECT_EQ(full->annotations.at("org.opencontainers.image.revision"), "r1");
  EXPECT_EQ(full->annotations.at(std::string(kSignatureAnnotation)), "{\"env\":true}");
}

TEST(LayoutBuild, RefusesAManifestWithoutIdentity) {
  EXPECT_FALSE(BuildManifest(R"({"name":"x"})", std::nullopt, kLayer, 1, "none").has_value());
  EXPECT_FALSE(BuildManifest("not json", std::nullopt, kLayer, 1, "none").has_value());
}

TEST(LayoutBuild, TooLargeForAPullIsRefusedAtBuild) {
  auto r = BuildManifest(kManifest, std::string(kMaxOciManifestBytes, 'x'), kLayer, 1, "none");
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("more than the " + std::to_string(kMaxOciManifestBytes)), std::string::npos) << r.error().message;
}

TEST(LayoutParse, RefusesAnythingButTheCanonicalForm) {
  const std::string good = Built();
  ASSERT_TRUE(ParseManifest(good).has_value());
  EXPECT_NE(RefusedWith(" " + good).find("canonical"), std::string::npos);
  EXPECT_NE(
      RefusedWith(Replace(good, "\"schemaVersion\":2", "\"schemaVersion\":2.0")).find("canonical"),
      std::string::npos);
  EXPECT_NE(RefusedWith(Replace(good, "\"schemaVersion\":2", "\"schemaVersion\":1"))
                .find("schemaVersion"),
            std::string::npos);
  EXPECT_NE(RefusedWith(Replace(good, "application/vnd.dlsys.model.v1", "application/x"))
                .find("artifactType"),
            std::string::npos);
  EXPECT_NE(RefusedWith(Replace(good, "\"schemaVersion\":2", "\"schemaVersion\":2,\"subject\":1"))
                .find("subject"),
            std::string::npos);
  EXPECT_NE(RefusedWith(Replace(good, "{\"org.opencontainers.image.created\"",
                                "{\"com.example\":\"x\",\"org.opencontainers.image.created\""))
                .find("com.example"),
            std::string::npos);
  EXPECT_NE(RefusedWith(Replace(good, "\"size\":12345", "\"size\":-1")).find("layers[0].size"),
            std::string::npos);
  EXPECT_NE(
      RefusedWith(Replace(good, kLayer, "sha256:" + std::string(64, 'B'))).find("layers[0].digest"),
      std::string::npos);
  EXPECT_NE(RefusedWith(Replace(good, "archive.v1.tar", "archive.v1.tar+lz4"))
                .find("layers[0].mediaType"),
            std::string::npos);
  EXPECT_NE(RefusedWith(Replace(good, "image.title\":\"iris-1.0.0.dlsys\"},\"digest",
                                "image.title\":\"other.dlsys\"},\"digest"))
                .find("title"),
            std::string::npos);
}

TEST(LayoutParse, ExactlyOneLayer) {
  const std::string good = Built();
  const auto start = good.find("\"layers\":[") + 10;
  const auto end = good.find("}]", start) + 1;
  const std::string layer = good.substr(start, end - start);
  EXPECT_NE(RefusedWith(good.substr(0, start) + layer + "," + layer + good.substr(end))
                .find("exactly one layer"),
            std::string::npos);
  EXPECT_NE(RefusedWith(good.substr(0, start) + good.substr(end)).find("exactly one layer"),
            std::string::npos);
}

TEST(LayoutParse, BoundedSize) {
  EXPECT_NE(RefusedWith(std::string(kMaxOciManifestBytes + 1, ' ')).find("more than"),
            std::string::npos);
}

}  // namespace
}  // namespace dlsys::oci
