// deploy::Export's escapers and WriteExport (the whole export is tested against the real binary
// in tests/cli/test_deploy_export.py, which validates it against the Kubernetes schemas).
#include "deploy/export.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "signing/digest.h"
#include "test_tmp.h"

namespace dlsys::deploy {
namespace {

using testing::Slurp;
using testing::TempDir;

TEST(ExportYamlQuote, EscapesEverythingThatCouldEndTheScalar) {
  EXPECT_EQ(YamlQuote("plain"), "\"plain\"");
  EXPECT_EQ(YamlQuote("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(YamlQuote("x\ny: 1\n---\n- z"), "\"x\\ny: 1\\n---\\n- z\"");
  EXPECT_EQ(YamlQuote(std::string("\x00\x1b\x7f", 3)), "\"\\x00\\x1B\\x7F\"");
  // NEL and the Unicode line separators are line breaks to YAML 1.1 readers.
  EXPECT_EQ(YamlQuote("\xc2\x85\xe2\x80\xa8\xe2\x80\xa9"), "\"\\x85\\u2028\\u2029\"");
  // Above U+FFFF: one \U escape (YAML has no surrogate pairs); a stray byte: U+FFFD.
  EXPECT_EQ(YamlQuote("\xf0\x9f\x98\x80"), "\"\\U0001F600\"");
  EXPECT_EQ(YamlQuote("\xff"), "\"\\uFFFD\"");
}

TEST(ExportShellQuote, SingleQuotesSurviveEverything) {
  EXPECT_EQ(ShellQuote("/models/a-1.0.0.dlsys"), "'/models/a-1.0.0.dlsys'");
  EXPECT_EQ(ShellQuote("it's $(x)"), "'it'\\''s $(x)'");
}

TEST(ExportFormat, ParsesTheThreeNames) {
  EXPECT_EQ(*ParseExportFormat("kserve"), ExportFormat::kKServe);
  EXPECT_EQ(*ParseExportFormat("k8s"), ExportFormat::kK8s);
  EXPECT_EQ(*ParseExportFormat("dockerfile"), ExportFormat::kDockerfile);
  auto bad = ParseExportFormat("helm");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, Code::kUsage);
}

std::size_t Entries(const std::filesystem::path& dir) {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir)) ++n;
  return n;
}

TEST(WriteExport, CreatesTheDirectoryWithEveryFileAndMode) {
  TempDir tmp;
  const std::string out = tmp / "out";
  auto r = WriteExport({ExportFile::Text("a.yaml", "a: 1\n"), ExportFile::Text("run.sh", "#!/bin/sh\n", 0755)}, out,
                       false);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, (std::vector<std::string>{out + "/a.yaml", out + "/run.sh"}));
  EXPECT_EQ(Slurp(out + "/a.yaml"), "a: 1\n");
  struct stat st {};
  ASSERT_EQ(::stat((out + "/run.sh").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0755u);
  ASSERT_EQ(::stat(out.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0755u);
  EXPECT_EQ(Entries(tmp.path()), 1u);  // no temporary directory left next to it
}

TEST(WriteExport, RefusesANonEmptyDirectoryWithoutForceAndReplacesItWithForce) {
  TempDir tmp;
  const std::string out = tmp / "out";
  ASSERT_TRUE(WriteExport({ExportFile::Text("old.yaml", "old")}, out, false));
  auto again = WriteExport({ExportFile::Text("new.yaml", "new")}, out, false);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, Code::kExists);
  EXPECT_EQ(Slurp(out + "/old.yaml"), "old");

  ASSERT_TRUE(WriteExport({ExportFile::Text("new.yaml", "new")}, out + "/", true));
  EXPECT_EQ(Slurp(out + "/new.yaml"), "new");
  EXPECT_FALSE(std::filesystem::exists(out + "/old.yaml"));  // replaced as a whole
  EXPECT_EQ(Entries(tmp.path()), 1u);
}

TEST(WriteExport, AnEmptyDirectoryIsFilled) {
  TempDir tmp;
  const std::string out = tmp / "out";
  std::filesystem::create_directory(out);
  ASSERT_TRUE(WriteExport({ExportFile::Text("a", "x")}, out, false));
  EXPECT_EQ(Slurp(out + "/a"), "x");
}

TEST(WriteExport, NeverFollowsASymlinkNorReplacesADirectoryWithSubdirectories) {
  TempDir tmp;
  std::filesystem::create_directories(tmp / "home/.ssh");
  std::filesystem::create_directory_symlink(tmp / "home", tmp / "link");
  auto link = WriteExport({ExportFile::Text("a", "x")}, tmp / "link", true);
  ASSERT_FALSE(link);
  EXPECT_EQ(link.error().code, Code::kInvalid);
  auto home = WriteExport({ExportFile::Text("a", "x")}, tmp / "home", true);
  ASSERT_FALSE(home);
  EXPECT_EQ(home.error().code, Code::kUsage);
  EXPECT_TRUE(std::filesystem::exists(tmp / "home/.ssh"));
  EXPECT_FALSE(std::filesystem::exists(tmp / "home/a"));
}

TEST(WriteExport, CopiesABlobCheckingItsDigestAndLeavesNothingOnAMismatch) {
  TempDir tmp;
  const std::string blob = tmp / "blob";
  const std::string content = "archive bytes";
  { std::ofstream(blob, std::ios::binary) << content; }
  ExportFile f;
  f.name = "m-1.0.0.dlsys";
  f.source = blob;
  f.size = content.size();
  f.source_digest =
      "sha256:" + signing::Sha256Hex(std::as_bytes(std::span(content.data(), content.size())));
  ASSERT_TRUE(WriteExport({f}, tmp / "ok", false));
  EXPECT_EQ(Slurp(tmp / "ok/m-1.0.0.dlsys"), content);

  f.source_digest = "sha256:" + std::string(64, '0');
  auto bad = WriteExport({ExportFile::Text("Dockerfile", "FROM x\n"), f}, tmp / "bad", false);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, Code::kInvalid);
  EXPECT_NE(bad.error().message.find("registry is corrupt"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(tmp / "bad"));
  EXPECT_EQ(Entries(tmp.path()), 2u);  // blob and ok/: no temporary directory left

  std::filesystem::create_symlink(blob, tmp / "blob-link");
  f.source = tmp / "blob-link";
  auto link = WriteExport({f}, tmp / "link", false);
  ASSERT_FALSE(link);
  EXPECT_EQ(link.error().code, Code::kInvalid);
}

TEST(WriteExport, RefusesNamesThatAreNotOneComponent) {
  TempDir tmp;
  for (const char* name : {"", ".", "..", "a/b"}) {
    auto r = WriteExport({ExportFile::Text(name, "x")}, tmp / "out", false);
    ASSERT_FALSE(r) << name;
    EXPECT_FALSE(std::filesystem::exists(tmp / "out"));
  }
  auto dup = WriteExport({ExportFile::Text("a", "1"), ExportFile::Text("a", "2")}, tmp / "out", false);
  EXPECT_FALSE(dup);
}

}  // namespace
}  // namespace dlsys::deploy
