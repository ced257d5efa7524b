#include "core/file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "test_tmp.h"

namespace dlsys::core {
namespace {

using dlsys::testing::RandomBytes;
using dlsys::testing::Slurp;
using dlsys::testing::Spit;

namespace fs = std::filesystem;
using dlsys::testing::TempDir;

std::set<std::string> ListDir(const fs::path& dir) {
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.insert(e.path().filename().string());
  return names;
}

unsigned ModeOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

// Sets the umask for the scope of a test and restores it afterwards.
class ScopedUmask {
 public:
  explicit ScopedUmask(mode_t mask) : old_(::umask(mask)) {}
  ~ScopedUmask() { ::umask(old_); }

 private:
  mode_t old_;
};

// --- FileContent ---------------------------------------------------------------------------

TEST(FileContentTest, ReadsWholeContent) {
  TempDir dir;
  std::string data = "hello\0world", big(200000, 'x');
  data.push_back('\0');
  data += big;
  Spit(dir / "f", data);
  auto m = FileContent::Read(dir / "f");
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->size(), data.size());
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(m->bytes().data()), m->bytes().size()), data);
  EXPECT_EQ(m->path(), dir / "f");
}

TEST(FileContentTest, EmptyFileIsEmpty) {
  TempDir dir;
  Spit(dir / "empty", "");
  auto m = FileContent::Read(dir / "empty");
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->size(), 0u);
  EXPECT_TRUE(m->bytes().empty());
}

TEST(FileContentTest, IsASnapshot) {
  TempDir dir;
  Spit(dir / "f", "abc");
  auto m = FileContent::Read(dir / "f");
  ASSERT_TRUE(m);
  Spit(dir / "f", "");  // truncated after reading: the content stays
  EXPECT_EQ(static_cast<char>(m->bytes()[2]), 'c');
}

TEST(FileContentTest, LimitAndMissing) {
  TempDir dir;
  Spit(dir / "f", std::string(11, 'q'));
  auto big = FileContent::Read(dir / "f", 10);
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().code, Code::kInvalid);
  auto m = FileContent::Read(dir / "nope");
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code, Code::kNotFound);
  EXPECT_NE(m.error().message.find(dir / "nope"), std::string::npos) << m.error().message;
}

TEST(FileContentTest, DirectoryIsInvalid) {
  TempDir dir;
  auto m = FileContent::Read(dir.path().string());
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code, Code::kInvalid);
  EXPECT_NE(m.error().message.find("a directory"), std::string::npos) << m.error().message;
}

// A FIFO given as an input is refused at once: opening it must not wait for a writer.
TEST(OpenRegularFileTest, FifoAndDeviceAreRefusedWithoutBlocking) {
  TempDir dir;
  const std::string fifo = dir / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  for (const std::string& path : {fifo, std::string("/dev/zero"), std::string("/dev/null")}) {
    auto fd = OpenRegularFile(path);
    ASSERT_FALSE(fd) << path;
    EXPECT_EQ(fd.error().code, Code::kInvalid) << path;
    EXPECT_NE(fd.error().message.find("not a regular file"), std::string::npos)
        << fd.error().message;
  }
  auto text = ReadFile(fifo);
  ASSERT_FALSE(text);
  EXPECT_NE(text.error().message.find("a FIFO"), std::string::npos) << text.error().message;
  EXPECT_FALSE(FileContent::Read(fifo));
}

TEST(ReadAtTest, TruncatedFileIsAnErrorNamingTheOffset) {
  TempDir dir;
  Spit(dir / "f", "0123456789");
  auto fd = OpenRegularFile(dir / "f");
  ASSERT_TRUE(fd);
  std::string buf(8, '\0');
  auto ok = ReadAt(fd->get(), 4, std::as_writable_bytes(std::span(buf.data(), buf.size())), "f");
  ASSERT_FALSE(ok);
  EXPECT_NE(ok.error().message.find("truncated"), std::string::npos) << ok.error().message;
  ASSERT_TRUE(ReadAt(fd->get(), 2, std::as_writable_bytes(std::span(buf.data(), buf.size())), "f"));
  EXPECT_EQ(buf, "23456789");
}

// --- ReadFile ------------------------------------------------------------------------------

TEST(ReadFileTest, ReadsWholeFileUpToTheLimit) {
  TempDir dir;
  std::string data(100000, 'q');
  Spit(dir / "f", data);
  auto r = ReadFile(dir / "f", data.size());
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, data);
}

TEST(ReadFileTest, RefusesFileOverTheLimit) {
  TempDir dir;
  Spit(dir / "f", std::string(101, 'q'));
  auto r = ReadFile(dir / "f", 100);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kInvalid);
  EXPECT_NE(r.error().message.find("limit of 100 bytes"), std::string::npos) << r.error().message;
}

TEST(ReadFileTest, MissingIsNotFoundAndDirectoryIsInvalid) {
  TempDir dir;
  auto missing = ReadFile(dir / "nope");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Code::kNotFound);
  auto d = ReadFile(dir.path().string());
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error().code, Code::kInvalid);
}

// --- AtomicFile ----------------------------------------------------------------------------

TEST(AtomicFileTest, NothingVisibleBeforeCommitContentAfter) {
  TempDir dir;
  const std::string target = dir / "out.bin";
  {
    auto f = AtomicFile::Create(target, /*overwrite=*/false);
    ASSERT_TRUE(f) << f.error().message;
    ASSERT_TRUE(f->Write(std::string_view("part one, ")));
    EXPECT_FALSE(fs::exists(target));
    ASSERT_TRUE(f->Write(std::string_view("part two")));
    EXPECT_FALSE(fs::exists(target));
    auto c = f->Commit();
    ASSERT_TRUE(c) << c.error().message;
  }
  EXPECT_EQ(Slurp(target), "part one, part two");
  EXPECT_EQ(ListDir(dir.path()), std::set<std::string>{"out.bin"});
}

TEST(AtomicFileTest, CreateRefusesExistingTargetWithoutOverwrite) {
  TempDir dir;
  const std::string target = dir / "out";
  Spit(target, "old");
  auto f = AtomicFile::Create(target, /*overwrite=*/false);
  ASSERT_FALSE(f);
  EXPECT_EQ(f.error().code, Code::kExists);
  EXPECT_EQ(Slurp(target), "old");
}

TEST(AtomicFileTest, CommitRefusesTargetCreatedAfterCreate) {
  TempDir dir;
  const std::string target = dir / "out";
  {
    auto f = AtomicFile::Create(target, /*overwrite=*/false);
    ASSERT_TRUE(f) << f.error().message;
    ASSERT_TRUE(f->Write(std::string_view("new")));
    Spit(target, "raced");
    auto c = f->Commit();
    ASSERT_FALSE(c);
    EXPECT_EQ(c.error().code, Code::kExists);
  }
  EXPECT_EQ(Slurp(target), "raced");
  EXPECT_EQ(ListDir(dir.path()), std::set<std::string>{"out"});
}

TEST(AtomicFileTest, OverwriteReplacesExistingTarget) {
  TempDir dir;
  const std::string target = dir / "out";
  Spit(target, "old content that is longer");
  {
    auto f = AtomicFile::Create(target, /*overwrite=*/true);
    ASSERT_TRUE(f) << f.error().message;
    ASSERT_TRUE(f->Write(std::string_view("new")));
    EXPECT_EQ(Slurp(target), "old content that is longer");
    auto c = f->Commit();
    ASSERT_TRUE(c) << c.error().message;
  }
  EXPECT_EQ(Slurp(target), "new");
  EXPECT_EQ(ListDir(dir.path()), std::set<std::string>{"out"});
}

TEST(AtomicFileTest, DestructorWithoutCommitLeavesNothing) {
  TempDir dir;
  const std::string target = dir / "out";
  {
    auto f = AtomicFile::Create(target, /*overwrite=*/false);
    ASSERT_TRUE(f) << f.error().message;
    ASSERT_TRUE(f->Write(std::string_view("abandoned")));
  }
  EXPECT_FALSE(fs::exists(target));
  EXPECT_TRUE(ListDir(dir.path()).empty());
}

TEST(AtomicFileTest, DestructorWithoutCommitKeepsExistingTargetWhenOverwriting) {
  TempDir dir;
  const std::string target = dir / "out";
  Spit(target, "old");
  {
    auto f = AtomicFile::Create(target, /*overwrite=*/true);
    ASSERT_TRUE(f) << f.error().message;
    ASSERT_TRUE(f->Write(std::string_view("abandoned")));
  }
  EXPECT_EQ(Slurp(target), "old");
  EXPECT_EQ(ListDir(dir.path()), std::set<std::string>{"out"});
}

TEST(AtomicFileTest, ModeIsExactRegardlessOfUmask) {
  TempDir dir;
  ScopedUmask mask(077);  // would strip 0644 to 0600 if the mode were filtered
  ASSERT_TRUE(WriteFileAtomic(dir / "public", "p", false, 0644));
  ASSERT_TRUE(WriteFileAtomic(dir / "private", "s", false, 0600));
  EXPECT_EQ(ModeOf(dir / "public"), 0644u);
  EXPECT_EQ(ModeOf(dir / "private"), 0600u);

  ScopedUmask open_mask(0);  // would leave 0666-style temp modes untouched
  ASSERT_TRUE(WriteFileAtomic(dir / "private2", "s", false, 0600));
  EXPECT_EQ(ModeOf(dir / "private2"), 0600u);
  ASSERT_TRUE(WriteFileAtomic(dir / "public", "p2", true, 0644));
  EXPECT_EQ(ModeOf(dir / "public"), 0644u);
}

TEST(AtomicFileTest, MovedFileStillCommits) {
  TempDir dir;
  auto f = AtomicFile::Create(dir / "out", false);
  ASSERT_TRUE(f);
  AtomicFile moved(std::move(*f));
  ASSERT_TRUE(moved.Write(std::string_view("x")));
  ASSERT_TRUE(moved.Commit());
  EXPECT_EQ(Slurp(dir / "out"), "x");
}

TEST(AtomicFileTest, CreateInMissingDirectoryFails) {
  TempDir dir;
  auto f = AtomicFile::Create(dir / "no/such/dir/out", false);
  ASSERT_FALSE(f);
  EXPECT_EQ(f.error().code, Code::kNotFound);
}

TEST(WriteFileAtomicTest, WritesAndRespectsOverwrite) {
  TempDir dir;
  const std::string target = dir / "w";
  ASSERT_TRUE(WriteFileAtomic(target, "first", false));
  EXPECT_EQ(Slurp(target), "first");
  auto again = WriteFileAtomic(target, "second", false);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, Code::kExists);
  EXPECT_EQ(Slurp(target), "first");
  ASSERT_TRUE(WriteFileAtomic(target, "second", true));
  EXPECT_EQ(Slurp(target), "second");
  EXPECT_EQ(ListDir(dir.path()), std::set<std::string>{"w"});
}

// Outputs are only ever regular files: with --force an existing FIFO, directory or symbolic
// link is not replaced.
TEST(AtomicFileTest, NeverReplacesANonRegularFile) {
  TempDir dir;
  const std::string fifo = dir / "fifo", sub = dir / "sub", link = dir / "link";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  fs::create_directory(sub);
  Spit(dir / "real", "x");
  fs::create_symlink(dir / "real", link);
  for (const std::string& path : {fifo, sub, link}) {
    auto f = AtomicFile::Create(path, /*overwrite=*/true);
    ASSERT_FALSE(f) << path;
    EXPECT_EQ(f.error().code, Code::kInvalid) << path;
    EXPECT_NE(f.error().message.find("only as regular files"), std::string::npos)
        << f.error().message;
    auto w = WriteFileAtomic(path, "data", /*overwrite=*/false);
    ASSERT_FALSE(w);
    EXPECT_EQ(w.error().code, Code::kExists);
  }
  EXPECT_TRUE(fs::is_fifo(fifo));
  EXPECT_TRUE(fs::is_directory(sub));
  EXPECT_TRUE(fs::is_symlink(link));
  EXPECT_EQ(Slurp(dir / "real"), "x");
}

// The target turning into a FIFO between Create and Commit is caught at Commit.
TEST(AtomicFileTest, CommitRechecksTheTarget) {
  TempDir dir;
  const std::string target = dir / "out";
  auto f = AtomicFile::Create(target, /*overwrite=*/true);
  ASSERT_TRUE(f);
  ASSERT_TRUE(f->Write(std::string_view("data")));
  ASSERT_EQ(::mkfifo(target.c_str(), 0600), 0);
  auto c = f->Commit();
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code, Code::kInvalid);
  EXPECT_TRUE(fs::is_fifo(target));
}

}  // namespace
}  // namespace dlsys::core
