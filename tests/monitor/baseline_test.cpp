// BaselineFromArchive over archives built by hand (signed, with examples), as
// tests/package/verify_test.cpp builds them: no runtime module needed.
#include "monitor/baseline.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "archive/archive.h"
#include "core/encoding.h"
#include "manifest/manifest.h"
#include "signing/digest.h"
#include "signing/keys.h"
#include "test_archive.h"
#include "test_tmp.h"

namespace dlsys::monitor {
namespace {

using dlsys::testing::TempDir;

using Entry = dlsys::testing::Payload;

std::string Floats(const std::vector<float>& v) {
  std::string s(v.size() * sizeof(float), '\0');
  std::memcpy(s.data(), v.data(), s.size());
  return s;
}

// Inputs x: float32 [3, 4] (rows 1..4, 5..8, 9..12); golden outputs y: float32 [3, 2] whose
// argmax is 1, 0, 1; and a second example with x of one row.
std::vector<Entry> Payloads() {
  return {{"examples/a/inputs/x.bin", Floats({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12})},
          {"examples/a/outputs/y.bin", Floats({0.1f, 0.9f, 0.8f, 0.2f, 0.3f, 0.7f})},
          {"examples/b/inputs/x.bin", Floats({13, 14, 15, 16})},
          {"examples/b/outputs/y.bin", Floats({0.6f, 0.4f})},
          {"model.pt", std::string(100, 'm')}};
}

manifest::Manifest MakeManifest(const std::vector<Entry>& payloads) {
  manifest::Manifest m = dlsys::testing::SmallMlpManifest("mlp", "1.0.0", payloads);
  m.examples = {{"a",
                 {{{"x", "float32", {3, 4}}, "examples/a/inputs/x.bin"}},
                 {{{"y", "float32", {3, 2}}, "examples/a/outputs/y.bin"}},
                 1e-5,
                 1e-6},
                {"b",
                 {{{"x", "float32", {1, 4}}, "examples/b/inputs/x.bin"}},
                 {{{"y", "float32", {1, 2}}, "examples/b/outputs/y.bin"}},
                 1e-5,
                 1e-6}};
  return m;
}

// Writes a signed archive of `payloads` described by `m`.
void WriteArchive(const std::string& out, const manifest::Manifest& m,
                  const std::vector<Entry>& payloads) {
  ASSERT_EQ(dlsys::testing::WriteSignedArchive(out, m, payloads), "") << out;
}

package::VerifyOptions Trusting() {
  package::VerifyOptions o;
  o.trust.Add(dlsys::testing::TestKey().Public());
  return o;
}

TEST(BaselineFromArchiveTest, RowsOfTheExamplesAreRequests) {
  TempDir dir;
  const std::string path = dir / "mlp.dlsys";
  WriteArchive(path, MakeManifest(Payloads()), Payloads());
  auto b = BaselineFromArchive(path, Trusting());
  ASSERT_TRUE(b) << b.error().message;
  std::vector<std::string> names;
  for (const auto& f : b->features()) names.push_back(f.name);
  EXPECT_EQ(names, (std::vector<std::string>{"input.x", "prediction.y", "prediction.y.argmax"}));

  const auto& x = b->features()[0];
  EXPECT_EQ(x.kind, FeatureKind::kNumeric);
  EXPECT_EQ(x.values, 16u);  // 4 rows of 4
  EXPECT_EQ(x.edges.front(), std::nextafter(1.0, -INFINITY));
  EXPECT_EQ(x.edges.back(), 16.0);
  const auto& y = b->features()[1];
  EXPECT_EQ(y.values, 8u);
  const auto& argmax = b->features()[2];
  EXPECT_EQ(argmax.kind, FeatureKind::kCategorical);
  EXPECT_EQ(argmax.values, 4u);
  // Rows: 1, 0, 1 and 0: two of each, ties by name.
  EXPECT_EQ(argmax.categories, (std::vector<std::string>{"0", "1", "(other)"}));
  EXPECT_EQ(argmax.counts, (std::vector<std::uint64_t>{2, 2, 0}));

  // The same values, logged by serve, do not drift from it (too few to judge, here).
  DriftCounts c(*b);
  const double row[] = {1, 2, 3, 4};
  AddTensorFeatures(c, "input.x", row, 4, false);
  EXPECT_EQ(c.features()[0].values, 4u);
}

TEST(BaselineFromArchiveTest, UntrustedSignatureFailsNamingTheCheck) {
  TempDir dir;
  const std::string path = dir / "mlp.dlsys";
  WriteArchive(path, MakeManifest(Payloads()), Payloads());
  package::VerifyOptions other;
  other.trust.Add(signing::PrivateKey::Generate()->Public());
  auto b = BaselineFromArchive(path, other);
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().code, Code::kVerifyFailed);
  EXPECT_NE(b.error().message.find("does not verify"), std::string::npos) << b.error().message;
  ASSERT_FALSE(b.error().details.empty());
  EXPECT_EQ(b.error().details[0].rfind("signature: ", 0), 0u) << b.error().details[0];
}

TEST(BaselineFromArchiveTest, TamperedExampleFailsItsDigest) {
  TempDir dir;
  const std::string path = dir / "mlp.dlsys";
  auto payloads = Payloads();
  const auto m = MakeManifest(payloads);
  payloads[0].data[0] ^= 1;  // after the digests were taken
  WriteArchive(path, m, payloads);
  auto b = BaselineFromArchive(path, Trusting());
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().code, Code::kVerifyFailed);
  bool names_file = false;
  for (const auto& d : b.error().details) names_file |= d.find("x.bin") != std::string::npos;
  EXPECT_TRUE(names_file) << b.error().message;
}

TEST(BaselineFromArchiveTest, NeedsATrustedKeyOrAllowUnsigned) {
  auto b = BaselineFromArchive("/nonexistent.dlsys", package::VerifyOptions{});
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().code, Code::kUsage);
  package::VerifyOptions allow;
  allow.allow_unsigned = true;
  b = BaselineFromArchive("/nonexistent/mlp.dlsys", allow);
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().code, Code::kNotFound);
}

TEST(BaselineFromArchiveTest, AnArchiveWithoutExamplesIsRefused) {
  TempDir dir;
  const std::string path = dir / "mlp.dlsys";
  std::vector<Entry> model_only = {{"model.pt", std::string(100, 'm')}};
  auto m = MakeManifest(model_only);
  m.examples.clear();
  WriteArchive(path, m, model_only);
  auto b = BaselineFromArchive(path, Trusting());
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().code, Code::kInvalid);
  EXPECT_NE(b.error().message.find("no examples"), std::string::npos) << b.error().message;
}

}  // namespace
}  // namespace dlsys::monitor
