#include "archive/archive.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "test_tmp.h"

namespace dlsys::archive {
namespace {

using dlsys::testing::RandomBytes;
using dlsys::testing::Slurp;
using dlsys::testing::Spit;

using dlsys::testing::TempDir;

#define EXPECT_HAS(haystack, needle)                               \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) \
      << "'" << (haystack) << "' lacks '" << (needle) << "'"

constexpr std::int64_t kMtime = 1700000000;

std::span<const std::byte> Bytes(const std::string& s) {
  return std::as_bytes(std::span(s.data(), s.size()));
}

struct File {
  std::string path;
  std::string data;
  unsigned mode = 0644;
};

// Writes `files` with the Writer under test; the test fails on any error.
void WriteArchive(const std::string& out, Compression c, const std::vector<File>& files) {
  const int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ASSERT_GE(fd, 0);
  auto w = Writer::Open(fd, c, kMtime);
  ASSERT_TRUE(w) << w.error().message;
  for (const auto& f : files) {
    auto r = w->Add(f.path, Bytes(f.data), f.mode);
    ASSERT_TRUE(r) << r.error().message;
  }
  auto r = w->Close();
  ASSERT_TRUE(r) << r.error().message;
  ::close(fd);
}

struct ReadBack {
  std::vector<Entry> entries;
  std::vector<std::string> data;
};

// Reads every entry in full; returns the first error.
Result<ReadBack> ReadArchive(const std::string& path, Limits limits = {}) {
  DLSYS_ASSIGN_OR_RETURN(Reader r, Reader::Open(path, limits));
  ReadBack out;
  for (;;) {
    DLSYS_ASSIGN_OR_RETURN(std::optional<Entry> e, r.Next());
    if (!e) break;
    DLSYS_ASSIGN_OR_RETURN(std::string d, r.ReadAll(1u << 30));
    out.entries.push_back(*e);
    out.data.push_back(std::move(d));
  }
  return out;
}

// Runs every entry through Next() without reading data; returns the first error.
Result<std::size_t> SkipAll(const std::string& path, Limits limits = {}) {
  DLSYS_ASSIGN_OR_RETURN(Reader r, Reader::Open(path, limits));
  std::size_t n = 0;
  for (;;) {
    DLSYS_ASSIGN_OR_RETURN(std::optional<Entry> e, r.Next());
    if (!e) return n;
    ++n;
  }
}

template <typename T>
void ExpectInvalid(const Result<T>& r, const std::string& phrase) {
  ASSERT_FALSE(r) << "expected an error containing: " << phrase;
  EXPECT_EQ(r.error().code, Code::kInvalid) << r.error().message;
  EXPECT_HAS(r.error().message, phrase);
}

std::vector<File> SampleFiles() {
  return {
      {"manifest.json", "{\"name\":\"mlp\"}\n", 0644},
      {"empty.txt", "", 0644},
      {"model/weights.bin", RandomBytes(3u << 20, 1), 0600},
      {std::string("model/") + std::string(120, 'n') + ".pt", RandomBytes(1000, 2), 0755},
      {"run.sh", "#!/bin/sh\n", 0755},
  };
}

// ----------------------------------------------------------------------------- paths

TEST(CheckEntryPathTest, AcceptsRelativeNormalisedPaths) {
  for (const char* p : {"a", "model.pt", "a/b/c.bin", ".hidden", "a/.b", "..a", "a..", "a/b..c",
                        "dir/file name with spaces", "a-b_c+d@e=f,g~h"}) {
    EXPECT_TRUE(CheckEntryPath(p)) << p;
  }
  EXPECT_TRUE(CheckEntryPath(std::string(1024, 'x')));
}

TEST(CheckEntryPathTest, RejectsUnsafePaths) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "is empty"},
      {"/etc/passwd", "'/etc/passwd' is absolute"},
      {"/", "is absolute"},
      {"a/../b", "'a/../b' contains '..'"},
      {"..", "contains '..'"},
      {"../x", "contains '..'"},
      {"a/..", "contains '..'"},
      {"./a", "'./a' contains '.'"},
      {"a/./b", "contains '.'"},
      {".", "contains '.'"},
      {"a//b", "'a//b' has an empty component"},
      {"a/", "ends with '/'"},
      {"a\\b", "'a\\b' contains a backslash"},
      {"..\\x", "contains a backslash"},
      {std::string("a\nb"), "contains a control character"},
      {std::string("a\0b", 3), "contains a control character"},
      {"a\x7f", "contains a control character"},
      {"a\tb", "contains a control character"},
      {"caf\xc3\xa9.txt", "contains a non-ASCII byte"},
      {std::string(1025, 'x'), "more than the limit of 1024"},
  };
  for (const auto& [path, phrase] : cases) {
    SCOPED_TRACE(path);
    ExpectInvalid(CheckEntryPath(path), phrase);
  }
}

TEST(CompressionTest, NamesRoundTrip) {
  for (Compression c : {Compression::kNone, Compression::kGzip, Compression::kZstd}) {
    auto p = ParseCompression(CompressionName(c));
    ASSERT_TRUE(p);
    EXPECT_EQ(*p, c);
  }
  auto bad = ParseCompression("xz");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, Code::kUsage);
  EXPECT_HAS(bad.error().message, "'xz'");
}

// ----------------------------------------------------------------------------- round trip

class CompressionParamTest : public ::testing::TestWithParam<Compression> {};

INSTANTIATE_TEST_SUITE_P(All, CompressionParamTest,
                         ::testing::Values(Compression::kNone, Compression::kGzip,
                                           Compression::kZstd),
                         [](const auto& info) { return CompressionName(info.param); });

TEST_P(CompressionParamTest, RoundTrip) {
  TempDir tmp;
  const std::string path = tmp / "a.dlsys";
  const auto files = SampleFiles();
  WriteArchive(path, GetParam(), files);

  auto reader = Reader::Open(path);
  ASSERT_TRUE(reader) << reader.error().message;
  EXPECT_EQ(reader->compression(), GetParam());

  auto back = ReadArchive(path);
  ASSERT_TRUE(back) << back.error().message;
  ASSERT_EQ(back->entries.size(), files.size());
  for (std::size_t i = 0; i < files.size(); ++i) {
    SCOPED_TRACE(files[i].path);
    EXPECT_EQ(back->entries[i].path, files[i].path);
    EXPECT_EQ(back->entries[i].size, files[i].data.size());
    EXPECT_EQ(back->entries[i].mode, files[i].mode);
    EXPECT_EQ(back->entries[i].mtime, kMtime);
    EXPECT_TRUE(back->data[i] == files[i].data);
  }
}

TEST_P(CompressionParamTest, NextSkipsUnreadData) {
  TempDir tmp;
  const std::string path = tmp / "a.dlsys";
  const auto files = SampleFiles();
  WriteArchive(path, GetParam(), files);
  auto r = Reader::Open(path);
  ASSERT_TRUE(r);
  // Read only a few bytes of the big entry, none of the others except the last.
  std::vector<std::string> seen;
  for (;;) {
    auto e = r->Next();
    ASSERT_TRUE(e) << e.error().message;
    if (!*e) break;
    seen.push_back((*e)->path);
    if ((*e)->path == "model/weights.bin") {
      std::byte buf[10];
      auto n = r->Read(buf);
      ASSERT_TRUE(n);
      EXPECT_EQ(*n, 10u);
      EXPECT_EQ(std::memcmp(buf, files[2].data.data(), 10), 0);
    }
    if ((*e)->path == "run.sh") {
      auto d = r->ReadAll(100);
      ASSERT_TRUE(d);
      EXPECT_EQ(*d, "#!/bin/sh\n");
      std::byte buf[4];
      auto n = r->Read(buf);
      ASSERT_TRUE(n);
      EXPECT_EQ(*n, 0u);  // end of entry
    }
  }
  EXPECT_EQ(seen.size(), files.size());
}

TEST_P(CompressionParamTest, OutputIsDeterministic) {
  TempDir tmp;
  const auto files = SampleFiles();
  WriteArchive(tmp / "1.dlsys", GetParam(), files);
  WriteArchive(tmp / "2.dlsys", GetParam(), files);
  const std::string a = Slurp(tmp / "1.dlsys");
  const std::string b = Slurp(tmp / "2.dlsys");
  ASSERT_FALSE(a.empty());
  EXPECT_TRUE(a == b) << "archives differ";
  if (GetParam() == Compression::kGzip) {
    ASSERT_GE(a.size(), 10u);
    EXPECT_EQ(static_cast<unsigned char>(a[0]), 0x1f);
    EXPECT_EQ(a.substr(4, 4), std::string(4, '\0')) << "gzip header carries an mtime";
    EXPECT_EQ(a[3] & 0x08, 0) << "gzip header carries a file name";
  }
}

TEST_P(CompressionParamTest, GnuTarListsEntries) {
  TempDir tmp;
  const std::string path = tmp / "a.dlsys";
  const auto files = SampleFiles();
  WriteArchive(path, GetParam(), files);
  std::string flag = GetParam() == Compression::kGzip   ? "-z"
                     : GetParam() == Compression::kZstd ? "--zstd"
                                                        : "";
  const std::string cmd = "tar " + flag + " -tvf '" + path + "' 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  const int status = ::pclose(p);
  EXPECT_EQ(status, 0) << out;
  std::string expected_names;
  for (const auto& f : files) {
    EXPECT_HAS(out, " " + f.path + "\n");
  }
  EXPECT_HAS(out, "-rwxr-xr-x 0/0");
  EXPECT_EQ(out.find("warning"), std::string::npos) << out;
  EXPECT_EQ(out.find("PaxHeader"), std::string::npos) << out;
}

TEST_P(CompressionParamTest, StreamedEntryMatchesAdd) {
  TempDir tmp;
  const std::string data = RandomBytes(5u << 20, 3);
  WriteArchive(tmp / "add.dlsys", GetParam(), {{"big.bin", data}});
  const int fd = ::open((tmp / "stream.dlsys").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ASSERT_GE(fd, 0);
  auto w = Writer::Open(fd, GetParam(), kMtime);
  ASSERT_TRUE(w);
  ASSERT_TRUE(w->Begin("big.bin", data.size()));
  for (std::size_t off = 0; off < data.size(); off += 1234567) {
    const std::size_t n = std::min<std::size_t>(1234567, data.size() - off);
    ASSERT_TRUE(w->WriteData(Bytes(data).subspan(off, n)));
  }
  ASSERT_TRUE(w->End());
  ASSERT_TRUE(w->Close());
  ::close(fd);
  EXPECT_TRUE(Slurp(tmp / "add.dlsys") == Slurp(tmp / "stream.dlsys"));
}

TEST(ReaderTest, DataOffsetPointsAtEntryDataInUncompressedArchive) {
  TempDir tmp;
  const std::string path = tmp / "a.dlsys";
  const auto files = SampleFiles();
  WriteArchive(path, Compression::kNone, files);
  const std::string raw = Slurp(path);
  auto r = Reader::Open(path);
  ASSERT_TRUE(r);
  std::size_t i = 0;
  for (;; ++i) {
    auto e = r->Next();
    ASSERT_TRUE(e) << e.error().message;
    if (!*e) break;
    SCOPED_TRACE((*e)->path);
    const std::uint64_t off = r->data_offset();
    EXPECT_EQ(off % 512, 0u);
    ASSERT_LE(off + (*e)->size, raw.size());
    EXPECT_TRUE(raw.compare(off, (*e)->size, files[i].data) == 0);
  }
  EXPECT_EQ(i, files.size());
  // The writer does not pad to 10240-byte records: the end marker closes the file.
  EXPECT_EQ(raw.size() % 512, 0u);
  EXPECT_EQ(raw.substr(raw.size() - 1024), std::string(1024, '\0'));
}

TEST(ReaderTest, EmptyArchiveHasNoEntries) {
  TempDir tmp;
  WriteArchive(tmp / "e.dlsys", Compression::kGzip, {});
  auto n = SkipAll(tmp / "e.dlsys");
  ASSERT_TRUE(n) << n.error().message;
  EXPECT_EQ(*n, 0u);
}

TEST(ReaderTest, ReadAllLimit) {
  TempDir tmp;
  WriteArchive(tmp / "a.dlsys", Compression::kNone, {{"big.bin", std::string(5000, 'x')}});
  auto r = Reader::Open(tmp / "a.dlsys");
  ASSERT_TRUE(r);
  auto e = r->Next();
  ASSERT_TRUE(e && *e);
  ExpectInvalid(r->ReadAll(4999), "entry 'big.bin' is larger than 4999 bytes");
  auto all = r->ReadAll(5000);
  ASSERT_TRUE(all) << all.error().message;
  EXPECT_EQ(all->size(), 5000u);
}

TEST(ReaderTest, MaxEntriesLimit) {
  TempDir tmp;
  WriteArchive(tmp / "a.dlsys", Compression::kNone, {{"a", "1"}, {"b", "2"}, {"c", "3"}});
  Limits limits;
  limits.max_entries = 2;
  ExpectInvalid(SkipAll(tmp / "a.dlsys", limits), "more than 2 entries");
  limits.max_entries = 3;
  EXPECT_TRUE(SkipAll(tmp / "a.dlsys", limits));
}

TEST(ReaderTest, MaxEntryBytesLimit) {
  TempDir tmp;
  WriteArchive(tmp / "a.dlsys", Compression::kNone, {{"a.bin", std::string(2000, 'x')}});
  Limits limits;
  limits.max_entry_bytes = 1999;
  ExpectInvalid(SkipAll(tmp / "a.dlsys", limits),
                "entry 'a.bin' declares 2000 bytes, more than the limit of 1999");
}

TEST(ReaderTest, ReadWithoutEntryIsUsageError) {
  TempDir tmp;
  WriteArchive(tmp / "a.dlsys", Compression::kNone, {{"a", "1"}});
  auto r = Reader::Open(tmp / "a.dlsys");
  ASSERT_TRUE(r);
  std::byte buf[4];
  auto n = r->Read(buf);
  ASSERT_FALSE(n);
  EXPECT_EQ(n.error().code, Code::kUsage);
}

// ----------------------------------------------------------------------------- writer errors

class WriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fd_ = ::open((tmp_ / "w.dlsys").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ASSERT_GE(fd_, 0);
  }
  void TearDown() override { ::close(fd_); }
  TempDir tmp_;
  int fd_ = -1;
};

TEST_F(WriterTest, EndWithTooFewBytesFails) {
  auto w = Writer::Open(fd_, Compression::kNone, kMtime);
  ASSERT_TRUE(w);
  ASSERT_TRUE(w->Begin("a.bin", 10));
  ASSERT_TRUE(w->WriteData(Bytes("12345")));
  ExpectInvalid(w->End(), "entry 'a.bin' was declared as 10 bytes but 5 were written");
  // The writer stays failed: no archive can be completed from here.
  ExpectInvalid(w->Close(), "was declared as 10 bytes");
}

TEST_F(WriterTest, WriteDataBeyondSizeFails) {
  auto w = Writer::Open(fd_, Compression::kGzip, kMtime);
  ASSERT_TRUE(w);
  ASSERT_TRUE(w->Begin("a.bin", 4));
  ExpectInvalid(w->WriteData(Bytes("12345")), "declared as 4 bytes but more data");
}

TEST_F(WriterTest, RejectsBadPathsAndDuplicates) {
  auto w = Writer::Open(fd_, Compression::kNone, kMtime);
  ASSERT_TRUE(w);
  ExpectInvalid(w->Add("/etc/passwd", Bytes("x")), "is absolute");
  ExpectInvalid(w->Begin("a/../b", 1), "contains '..'");
  ASSERT_TRUE(w->Add("a", Bytes("x")));
  ExpectInvalid(w->Add("a", Bytes("y")), "entry 'a' appears twice");
  // Rejected paths leave the writer usable.
  ASSERT_TRUE(w->Add("b", Bytes("y")));
  ASSERT_TRUE(w->Close());
}

TEST_F(WriterTest, MisuseIsUsageError) {
  auto w = Writer::Open(fd_, Compression::kNone, kMtime);
  ASSERT_TRUE(w);
  auto r = w->WriteData(Bytes("x"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kUsage);
  ASSERT_TRUE(w->Begin("a", 1));
  r = w->Close();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kUsage);
}

TEST_F(WriterTest, AbandonedWriterDoesNotFinishTheArchive) {
  for (Compression c : {Compression::kNone, Compression::kGzip, Compression::kZstd}) {
    SCOPED_TRACE(CompressionName(c));
    ASSERT_EQ(::ftruncate(fd_, 0), 0);
    ASSERT_EQ(::lseek(fd_, 0, SEEK_SET), 0);
    {
      auto w = Writer::Open(fd_, c, kMtime);
      ASSERT_TRUE(w);
      ASSERT_TRUE(w->Begin("huge.bin", 1ull << 30));
      ASSERT_TRUE(w->WriteData(Bytes("0123456789")));
    }  // dropped mid-entry: no 1 GiB of zero padding, no end marker
    struct stat st;
    ASSERT_EQ(::fstat(fd_, &st), 0);
    EXPECT_LT(st.st_size, 1 << 20);
  }
}

TEST(WriterFdTest, WriteErrorIsReported) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  ::close(fds[0]);  // writes now fail with EPIPE
  ::signal(SIGPIPE, SIG_IGN);
  auto w = Writer::Open(fds[1], Compression::kNone, kMtime);
  ASSERT_TRUE(w);
  auto r = w->Add("a", Bytes("x"));
  if (r) {
    r = w->Close();
  }
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kInternal);
  EXPECT_HAS(r.error().message, "Broken pipe");
  ::close(fds[1]);
}

// ----------------------------------------------------------------------------- hostile input

struct RawEntry {
  std::string path;
  unsigned type = AE_IFREG;
  std::string data = {};
  std::string symlink = {};
  std::string hardlink = {};
};

// Writes entries with raw libarchive, bypassing every check of the Writer under test.
void WriteRaw(const std::string& out, const std::vector<RawEntry>& entries) {
  struct archive* a = archive_write_new();
  ASSERT_EQ(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
  ASSERT_EQ(archive_write_open_filename(a, out.c_str()), ARCHIVE_OK);
  for (const auto& re : entries) {
    struct archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, re.path.c_str());
    archive_entry_set_filetype(e, re.type);
    archive_entry_set_perm(e, 0644);
    if (!re.symlink.empty()) archive_entry_set_symlink(e, re.symlink.c_str());
    if (!re.hardlink.empty()) archive_entry_set_hardlink(e, re.hardlink.c_str());
    if (re.type == AE_IFCHR) archive_entry_set_rdev(e, makedev(1, 3));
    archive_entry_set_size(e, static_cast<la_int64_t>(re.data.size()));
    ASSERT_EQ(archive_write_header(a, e), ARCHIVE_OK) << archive_error_string(a);
    if (!re.data.empty()) {
      ASSERT_EQ(archive_write_data(a, re.data.data(), re.data.size()),
                static_cast<la_ssize_t>(re.data.size()));
    }
    archive_entry_free(e);
  }
  ASSERT_EQ(archive_write_close(a), ARCHIVE_OK);
  archive_write_free(a);
}

struct HostileCase {
  const char* name;
  std::vector<RawEntry> entries;
  std::string phrase;
};

TEST(HostileTest, UnsafeEntriesAreRejected) {
  const std::vector<HostileCase> cases = {
      {"absolute", {{"/etc/passwd", AE_IFREG, "x"}}, "entry path '/etc/passwd' is absolute"},
      {"dotdot", {{"a/../../b", AE_IFREG, "x"}}, "entry path 'a/../../b' contains '..'"},
      {"dot", {{"./a", AE_IFREG, "x"}}, "contains '.'"},
      {"symlink", {{"link", AE_IFLNK, "", "/etc/passwd"}}, "entry 'link' is a symbolic link"},
      {"hardlink",
       {{"a", AE_IFREG, "x"}, {"b", AE_IFREG, "", "", "a"}},
       "entry 'b' is a hard link"},
      {"chardev", {{"dev", AE_IFCHR}}, "entry 'dev' is a device file"},
      {"blockdev", {{"dev", AE_IFBLK}}, "entry 'dev' is a device file"},
      {"fifo", {{"pipe", AE_IFIFO}}, "entry 'pipe' is a FIFO"},
      {"directory", {{"dir", AE_IFDIR}}, "entry 'dir/' is a directory"},
      {"duplicate", {{"a", AE_IFREG, "1"}, {"a", AE_IFREG, "2"}}, "entry 'a' appears twice"},
      {"file_then_child",
       {{"a", AE_IFREG, "1"}, {"a/b", AE_IFREG, "2"}},
       "lies under entry 'a', which is a file"},
      {"child_then_file",
       {{"a/b", AE_IFREG, "1"}, {"a", AE_IFREG, "2"}},
       "entry 'a' is also the directory of another entry"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    TempDir tmp;
    const std::string path = tmp / "h.tar";
    WriteRaw(path, c.entries);
    ExpectInvalid(SkipAll(path), c.phrase);
    ExpectInvalid(ReadArchive(path), c.phrase);
  }
}

TEST(HostileTest, ErrorIsSticky) {
  TempDir tmp;
  WriteRaw(tmp / "h.tar", {{"link", AE_IFLNK, "", "x"}, {"ok", AE_IFREG, "1"}});
  auto r = Reader::Open(tmp / "h.tar");
  ASSERT_TRUE(r);
  ExpectInvalid(r->Next(), "symbolic link");
  ExpectInvalid(r->Next(), "symbolic link");
}

TEST(HostileTest, NotATarFile) {
  TempDir tmp;
  Spit(tmp / "x.dlsys", std::string(4096, 'z'));
  ExpectInvalid(Reader::Open(tmp / "x.dlsys"),
                "'" + (tmp / "x.dlsys") + "' is not a dlsys archive (not a tar file)");
  Spit(tmp / "empty.dlsys", "");
  ExpectInvalid(Reader::Open(tmp / "empty.dlsys"), "is not a dlsys archive");
  ExpectInvalid(Reader::Open(tmp.path().string()), "is not a dlsys archive");
}

TEST(HostileTest, GzipOfNotATarFile) {
  TempDir tmp;
  Spit(tmp / "x.txt", std::string(100000, 'q'));
  ASSERT_EQ(std::system(("gzip -n -k '" + (tmp / "x.txt") + "'").c_str()), 0);
  ExpectInvalid(Reader::Open(tmp / "x.txt.gz"), "not a tar file");
}

TEST(HostileTest, MissingFileIsNotFound) {
  TempDir tmp;
  auto r = Reader::Open(tmp / "nope.dlsys");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kNotFound);
  EXPECT_HAS(r.error().message, "nope.dlsys");
}

TEST(HostileTest, TruncatedArchives) {
  TempDir tmp;
  const std::string path = tmp / "a.tar";
  const std::string data = RandomBytes(100000, 4);
  WriteArchive(path, Compression::kNone, {{"first.bin", data}, {"second.bin", "hello"}});
  const std::string raw = Slurp(path);
  // Layout: header(512) data(100000 -> 100352) header(512) data(512) end(1024).
  const std::size_t second_header = 512 + 100352;
  ASSERT_EQ(raw.size(), second_header + 512 + 512 + 1024);

  {  // Cut in the middle of the first entry's data: Read fails, and so does skipping it.
    SCOPED_TRACE("data");
    Spit(tmp / "t.tar", raw.substr(0, 512 + 50000));
    ExpectInvalid(ReadArchive(tmp / "t.tar"), "truncated or corrupt");
    ExpectInvalid(SkipAll(tmp / "t.tar"), "truncated or corrupt");
  }
  {  // Cut in the middle of the second header.
    SCOPED_TRACE("header");
    Spit(tmp / "t.tar", raw.substr(0, second_header + 200));
    ExpectInvalid(ReadArchive(tmp / "t.tar"), "truncated or corrupt");
    ExpectInvalid(SkipAll(tmp / "t.tar"), "truncated or corrupt");
  }
  {  // Cut exactly between entries: libarchive alone would accept this.
    SCOPED_TRACE("boundary");
    Spit(tmp / "t.tar", raw.substr(0, second_header));
    ExpectInvalid(ReadArchive(tmp / "t.tar"), "without an end-of-archive marker");
    ExpectInvalid(SkipAll(tmp / "t.tar"), "without an end-of-archive marker");
  }
  {  // Cut in the first header: not even recognisable as tar.
    SCOPED_TRACE("first header");
    Spit(tmp / "t.tar", raw.substr(0, 300));
    ExpectInvalid(ReadArchive(tmp / "t.tar"), "not a dlsys archive");
  }
  {  // A corrupted header checksum.
    SCOPED_TRACE("checksum");
    std::string bad = raw;
    bad[second_header + 10] ^= 0x55;
    Spit(tmp / "t.tar", bad);
    ExpectInvalid(ReadArchive(tmp / "t.tar"), "truncated or corrupt");
  }
}

TEST(HostileTest, TruncatedCompressedArchives) {
  for (Compression c : {Compression::kGzip, Compression::kZstd}) {
    SCOPED_TRACE(CompressionName(c));
    TempDir tmp;
    WriteArchive(tmp / "a.dlsys", c,
                 {{"first.bin", RandomBytes(300000, 5)}, {"second.bin", "hello"}});
    const std::string raw = Slurp(tmp / "a.dlsys");
    Spit(tmp / "t.dlsys", raw.substr(0, raw.size() / 2));
    ExpectInvalid(ReadArchive(tmp / "t.dlsys"), "truncated or corrupt");
    ExpectInvalid(SkipAll(tmp / "t.dlsys"), "truncated or corrupt");
  }
}

void FixChecksum(std::string& raw, std::size_t header);

// Stores `value` in a tar header's size field in GNU base-256 and fixes the checksum.
void PatchSize(std::string& raw, std::size_t header, std::uint64_t value) {
  char* h = raw.data() + header;
  h[124] = static_cast<char>(0x80);
  for (int i = 11; i >= 1; --i) {
    h[124 + i] = static_cast<char>(value & 0xff);
    value >>= 8;
  }
  FixChecksum(raw, header);
}

// Recomputes the checksum of the tar header at `header` after an edit.
void FixChecksum(std::string& raw, std::size_t header) {
  char* h = raw.data() + header;
  std::memset(h + 148, ' ', 8);
  unsigned sum = 0;
  for (int i = 0; i < 512; ++i) sum += static_cast<unsigned char>(h[i]);
  std::snprintf(h + 148, 8, "%06o", sum);
  h[155] = ' ';
}

TEST(HostileTest, HugeDeclaredSize) {
  TempDir tmp;
  WriteArchive(tmp / "a.tar", Compression::kNone, {{"big.bin", "small"}});
  std::string raw = Slurp(tmp / "a.tar");
  PatchSize(raw, 0, 1ull << 50);
  Spit(tmp / "h.tar", raw);

  // Default limits: refused from the header alone.
  ExpectInvalid(SkipAll(tmp / "h.tar"),
                "entry 'big.bin' declares 1125899906842624 bytes, more than the limit of");

  // Without a size limit: ReadAll refuses before allocating; reading hits the truncation.
  Limits limits;
  limits.max_entry_bytes = ~0ull;
  auto r = Reader::Open(tmp / "h.tar", limits);
  ASSERT_TRUE(r) << r.error().message;
  auto e = r->Next();
  ASSERT_TRUE(e && *e) << (e ? "" : e.error().message);
  EXPECT_EQ((*e)->size, 1ull << 50);
  ExpectInvalid(r->ReadAll(1u << 20), "is larger than 1048576 bytes");
  std::vector<std::byte> buf(1 << 16);
  Result<std::size_t> n;
  do {
    n = r->Read(buf);
  } while (n && *n > 0);
  ExpectInvalid(n, "truncated or corrupt");

  ExpectInvalid(SkipAll(tmp / "h.tar", limits), "truncated or corrupt");
}

class BombTest : public ::testing::TestWithParam<Compression> {};

INSTANTIATE_TEST_SUITE_P(Compressed, BombTest,
                         ::testing::Values(Compression::kGzip, Compression::kZstd),
                         [](const auto& info) { return CompressionName(info.param); });

TEST_P(BombTest, CompressionBombIsStopped) {
  TempDir tmp;
  const std::string path = tmp / "bomb.dlsys";
  {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ASSERT_GE(fd, 0);
    auto w = Writer::Open(fd, GetParam(), kMtime);
    ASSERT_TRUE(w);
    const std::string zeros(1 << 20, '\0');
    ASSERT_TRUE(w->Begin("zeros.bin", 200ull << 20));
    for (int i = 0; i < 200; ++i) ASSERT_TRUE(w->WriteData(Bytes(zeros)));
    ASSERT_TRUE(w->End());
    ASSERT_TRUE(w->Add("after.txt", Bytes("x")));
    ASSERT_TRUE(w->Close());
    ::close(fd);
  }
  Limits limits;
  limits.max_compression_ratio = 100;
  limits.ratio_grace_bytes = 1 << 20;

  auto r = Reader::Open(path, limits);
  ASSERT_TRUE(r);
  ASSERT_TRUE(r->Next());
  std::vector<std::byte> buf(1 << 16);
  std::uint64_t total = 0;
  Result<std::size_t> n;
  do {
    n = r->Read(buf);
    if (n) total += *n;
  } while (n && *n > 0);
  ExpectInvalid(n, "compression ratio above 100:1 (possible compression bomb)");
  EXPECT_LT(total, 4u << 20) << "the guard should stop reading soon after the grace bytes";

  // Skipping the entry without reading it is guarded too.
  ExpectInvalid(SkipAll(path, limits), "compression ratio above 100:1");
  // zlib cannot compress better than about 1032:1, so a higher limit lets it through.
  if (GetParam() == Compression::kGzip) {
    limits.max_compression_ratio = 1100;
    auto ok = SkipAll(path, limits);
    ASSERT_TRUE(ok) << ok.error().message;
    EXPECT_EQ(*ok, 2u);
  }
}

TEST(HostileTest, NonAsciiPathIsRejected) {
  TempDir tmp;
  // libarchive cannot even write such a name in the C locale: patch it into the header.
  WriteArchive(tmp / "u.tar", Compression::kNone, {{"modXle.pt", "data"}});
  std::string raw = Slurp(tmp / "u.tar");
  ASSERT_EQ(raw.substr(0, 9), "modXle.pt");
  raw[3] = '\xe8';
  FixChecksum(raw, 0);
  Spit(tmp / "u.tar", raw);
  ExpectInvalid(SkipAll(tmp / "u.tar"), "non-ASCII");
  const int fd = ::open((tmp / "w.tar").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ASSERT_GE(fd, 0);
  auto w = Writer::Open(fd, Compression::kNone, kMtime);
  ASSERT_TRUE(w);
  ExpectInvalid(w->Add("mod\xc3\xa8le.pt", Bytes("x")), "non-ASCII");
  ::close(fd);
}

}  // namespace
}  // namespace dlsys::archive
