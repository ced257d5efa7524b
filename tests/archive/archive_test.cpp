// Tests of lib/archive: the Writer's canonical output, the Reader's refusal of everything else,
// and cross-checks against independent implementations (zlib, zstd, libarchive, GNU tar and
// Python's tarfile). Archives live in memfds unless an external program needs a file name.
#include "archive/archive.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "archive/internal/tar_format.h"
#include "test_tmp.h"

namespace dlsys::archive {
namespace {

using dlsys::testing::RandomBytes;
using dlsys::testing::Slurp;
using dlsys::testing::Spit;
using dlsys::testing::TempDir;
using internal::kBlock;

#define EXPECT_HAS(haystack, needle)                               \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) \
      << "'" << (haystack) << "' lacks '" << (needle) << "'"

constexpr std::int64_t kMtime = 1700000000;
constexpr std::uint64_t kMiB = std::uint64_t{1} << 20;
constexpr std::uint64_t kEightGiB = std::uint64_t{1} << 33;
const std::string kEndMarker(2 * kBlock, '\0');

// A string literal with its embedded NULs: S("0000644\0") is 8 bytes.
template <std::size_t N>
std::string S(const char (&s)[N]) {
  return std::string(s, N - 1);
}

std::span<const std::byte> Bytes(std::string_view s) {
  return std::as_bytes(std::span(s.data(), s.size()));
}

bool AllZero(std::string_view s) {
  return s.empty() || (s[0] == '\0' && std::memcmp(s.data(), s.data() + 1, s.size() - 1) == 0);
}

// "d/ppp..." of exactly n bytes.
std::string LongPath(std::size_t n, char fill) { return "d/" + std::string(n - 2, fill); }

// ----------------------------------------------------------------------------- file descriptors

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

// An anonymous in-memory file holding `bytes` (file offset at its end; the Reader uses pread).
Fd MemFile(std::string_view bytes) {
  Fd fd(::memfd_create("archive_test", MFD_CLOEXEC));
  EXPECT_GE(fd.get(), 0) << std::strerror(errno);
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd.get(), bytes.data() + done, bytes.size() - done);
    if (n <= 0) {
      ADD_FAILURE() << "memfd write: " << std::strerror(errno);
      break;
    }
    done += static_cast<std::size_t>(n);
  }
  return fd;
}

std::string Contents(int fd) {
  struct stat st {};
  EXPECT_EQ(::fstat(fd, &st), 0);
  std::string out(static_cast<std::size_t>(st.st_size), '\0');
  std::size_t done = 0;
  while (done < out.size()) {
    const ssize_t n = ::pread(fd, out.data() + done, out.size() - done, static_cast<off_t>(done));
    if (n <= 0) break;
    done += static_cast<std::size_t>(n);
  }
  out.resize(done);
  return out;
}

std::uint64_t FileSize(int fd) {
  struct stat st {};
  EXPECT_EQ(::fstat(fd, &st), 0);
  return static_cast<std::uint64_t>(st.st_size);
}

// ----------------------------------------------------------------------------- writer and reader

struct File {
  std::string path;
  std::string data;
};

// The archive the Writer under test produces for `files`; the test fails on any error.
std::string Pack(Compression c, const std::vector<File>& files, std::int64_t mtime = kMtime) {
  Fd fd = MemFile("");
  auto w = Writer::Open(fd.get(), c, mtime);
  if (!w) {
    ADD_FAILURE() << w.error().message;
    return "";
  }
  for (const auto& f : files) {
    auto r = w->Add(f.path, Bytes(f.data));
    if (!r) {
      ADD_FAILURE() << f.path << ": " << r.error().message;
      return "";
    }
  }
  auto r = w->Close();
  if (!r) ADD_FAILURE() << r.error().message;
  return Contents(fd.get());
}

enum class Mode {
  kReadAll,     // ReadAll() every entry
  kSmallReads,  // Read() every entry 7 bytes at a time
  kChunkReads,  // Read() every entry 64 KiB at a time, keeping only the first MiB
  kNextOnly,    // Next() only: the reader skips the data
  kSkipData,    // SkipData() (uncompressed archives)
};

struct ReadBack {
  Compression compression = Compression::kNone;
  std::vector<Entry> entries;
  std::vector<std::string> data;
};

// Reads a whole archive from memory; returns the first error.
Result<ReadBack> ReadBytes(const std::string& bytes, Mode mode = Mode::kReadAll,
                           Limits limits = {}) {
  Fd fd = MemFile(bytes);
  DLSYS_ASSIGN_OR_RETURN(Reader r, Reader::Open(fd.get(), "test.dlsys", limits));
  ReadBack out;
  out.compression = r.compression();
  for (;;) {
    DLSYS_ASSIGN_OR_RETURN(std::optional<Entry> e, r.Next());
    if (!e) break;
    std::string data;
    if (mode == Mode::kReadAll) {
      DLSYS_ASSIGN_OR_RETURN(data, r.ReadAll(128 * kMiB));
    } else if (mode == Mode::kChunkReads) {
      std::vector<char> buf(64 << 10);
      for (;;) {
        DLSYS_ASSIGN_OR_RETURN(std::size_t n, r.Read(std::as_writable_bytes(std::span(buf))));
        if (n == 0) break;
        if (data.size() < kMiB) data.append(buf.data(), n);
      }
    } else if (mode == Mode::kSmallReads) {
      std::byte buf[7];
      for (;;) {
        DLSYS_ASSIGN_OR_RETURN(std::size_t n, r.Read(buf));
        if (n == 0) break;
        data.append(reinterpret_cast<const char*>(buf), n);
      }
    } else if (mode == Mode::kSkipData) {
      DLSYS_TRY(r.SkipData());
    }
    out.entries.push_back(*e);
    out.data.push_back(std::move(data));
  }
  return out;
}

template <typename T>
void ExpectInvalid(const Result<T>& r, const std::string& phrase) {
  ASSERT_FALSE(r) << "expected an error containing: " << phrase;
  EXPECT_EQ(r.error().code, Code::kInvalid) << r.error().message;
  EXPECT_HAS(r.error().message, phrase);
}

// The reader's refusal of a non-canonical archive: kInvalid, naming the offset and the rule.
template <typename T>
void ExpectRefused(const Result<T>& r, const std::string& phrase) {
  ASSERT_FALSE(r) << "expected an error containing 'offset' and: " << phrase;
  EXPECT_EQ(r.error().code, Code::kInvalid) << r.error().message;
  EXPECT_HAS(r.error().message, "offset");
  EXPECT_HAS(r.error().message, phrase);
}

std::vector<File> SampleFiles() {
  return {
      {"manifest.json", "{\"name\":\"mlp\"}\n"},
      {"empty.txt", ""},
      {"model/weights.bin", RandomBytes(3 * kMiB + 17, 1)},
      {"block.bin", RandomBytes(kBlock, 6)},
      {LongPath(100, 'h'), RandomBytes(700, 7)},  // fills the ustar name field exactly
      {LongPath(101, 'o'), "101"},                // the shortest path with a pax record
      {LongPath(150, 'n'), RandomBytes(1000, 2)},
      {LongPath(kMaxPathBytes, 'm'), "x"},
      {"run.sh", "#!/bin/sh\n"},
  };
}

// ----------------------------------------------------------------------------- raw bytes

std::string Padding(std::uint64_t size) {
  return std::string(internal::PaddedSize(size) - size, '\0');
}

// The canonical bytes of one entry: headers, data, zero padding.
std::string RawEntry(std::string_view path, std::string_view data, std::int64_t mtime = kMtime) {
  return internal::EntryHeaders(path, data.size(), mtime) + std::string(data) +
         Padding(data.size());
}

// Recomputes the checksum of the header block at `block` the way every tar writer does.
void FixChecksum(std::string& raw, std::size_t block) {
  std::memset(raw.data() + block + 148, ' ', 8);
  unsigned sum = 0;
  for (std::size_t i = 0; i < kBlock; ++i) sum += static_cast<unsigned char>(raw[block + i]);
  char chk[8];
  std::snprintf(chk, sizeof chk, "%06o", sum);
  raw.replace(block + 148, 8, std::string(chk, 6) + S("\0 "));
}

// A pax record "<len> key=value\n", computed independently of lib/archive.
std::string PaxRecord(std::string_view key, std::string_view value) {
  const std::string body = " " + std::string(key) + "=" + std::string(value) + "\n";
  std::size_t len = body.size() + 1;
  while (std::to_string(len).size() + body.size() != len) ++len;
  return std::to_string(len) + body;
}

// A pax 'x' header carrying `records`, in the canonical block layout.
std::string PaxHeader(const std::string& records) {
  return internal::PaxHeaderBlock(records.size()) + records + Padding(records.size());
}

// ----------------------------------------------------------------------------- zlib and zstd

class GzipStream {
 public:
  explicit GzipStream(int level = 6, gz_header* header = nullptr) {
    EXPECT_EQ(deflateInit2(&z_, level, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY), Z_OK);
    if (header) {
      EXPECT_EQ(deflateSetHeader(&z_, header), Z_OK);
    }
  }
  ~GzipStream() { deflateEnd(&z_); }
  void Add(std::string_view data) { Run(data, Z_NO_FLUSH); }
  std::string Finish() {
    Run({}, Z_FINISH);
    return std::move(out_);
  }

 private:
  void Run(std::string_view data, int flush) {
    z_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
    z_.avail_in = static_cast<uInt>(data.size());
    unsigned char buf[65536];
    for (;;) {
      z_.next_out = buf;
      z_.avail_out = sizeof buf;
      const int r = deflate(&z_, flush);
      ASSERT_NE(r, Z_STREAM_ERROR);
      out_.append(reinterpret_cast<char*>(buf), sizeof buf - z_.avail_out);
      if (flush == Z_FINISH ? r == Z_STREAM_END : (z_.avail_in == 0 && z_.avail_out != 0)) break;
    }
  }
  z_stream z_{};
  std::string out_;
};

std::string Gzip(std::string_view data) {
  GzipStream s;
  s.Add(data);
  return s.Finish();
}

std::string Gunzip(std::string_view gz) {
  z_stream z{};
  EXPECT_EQ(inflateInit2(&z, 31), Z_OK);
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(gz.data()));
  z.avail_in = static_cast<uInt>(gz.size());
  std::string out;
  unsigned char buf[65536];
  int r;
  do {
    z.next_out = buf;
    z.avail_out = sizeof buf;
    r = inflate(&z, Z_NO_FLUSH);
    out.append(reinterpret_cast<char*>(buf), sizeof buf - z.avail_out);
  } while (r == Z_OK);
  EXPECT_EQ(r, Z_STREAM_END);
  EXPECT_EQ(z.avail_in, 0u) << "bytes after the gzip member";
  inflateEnd(&z);
  return out;
}

// One zstd frame compressed in streaming mode (no content size in the header), like the writer.
class ZstdStream {
 public:
  explicit ZstdStream(bool checksum = true, int window_log = 21) : c_(ZSTD_createCCtx()) {
    EXPECT_FALSE(ZSTD_isError(ZSTD_CCtx_setParameter(c_, ZSTD_c_compressionLevel, 3)));
    EXPECT_FALSE(ZSTD_isError(ZSTD_CCtx_setParameter(c_, ZSTD_c_checksumFlag, checksum ? 1 : 0)));
    EXPECT_FALSE(ZSTD_isError(ZSTD_CCtx_setParameter(c_, ZSTD_c_windowLog, window_log)));
  }
  ~ZstdStream() { ZSTD_freeCCtx(c_); }
  void Add(std::string_view data) { Run(data, ZSTD_e_continue); }
  std::string Finish() {
    Run({}, ZSTD_e_end);
    return std::move(out_);
  }

 private:
  void Run(std::string_view data, ZSTD_EndDirective mode) {
    ZSTD_inBuffer in{data.data(), data.size(), 0};
    std::vector<char> buf(ZSTD_CStreamOutSize());
    for (;;) {
      ZSTD_outBuffer o{buf.data(), buf.size(), 0};
      const std::size_t r = ZSTD_compressStream2(c_, &o, &in, mode);
      ASSERT_FALSE(ZSTD_isError(r)) << ZSTD_getErrorName(r);
      out_.append(buf.data(), o.pos);
      if (mode == ZSTD_e_continue ? in.pos == in.size : r == 0) break;
    }
  }
  ZSTD_CCtx* c_;
  std::string out_;
};

std::string Zstd(std::string_view data, bool checksum = true, int window_log = 21) {
  ZstdStream s(checksum, window_log);
  s.Add(data);
  return s.Finish();
}

std::string Unzstd(std::string_view z) {
  ZSTD_DCtx* d = ZSTD_createDCtx();
  ZSTD_inBuffer in{z.data(), z.size(), 0};
  std::string out;
  std::vector<char> buf(ZSTD_DStreamOutSize());
  std::size_t r = 1;
  while (in.pos < in.size) {
    ZSTD_outBuffer o{buf.data(), buf.size(), 0};
    r = ZSTD_decompressStream(d, &o, &in);
    if (ZSTD_isError(r)) {
      ADD_FAILURE() << ZSTD_getErrorName(r);
      break;
    }
    out.append(buf.data(), o.pos);
    if (r == 0) break;
  }
  EXPECT_EQ(r, 0u) << "incomplete zstd frame";
  EXPECT_EQ(in.pos, in.size) << "bytes after the zstd frame";
  ZSTD_freeDCtx(d);
  return out;
}

// A zstd skippable frame (RFC 8878 section 3.1.2) holding `payload`.
std::string SkippableFrame(std::string_view payload) {
  std::string f = S("\x50\x2a\x4d\x18");
  for (int i = 0; i < 4; ++i) f += static_cast<char>((payload.size() >> (8 * i)) & 0xff);
  return f + std::string(payload);
}

// A canonical tar stream of one entry "zeros.bin" declared as `declared` bytes, holding
// `zeros` zero bytes, fed to `s` a MiB at a time; `complete` adds padding and the end marker.
template <typename Stream>
std::string ZeroBomb(Stream& s, std::uint64_t declared, std::uint64_t zeros, bool complete) {
  s.Add(internal::EntryHeaders("zeros.bin", declared, kMtime));
  const std::string mib(kMiB, '\0');
  for (std::uint64_t left = zeros; left > 0;) {
    const std::size_t n = static_cast<std::size_t>(std::min(left, kMiB));
    s.Add(std::string_view(mib).substr(0, n));
    left -= n;
  }
  if (complete) s.Add(Padding(declared) + kEndMarker);
  return s.Finish();
}

// ----------------------------------------------------------------------------- external tools

// Runs a shell command; returns its exit status (-1 if it did not exit) and its output.
int RunCommand(const std::string& cmd, std::string* out) {
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return -1;
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) out->append(buf, n);
  const int status = ::pclose(p);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

struct LibarchiveEntry {
  std::string path;
  std::int64_t size = 0;
  unsigned perm = 0;
  unsigned type = 0;
  std::int64_t mtime = 0;
  bool atime_set = false, ctime_set = false, birthtime_set = false;
  std::int64_t uid = -1, gid = -1;
  std::string uname, gname, symlink, hardlink;
  std::string data;
};

// Reads `bytes` with libarchive (tar format; gzip and zstd filters); the test fails on any
// warning or error.
std::vector<LibarchiveEntry> LibarchiveRead(const std::string& bytes) {
  std::vector<LibarchiveEntry> out;
  struct archive* a = archive_read_new();
  archive_read_support_filter_gzip(a);
  archive_read_support_filter_zstd(a);
  archive_read_support_format_tar(a);
  if (archive_read_open_memory(a, bytes.data(), bytes.size()) != ARCHIVE_OK) {
    ADD_FAILURE() << "libarchive: " << archive_error_string(a);
    archive_read_free(a);
    return out;
  }
  struct archive_entry* e;
  int r;
  while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
    LibarchiveEntry le;
    le.path = archive_entry_pathname(e);
    le.size = archive_entry_size(e);
    le.perm = archive_entry_perm(e);
    le.type = archive_entry_filetype(e);
    le.mtime = archive_entry_mtime(e);
    le.atime_set = archive_entry_atime_is_set(e);
    le.ctime_set = archive_entry_ctime_is_set(e);
    le.birthtime_set = archive_entry_birthtime_is_set(e);
    le.uid = archive_entry_uid(e);
    le.gid = archive_entry_gid(e);
    for (auto [field, text] : {std::pair{&le.uname, archive_entry_uname(e)},
                               std::pair{&le.gname, archive_entry_gname(e)},
                               std::pair{&le.symlink, archive_entry_symlink(e)},
                               std::pair{&le.hardlink, archive_entry_hardlink(e)}}) {
      if (text) *field = text;
    }
    char buf[65536];
    la_ssize_t n;
    while ((n = archive_read_data(a, buf, sizeof buf)) > 0) le.data.append(buf, n);
    if (n < 0) ADD_FAILURE() << le.path << ": " << archive_error_string(a);
    out.push_back(std::move(le));
  }
  EXPECT_EQ(r, ARCHIVE_EOF) << archive_error_string(a);
  EXPECT_EQ(archive_read_close(a), ARCHIVE_OK);
  archive_read_free(a);
  return out;
}

// ============================================================================= paths and names

TEST(CheckEntryPathTest, AcceptsRelativeNormalisedPaths) {
  for (const char* p : {"a", "model.pt", "a/b/c.bin", ".hidden", "a/.b", "..a", "a..", "a/b..c",
                        "dir/file name with spaces", "a-b_c+d@e=f,g~h"}) {
    EXPECT_TRUE(CheckEntryPath(p)) << p;
  }
  EXPECT_TRUE(CheckEntryPath(std::string(kMaxPathBytes, 'x')));
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
      {std::string(kMaxPathBytes + 1, 'x'), "more than the limit of 1024"},
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

// ============================================================================= per compression

class CompressionParamTest : public ::testing::TestWithParam<Compression> {};

INSTANTIATE_TEST_SUITE_P(All, CompressionParamTest,
                         ::testing::Values(Compression::kNone, Compression::kGzip,
                                           Compression::kZstd),
                         [](const auto& info) { return CompressionName(info.param); });

TEST_P(CompressionParamTest, RoundTrip) {
  const auto files = SampleFiles();
  const std::string raw = Pack(GetParam(), files);
  for (Mode mode : {Mode::kReadAll, Mode::kSmallReads}) {
    SCOPED_TRACE(mode == Mode::kReadAll ? "ReadAll" : "Read");
    auto back = ReadBytes(raw, mode);
    ASSERT_TRUE(back) << back.error().message;
    EXPECT_EQ(back->compression, GetParam());
    ASSERT_EQ(back->entries.size(), files.size());
    for (std::size_t i = 0; i < files.size(); ++i) {
      SCOPED_TRACE(files[i].path.substr(0, 40));
      EXPECT_EQ(back->entries[i].path, files[i].path);
      EXPECT_EQ(back->entries[i].size, files[i].data.size());
      EXPECT_EQ(back->entries[i].mode, 0644u);
      EXPECT_EQ(back->entries[i].mtime, kMtime);
      EXPECT_TRUE(back->data[i] == files[i].data);
    }
  }
}

// gzip and zstd compress exactly the bytes of the uncompressed archive, framed as documented;
// entry offsets name positions in that tar stream whatever the compression.
TEST_P(CompressionParamTest, TarStreamIsTheSameForEveryCompression) {
  const auto files = SampleFiles();
  const std::string plain = Pack(Compression::kNone, files);
  const std::string raw = Pack(GetParam(), files);
  if (GetParam() == Compression::kGzip) {
    EXPECT_EQ(raw.substr(0, 10), S("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03"));
    EXPECT_TRUE(Gunzip(raw) == plain);
  } else if (GetParam() == Compression::kZstd) {
    ASSERT_GE(raw.size(), 6u);
    EXPECT_EQ(raw.substr(0, 4), S("\x28\xb5\x2f\xfd"));
    const unsigned fhd = static_cast<unsigned char>(raw[4]);
    EXPECT_NE(fhd & 0x04, 0u) << "no content checksum";
    EXPECT_EQ(fhd & 0x03, 0u) << "dictionary id";
    EXPECT_TRUE(Unzstd(raw) == plain);
  }
  auto a = ReadBytes(plain, Mode::kNextOnly);
  auto b = ReadBytes(raw, Mode::kNextOnly);
  ASSERT_TRUE(a && b);
  ASSERT_EQ(a->entries.size(), b->entries.size());
  for (std::size_t i = 0; i < a->entries.size(); ++i) {
    EXPECT_EQ(a->entries[i].header_offset, b->entries[i].header_offset);
    EXPECT_EQ(a->entries[i].data_offset, b->entries[i].data_offset);
  }
}

TEST_P(CompressionParamTest, NextSkipsUnreadData) {
  const auto files = SampleFiles();
  Fd fd = MemFile(Pack(GetParam(), files));
  auto r = Reader::Open(fd.get(), "a.dlsys");
  ASSERT_TRUE(r) << r.error().message;
  std::vector<std::string> seen;
  for (;;) {
    auto e = r->Next();
    ASSERT_TRUE(e) << e.error().message;
    if (!*e) break;
    seen.push_back((*e)->path);
    if ((*e)->path == "model/weights.bin") {  // a few bytes of the big entry
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
  auto again = r->Next();  // after the end
  ASSERT_TRUE(again);
  EXPECT_FALSE(*again);
}

TEST_P(CompressionParamTest, OutputIsDeterministic) {
  const auto files = SampleFiles();
  const std::string a = Pack(GetParam(), files);
  const std::string b = Pack(GetParam(), files);
  ASSERT_FALSE(a.empty());
  EXPECT_TRUE(a == b) << "archives differ";
}

TEST_P(CompressionParamTest, GnuTarListsEntries) {
  TempDir tmp;
  const std::string path = tmp / "a.dlsys";
  const auto files = SampleFiles();
  Spit(path, Pack(GetParam(), files));
  const std::string flag = GetParam() == Compression::kGzip   ? "-z"
                           : GetParam() == Compression::kZstd ? "--zstd"
                                                              : "";
  std::string names;
  ASSERT_EQ(RunCommand("TZ=UTC tar " + flag + " -tf '" + path + "'", &names), 0) << names;
  std::string expected;
  for (const auto& f : files) expected += f.path + "\n";
  EXPECT_EQ(names, expected);

  std::string verbose;
  ASSERT_EQ(RunCommand("TZ=UTC tar " + flag + " -tvf '" + path + "'", &verbose), 0) << verbose;
  EXPECT_HAS(verbose, "-rw-r--r-- 0/0");
  EXPECT_HAS(verbose, "2023-11-14");  // kMtime, 2023-11-14T22:13:20Z
  EXPECT_EQ(verbose.find("warning"), std::string::npos) << verbose;
  EXPECT_EQ(verbose.find("PaxHeader"), std::string::npos) << verbose;
}

TEST_P(CompressionParamTest, LibarchiveReadsTheSameEntries) {
  const auto files = SampleFiles();
  const auto entries = LibarchiveRead(Pack(GetParam(), files));
  ASSERT_EQ(entries.size(), files.size());
  for (std::size_t i = 0; i < files.size(); ++i) {
    SCOPED_TRACE(files[i].path.substr(0, 40));
    const auto& e = entries[i];
    EXPECT_EQ(e.path, files[i].path);
    EXPECT_EQ(e.size, static_cast<std::int64_t>(files[i].data.size()));
    EXPECT_TRUE(e.data == files[i].data);
    EXPECT_EQ(e.type, static_cast<unsigned>(AE_IFREG));
    EXPECT_EQ(e.perm, 0644u);
    EXPECT_EQ(e.mtime, kMtime);
    EXPECT_FALSE(e.atime_set);
    EXPECT_FALSE(e.ctime_set);
    EXPECT_FALSE(e.birthtime_set);
    EXPECT_EQ(e.uid, 0);
    EXPECT_EQ(e.gid, 0);
    EXPECT_EQ(e.uname, "");
    EXPECT_EQ(e.gname, "");
    EXPECT_EQ(e.symlink, "");
    EXPECT_EQ(e.hardlink, "");
  }
}

TEST_P(CompressionParamTest, StreamedEntryMatchesAdd) {
  const std::string data = RandomBytes(5 * kMiB, 3);
  const std::string added = Pack(GetParam(), {{"big.bin", data}, {LongPath(300, 'q'), "tail"}});
  Fd fd = MemFile("");
  auto w = Writer::Open(fd.get(), GetParam(), kMtime);
  ASSERT_TRUE(w);
  ASSERT_TRUE(w->Begin("big.bin", data.size()));
  for (std::size_t off = 0; off < data.size(); off += 1234567) {
    const std::size_t n = std::min<std::size_t>(1234567, data.size() - off);
    ASSERT_TRUE(w->WriteData(Bytes(data).subspan(off, n)));
  }
  ASSERT_TRUE(w->End());
  ASSERT_TRUE(w->Begin(LongPath(300, 'q'), 4));
  ASSERT_TRUE(w->WriteData(Bytes("ta")));
  ASSERT_TRUE(w->WriteData({}));
  ASSERT_TRUE(w->WriteData(Bytes("il")));
  ASSERT_TRUE(w->End());
  ASSERT_TRUE(w->Close());
  EXPECT_TRUE(Contents(fd.get()) == added);
}

TEST_P(CompressionParamTest, EmptyArchiveHasNoEntries) {
  const std::string raw = Pack(GetParam(), {});
  if (GetParam() == Compression::kNone) {
    EXPECT_EQ(raw, kEndMarker);
  }
  auto back = ReadBytes(raw);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_TRUE(back->entries.empty());
  EXPECT_TRUE(LibarchiveRead(raw).empty());
}

// Every proper prefix of an archive is refused, whatever part of a header, pax record, data,
// padding, end marker or compression framing the cut falls in.
TEST_P(CompressionParamTest, EveryTruncationIsInvalid) {
  const std::string raw = Pack(GetParam(), {{"a.txt", RandomBytes(300, 11)},
                                            {LongPath(150, 'l'), RandomBytes(400, 12)},
                                            {"empty", ""},
                                            {"c.bin", RandomBytes(1200, 13)}});
  ASSERT_TRUE(ReadBytes(raw));
  std::vector<Mode> modes = {Mode::kReadAll, Mode::kNextOnly};
  if (GetParam() == Compression::kNone) modes.push_back(Mode::kSkipData);
  for (std::size_t cut = 0; cut < raw.size(); ++cut) {
    for (Mode mode : modes) {
      auto r = ReadBytes(raw.substr(0, cut), mode);
      ASSERT_FALSE(r) << "a prefix of " << cut << " of " << raw.size() << " bytes was accepted";
      ASSERT_EQ(r.error().code, Code::kInvalid) << "cut at " << cut << ": " << r.error().message;
    }
  }
}

TEST_P(CompressionParamTest, AbandonedWriterWritesNothingMore) {
  Fd fd = MemFile("");
  std::uint64_t before = 0;
  {
    auto w = Writer::Open(fd.get(), GetParam(), kMtime);
    ASSERT_TRUE(w);
    ASSERT_TRUE(w->Add("a.bin", Bytes(RandomBytes(100000, 8))));
    ASSERT_TRUE(w->Begin("huge.bin", std::uint64_t{1} << 30));
    ASSERT_TRUE(w->WriteData(Bytes("0123456789")));
    before = FileSize(fd.get());
  }  // dropped mid-entry: no 1 GiB of zero padding, no end marker, no compression trailer
  EXPECT_EQ(FileSize(fd.get()), before);
  EXPECT_LT(before, kMiB);
  ExpectInvalid(ReadBytes(Contents(fd.get()), Mode::kNextOnly), "");
}

TEST_P(CompressionParamTest, WriteErrorIsReported) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  ::close(fds[0]);  // writes now fail with EPIPE
  struct sigaction ignore {
  }, old{};
  ignore.sa_handler = SIG_IGN;
  ASSERT_EQ(::sigaction(SIGPIPE, &ignore, &old), 0);
  {
    auto w = Writer::Open(fds[1], GetParam(), kMtime);
    ASSERT_TRUE(w);
    auto r = w->Add("a", Bytes("x"));
    if (r) r = w->Close();
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Code::kInternal);
    EXPECT_HAS(r.error().message, "Broken pipe");
    auto again = w->Close();  // the writer stays failed
    ASSERT_FALSE(again);
    EXPECT_EQ(again.error().message, r.error().message);
  }
  ::sigaction(SIGPIPE, &old, nullptr);
  ::close(fds[1]);
}

TEST_P(CompressionParamTest, FullDiskIsReported) {
  Fd fd(::open("/dev/full", O_WRONLY | O_CLOEXEC));
  if (fd.get() < 0) GTEST_SKIP() << "no /dev/full";
  auto w = Writer::Open(fd.get(), GetParam(), kMtime);
  ASSERT_TRUE(w);
  auto r = w->Add("a.bin", Bytes(RandomBytes(300000, 9)));
  if (r) r = w->Close();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kInternal);
  EXPECT_HAS(r.error().message, "No space left on device");
  auto again = w->Add("b", Bytes("y"));
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().message, r.error().message);
}

// ============================================================================= reader

TEST(ReaderTest, OffsetsPointIntoTheFile) {
  const auto files = SampleFiles();
  const std::string raw = Pack(Compression::kNone, files);
  auto back = ReadBytes(raw, Mode::kSkipData);
  ASSERT_TRUE(back) << back.error().message;
  ASSERT_EQ(back->entries.size(), files.size());
  std::uint64_t expected_header = 0;
  for (std::size_t i = 0; i < files.size(); ++i) {
    const Entry& e = back->entries[i];
    SCOPED_TRACE(e.path.substr(0, 40));
    const std::string headers = internal::EntryHeaders(e.path, e.size, kMtime);
    EXPECT_EQ(e.header_offset, expected_header);
    EXPECT_EQ(e.data_offset, e.header_offset + headers.size());
    EXPECT_TRUE(raw.compare(e.header_offset, headers.size(), headers) == 0);
    ASSERT_LE(e.data_offset + e.size, raw.size());
    EXPECT_TRUE(raw.compare(e.data_offset, e.size, files[i].data) == 0);
    expected_header = e.data_offset + internal::PaddedSize(e.size);
  }
  // No padding to a 10240-byte record: the end marker closes the file.
  EXPECT_EQ(raw.size(), expected_header + kEndMarker.size());
  EXPECT_EQ(raw.substr(raw.size() - kEndMarker.size()), kEndMarker);
}

TEST(ReaderTest, ReadAllLimit) {
  Fd fd = MemFile(Pack(Compression::kNone, {{"big.bin", std::string(5000, 'x')}}));
  auto r = Reader::Open(fd.get(), "a.dlsys");
  ASSERT_TRUE(r);
  auto e = r->Next();
  ASSERT_TRUE(e && *e);
  ExpectInvalid(r->ReadAll(4999), "entry 'big.bin' is 5000 bytes, more than the limit of 4999");
  auto all = r->ReadAll(5000);  // the refusal consumed nothing
  ASSERT_TRUE(all) << all.error().message;
  EXPECT_EQ(*all, std::string(5000, 'x'));
}

TEST(ReaderTest, MaxEntriesLimit) {
  const std::string raw = Pack(Compression::kNone, {{"a", "1"}, {"b", "2"}, {"c", "3"}});
  Limits limits;
  limits.max_entries = 2;
  ExpectRefused(ReadBytes(raw, Mode::kNextOnly, limits), "more than 2 entries");
  limits.max_entries = 3;
  EXPECT_TRUE(ReadBytes(raw, Mode::kNextOnly, limits));
}

TEST(ReaderTest, MaxEntryBytesLimit) {
  const std::string raw = Pack(Compression::kGzip, {{"a.bin", std::string(2000, 'x')}});
  Limits limits;
  limits.max_entry_bytes = 1999;
  ExpectRefused(ReadBytes(raw, Mode::kNextOnly, limits),
                "entry 'a.bin' at offset 0 of the tar stream declares 2000 bytes, more than the "
                "limit of 1999");
  limits.max_entry_bytes = 2000;
  EXPECT_TRUE(ReadBytes(raw, Mode::kNextOnly, limits));
}

// A header declaring 2^50 bytes (a pax size record) and no data behind it.
TEST(ReaderTest, HugeDeclaredSize) {
  const std::string raw = internal::EntryHeaders("big.bin", std::uint64_t{1} << 50, kMtime) +
                          "small" + Padding(5) + kEndMarker;
  ExpectRefused(ReadBytes(raw, Mode::kNextOnly),
                "entry 'big.bin' at offset 0 declares 1125899906842624 bytes, more than the "
                "limit of 1099511627776");

  Limits limits;
  limits.max_entry_bytes = ~std::uint64_t{0};
  Fd fd = MemFile(raw);
  auto r = Reader::Open(fd.get(), "h.tar", limits);
  ASSERT_TRUE(r) << r.error().message;
  auto e = r->Next();
  ASSERT_TRUE(e && *e) << (e ? "" : e.error().message);
  EXPECT_EQ((*e)->size, std::uint64_t{1} << 50);
  ExpectInvalid(r->ReadAll(kMiB), "more than the limit of 1048576");  // before allocating
  std::vector<std::byte> buf(1 << 16);
  Result<std::size_t> n;
  do {
    n = r->Read(buf);
  } while (n && *n > 0);
  ExpectInvalid(n, "truncated");
  for (Mode mode : {Mode::kNextOnly, Mode::kSkipData}) {
    ExpectInvalid(ReadBytes(raw, mode, limits), "truncated");
  }
}

TEST(ReaderTest, ReadWithoutEntryIsUsageError) {
  Fd fd = MemFile(Pack(Compression::kNone, {{"a", "1"}}));
  auto r = Reader::Open(fd.get(), "a.dlsys");
  ASSERT_TRUE(r);
  std::byte buf[4];
  auto n = r->Read(buf);
  ASSERT_FALSE(n);
  EXPECT_EQ(n.error().code, Code::kUsage);
  auto all = r->ReadAll(10);
  ASSERT_FALSE(all);
  EXPECT_EQ(all.error().code, Code::kUsage);
}

TEST(ReaderTest, SkipDataNeedsAnUncompressedArchive) {
  for (Compression c : {Compression::kGzip, Compression::kZstd}) {
    SCOPED_TRACE(CompressionName(c));
    Fd fd = MemFile(Pack(c, {{"a", "1"}}));
    auto r = Reader::Open(fd.get(), "a.dlsys");
    ASSERT_TRUE(r);
    ASSERT_TRUE(r->Next());
    auto s = r->SkipData();
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().code, Code::kUsage);
  }
}

// The reader uses pread: the caller's file offset stays where it was.
TEST(ReaderTest, LeavesTheFileOffsetAlone) {
  Fd fd = MemFile(Pack(Compression::kNone, {{"a", "1"}, {"b", "22"}}));
  ASSERT_EQ(::lseek(fd.get(), 7, SEEK_SET), 7);
  auto back = Reader::Open(fd.get(), "a.dlsys");
  ASSERT_TRUE(back);
  for (;;) {
    auto e = back->Next();
    ASSERT_TRUE(e) << e.error().message;
    if (!*e) break;
  }
  EXPECT_EQ(::lseek(fd.get(), 0, SEEK_CUR), 7);
}

TEST(ReaderTest, ErrorIsSticky) {
  std::string raw = RawEntry("link", "") + RawEntry("ok", "1") + kEndMarker;
  raw[156] = '2';
  FixChecksum(raw, 0);
  Fd fd = MemFile(raw);
  auto r = Reader::Open(fd.get(), "h.tar");
  ASSERT_TRUE(r);
  ExpectRefused(r->Next(), "symbolic link");
  ExpectRefused(r->Next(), "symbolic link");
}

TEST(ReaderTest, NotATarFile) {
  ExpectRefused(ReadBytes(std::string(4096, 'z')), "offset 0");
  ExpectRefused(ReadBytes("hello"), "ends at offset 0 without an end-of-archive marker");
  ExpectRefused(ReadBytes(Gzip(std::string(100000, 'q'))), "offset 0 of the tar stream");
  ExpectRefused(ReadBytes(Zstd(std::string(100000, 'q'))), "offset 0 of the tar stream");
  ExpectInvalid(ReadBytes(""), "'test.dlsys' is not a dlsys archive (empty file)");
}

TEST(ReaderTest, DirectoryIsInvalid) {
  TempDir tmp;
  Fd fd(::open(tmp.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ASSERT_GE(fd.get(), 0);
  ExpectInvalid(Reader::Open(fd.get(), "dir"), "cannot read 'dir'");
}

// The reader keeps no per-entry state: repeated paths are the caller's to refuse (verify
// checks the entries against the manifest's sorted file list).
TEST(ReaderTest, RepeatedPathsAreReportedAsTheyCome) {
  auto back = ReadBytes(RawEntry("a", "1") + RawEntry("a", "2") + kEndMarker);
  ASSERT_TRUE(back) << back.error().message;
  ASSERT_EQ(back->entries.size(), 2u);
  EXPECT_EQ(back->data[0], "1");
  EXPECT_EQ(back->data[1], "2");
}

// ============================================================================= writer

class WriterTest : public ::testing::Test {
 protected:
  Fd fd_ = MemFile("");
};

TEST_F(WriterTest, OpenRejectsBadArguments) {
  for (std::int64_t mtime : {std::int64_t{-1}, kMaxMtime + 1}) {
    auto w = Writer::Open(fd_.get(), Compression::kNone, mtime);
    ASSERT_FALSE(w);
    EXPECT_EQ(w.error().code, Code::kUsage);
    EXPECT_HAS(w.error().message, std::to_string(mtime));
  }
  auto w = Writer::Open(-1, Compression::kNone, kMtime);
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().code, Code::kUsage);
  EXPECT_EQ(FileSize(fd_.get()), 0u);
}

TEST_F(WriterTest, ExtremeMtimesRoundTrip) {
  for (std::int64_t mtime : {std::int64_t{0}, kMaxMtime}) {
    SCOPED_TRACE(mtime);
    const std::string raw = Pack(Compression::kNone, {{"a", "1"}}, mtime);
    auto back = ReadBytes(raw);
    ASSERT_TRUE(back) << back.error().message;
    ASSERT_EQ(back->entries.size(), 1u);
    EXPECT_EQ(back->entries[0].mtime, mtime);
    const auto la = LibarchiveRead(raw);
    ASSERT_EQ(la.size(), 1u);
    EXPECT_EQ(la[0].mtime, mtime);
  }
}

TEST_F(WriterTest, EndWithTooFewBytesFails) {
  auto w = Writer::Open(fd_.get(), Compression::kNone, kMtime);
  ASSERT_TRUE(w);
  ASSERT_TRUE(w->Begin("a.bin", 10));
  ASSERT_TRUE(w->WriteData(Bytes("12345")));
  ExpectInvalid(w->End(), "entry 'a.bin' was declared as 10 bytes but 5 were written");
  // The writer stays failed: no archive can be completed from here.
  ExpectInvalid(w->Add("b", Bytes("x")), "was declared as 10 bytes");
  ExpectInvalid(w->Close(), "was declared as 10 bytes");
}

TEST_F(WriterTest, WriteDataBeyondSizeFails) {
  auto w = Writer::Open(fd_.get(), Compression::kGzip, kMtime);
  ASSERT_TRUE(w);
  ASSERT_TRUE(w->Begin("a.bin", 4));
  ExpectInvalid(w->WriteData(Bytes("12345")), "declared as 4 bytes but more data");
  ExpectInvalid(w->Close(), "declared as 4 bytes but more data");
}

TEST_F(WriterTest, RejectsBadPathsAndDuplicates) {
  auto w = Writer::Open(fd_.get(), Compression::kNone, kMtime);
  ASSERT_TRUE(w);
  ExpectInvalid(w->Add("/etc/passwd", Bytes("x")), "is absolute");
  ExpectInvalid(w->Begin("a/../b", 1), "contains '..'");
  ExpectInvalid(w->Add("mod\xc3\xa8le.pt", Bytes("x")), "non-ASCII");
  ExpectInvalid(w->Add(std::string(kMaxPathBytes + 1, 'x'), Bytes("x")), "more than the limit");
  ASSERT_TRUE(w->Add("a", Bytes("x")));
  ExpectInvalid(w->Add("a", Bytes("y")), "entry 'a' appears twice");
  // Rejected paths leave the writer usable and write nothing.
  ASSERT_TRUE(w->Add("b", Bytes("y")));
  ASSERT_TRUE(w->Close());
  EXPECT_TRUE(Contents(fd_.get()) == RawEntry("a", "x") + RawEntry("b", "y") + kEndMarker);
}

TEST_F(WriterTest, MisuseIsUsageError) {
  auto w = Writer::Open(fd_.get(), Compression::kNone, kMtime);
  ASSERT_TRUE(w);
  for (auto r : {w->WriteData(Bytes("x")), w->End()}) {
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Code::kUsage);
  }
  ASSERT_TRUE(w->Begin("a", 1));
  for (auto r : {w->Close(), w->Begin("b", 1), w->Add("c", Bytes("z"))}) {
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Code::kUsage);
  }
  ASSERT_TRUE(w->WriteData(Bytes("x")));  // misuse did not poison the writer
  ASSERT_TRUE(w->End());
  ASSERT_TRUE(w->Close());
  for (auto r : {w->Close(), w->Add("d", Bytes("z"))}) {
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Code::kUsage);
    EXPECT_HAS(r.error().message, "after Close()");
  }
  EXPECT_TRUE(Contents(fd_.get()) == RawEntry("a", "x") + kEndMarker);
}

// ============================================================================= tar encoding

TEST(TarFormatTest, HeaderBlockLayout) {
  const std::string h = internal::EntryHeaderBlock("a.txt", 5, kMtime);
  ASSERT_EQ(h.size(), kBlock);
  EXPECT_EQ(h.substr(0, 100), "a.txt" + std::string(95, '\0'));
  EXPECT_EQ(h.substr(100, 8), S("0000644\0"));
  EXPECT_EQ(h.substr(108, 8), S("0000000\0"));
  EXPECT_EQ(h.substr(116, 8), S("0000000\0"));
  EXPECT_EQ(h.substr(124, 12), S("00000000005\0"));
  EXPECT_EQ(h.substr(136, 12), S("14524770400\0"));  // 1700000000
  EXPECT_EQ(h[156], '0');
  EXPECT_EQ(h.substr(257, 8), S("ustar\0"
                                "00"));
  EXPECT_TRUE(AllZero(h.substr(329, 16)));  // devmajor, devminor: NUL, as Python writes them
  std::string fixed = h;
  FixChecksum(fixed, 0);
  EXPECT_EQ(fixed, h) << "checksum is not \"%06o\\0 \"";
  EXPECT_TRUE(AllZero(h.substr(157, 100)));  // linkname
  EXPECT_TRUE(AllZero(h.substr(265, 64)));   // uname, gname
  EXPECT_TRUE(AllZero(h.substr(345, 167)));  // prefix, padding
  EXPECT_EQ(internal::EntryHeaders("a.txt", 5, kMtime), h);

  const std::string pax = internal::PaxHeaderBlock(19);
  EXPECT_EQ(pax.substr(0, 100), "././@PaxHeader" + std::string(86, '\0'));
  EXPECT_EQ(pax.substr(100, 8), S("0000000\0"));
  EXPECT_EQ(pax.substr(124, 24), S("00000000023\0"
                                   "00000000000\0"));
  EXPECT_EQ(pax[156], 'x');
}

TEST(TarFormatTest, EightGiBSizeGoesToAPaxRecord) {
  const std::string largest = internal::EntryHeaders("big.bin", kEightGiB - 1, kMtime);
  ASSERT_EQ(largest.size(), kBlock);
  EXPECT_EQ(largest.substr(124, 12), S("77777777777\0"));

  const std::string h = internal::EntryHeaders("big.bin", kEightGiB, kMtime);
  ASSERT_EQ(h.size(), 3 * kBlock);
  EXPECT_EQ(h.substr(0, kBlock), internal::PaxHeaderBlock(19));
  EXPECT_EQ(h.substr(kBlock, 19), "19 size=8589934592\n");
  EXPECT_EQ(h.substr(kBlock, 19), PaxRecord("size", "8589934592"));
  EXPECT_TRUE(AllZero(h.substr(kBlock + 19, kBlock - 19)));
  EXPECT_EQ(h.substr(2 * kBlock + 124, 12), S("00000000000\0"));
  EXPECT_EQ(h.substr(2 * kBlock), internal::EntryHeaderBlock("big.bin", kEightGiB, kMtime));

  // Path and size records together, in that order.
  const std::string both = internal::PaxRecords(LongPath(200, 'b'), kEightGiB);
  EXPECT_EQ(both, PaxRecord("path", LongPath(200, 'b')) + PaxRecord("size", "8589934592"));
}

// The record length counts its own digits: check every path length (3 digits up to a
// 989-byte path, 4 from 990).
TEST(TarFormatTest, PaxRecordLengthsForEveryPathLength) {
  for (std::size_t n = 1; n <= kMaxPathBytes; ++n) {
    const std::string path = LongPath(std::max<std::size_t>(n, 2), 'r');
    const std::string records = internal::PaxRecords(path, 0);
    if (path.size() <= internal::kNameBytes) {
      EXPECT_EQ(records, "") << n;
      continue;
    }
    ASSERT_EQ(records, PaxRecord("path", path)) << n;
    auto parsed = internal::ParsePaxRecords(records, "at offset 0");
    ASSERT_TRUE(parsed) << parsed.error().message;
    EXPECT_EQ(parsed->path, path);
  }
  // Round trips at the lengths where the record length gains a digit.
  for (std::size_t n : {101, 988, 989, 990, 991, 1024}) {
    SCOPED_TRACE(n);
    auto back = ReadBytes(Pack(Compression::kNone, {{LongPath(n, 'k'), "v"}}));
    ASSERT_TRUE(back) << back.error().message;
    ASSERT_EQ(back->entries.size(), 1u);
    EXPECT_EQ(back->entries[0].path, LongPath(n, 'k'));
  }
}

// An 8 GiB entry in a sparse file: the size record is read back and the data skipped, by the
// reader and by libarchive, without writing 8 GiB.
TEST(TarFormatTest, EightGiBEntryIsReadBack) {
  TempDir tmp;
  const std::string path = tmp / "big.tar";
  const std::string headers = internal::EntryHeaders("big.bin", kEightGiB, kMtime);
  Spit(path, headers);
  {
    Fd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
    ASSERT_GE(fd.get(), 0);
    const auto end = static_cast<off_t>(headers.size() + kEightGiB + kEndMarker.size());
    ASSERT_EQ(::ftruncate(fd.get(), end), 0);
    auto r = Reader::Open(fd.get(), "big.tar");
    ASSERT_TRUE(r);
    auto e = r->Next();
    ASSERT_TRUE(e && *e) << (e ? "" : e.error().message);
    EXPECT_EQ((*e)->size, kEightGiB);
    EXPECT_EQ((*e)->data_offset, headers.size());
    ASSERT_TRUE(r->SkipData());
    auto end_of_archive = r->Next();
    ASSERT_TRUE(end_of_archive) << end_of_archive.error().message;
    EXPECT_FALSE(*end_of_archive);
  }
  struct archive* a = archive_read_new();
  archive_read_support_format_tar(a);
  ASSERT_EQ(archive_read_open_filename(a, path.c_str(), 10240), ARCHIVE_OK);
  struct archive_entry* e;
  ASSERT_EQ(archive_read_next_header(a, &e), ARCHIVE_OK) << archive_error_string(a);
  EXPECT_STREQ(archive_entry_pathname(e), "big.bin");
  EXPECT_EQ(archive_entry_size(e), static_cast<la_int64_t>(kEightGiB));
  EXPECT_EQ(archive_read_next_header(a, &e), ARCHIVE_EOF) << archive_error_string(a);
  archive_read_free(a);

  // The writer emits the same header bytes for a streamed 8 GiB entry.
  Fd out = MemFile("");
  auto w = Writer::Open(out.get(), Compression::kNone, kMtime);
  ASSERT_TRUE(w);
  ASSERT_TRUE(w->Begin("big.bin", kEightGiB));
  EXPECT_TRUE(Contents(out.get()) == headers);
}

// ============================================================================= canonical form

// One entry "a.txt" holding "hello" and the end marker, with `bytes` written over its header
// at `offset`; `fix_checksum` recomputes the checksum as every tar writer would.
std::string EditedHeader(std::size_t offset, const std::string& bytes, bool fix_checksum) {
  std::string raw = RawEntry("a.txt", "hello") + kEndMarker;
  raw.replace(offset, bytes.size(), bytes);
  if (fix_checksum) FixChecksum(raw, 0);
  return raw;
}

struct FieldCase {
  const char* name;
  std::size_t offset;
  std::string bytes;
  bool fix_checksum;
  const char* phrase;
};

void PrintTo(const FieldCase& c, std::ostream* os) {
  *os << c.name << " at " << c.offset
      << (c.fix_checksum ? " (valid checksum)" : " (stale checksum)");
}

class HeaderFieldTest : public ::testing::TestWithParam<FieldCase> {};

TEST_P(HeaderFieldTest, IsRefused) {
  const FieldCase& c = GetParam();
  ExpectRefused(ReadBytes(EditedHeader(c.offset, c.bytes, c.fix_checksum)), c.phrase);
}

// Fields before the checksum are named whatever the checksum says. Fields after it are tried
// twice: with a stale checksum (only that field differs from the canonical block) and with a
// valid one (what another tar writer produces).
std::vector<FieldCase> HeaderFieldCases() {
  std::vector<FieldCase> cases = {
      {"mode_setuid", 100, S("0004755\0"), true, "header field 'mode'"},
      {"mode_junk", 100, S("rw-r--r\0"), true, "header field 'mode'"},
      {"mode_nuls", 100, std::string(8, '\0'), true, "header field 'mode'"},
      {"mode_old_gnu_digits", 100, S("000644 \0"), true, "header field 'mode'"},
      {"uid", 108, S("0001750\0"), true, "header field 'uid'"},
      {"gid", 116, S("0001750\0"), true, "header field 'gid'"},
      {"name_junk_after_nul", 6, "junk", true, "header field 'name'"},
      {"size_space_terminated", 124, S("00000000005 "), true, "header field 'size'"},
      {"size_base256", 124, S("\x80\0\0\0\0\0\0\0\0\0\0\x05"), true, "header field 'size'"},
      {"mtime_junk", 136, S("1234567890z\0"), true, "header field 'mtime'"},
      {"chksum_zeroed", 148, S("000000\0 "), false, "header field 'chksum'"},
      {"chksum_without_space", 155, S("\0"), false, "header field 'chksum'"},
  };
  const std::vector<FieldCase> after_checksum = {
      {"linkname", 157, "target", false, "header field 'linkname'"},
      {"magic_old_gnu", 257, S("ustar  \0"), false, "header field 'magic'"},
      {"version", 263, S("\0\0"), false, "header field 'version'"},
      {"uname", 265, "root", false, "header field 'uname'"},
      {"gname", 297, "root", false, "header field 'gname'"},
      {"devmajor", 329, S("0000000\0"), false, "header field 'devmajor'"},
      {"devminor", 337, S("0000000\0"), false, "header field 'devminor'"},
      {"prefix", 345, "dir", false, "header field 'prefix'"},
      {"trailing_pad", 500, "x", false, "header field 'padding'"},
  };
  for (FieldCase c : after_checksum) {
    cases.push_back(c);
    c.fix_checksum = true;
    cases.push_back(c);
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Canonical, HeaderFieldTest, ::testing::ValuesIn(HeaderFieldCases()),
                         [](const auto& info) {
                           return std::string(info.param.name) +
                                  (info.param.fix_checksum ? "_valid_checksum" : "_stale_checksum");
                         });

// The same checksum value written "%07o\0" (as some tar writers do) is not the canonical form.
TEST(CanonicalTest, ChecksumWithSevenDigits) {
  std::string raw = RawEntry("a.txt", "hello") + kEndMarker;
  const std::string digits = raw.substr(148, 6);
  raw.replace(148, 8, "0" + digits + S("\0"));
  ExpectRefused(ReadBytes(raw), "header field 'chksum'");
}

TEST(CanonicalTest, TypeFlags) {
  const std::vector<std::pair<char, std::string>> cases = {
      {'g', "pax global header"},  {'L', "GNU long name"},
      {'K', "GNU long link name"}, {'S', "sparse"},
      {'1', "hard link"},          {'2', "symbolic link"},
      {'3', "character device"},   {'4', "block device"},
      {'5', "directory"},          {'6', "FIFO"},
      {'7', "contiguous file"},    {'\0', "old-style regular file"},
      {'A', "unknown entry type"},
  };
  for (const auto& [type, phrase] : cases) {
    SCOPED_TRACE(std::string("type ") + (type ? std::string(1, type) : "\\0"));
    ExpectRefused(ReadBytes(EditedHeader(156, std::string(1, type), true)), phrase);
  }
}

TEST(CanonicalTest, PaxRecordsOtherThanPathAndSize) {
  const std::string block = internal::EntryHeaderBlock("a.txt", 5, kMtime);
  const std::string data = "hello" + Padding(5) + kEndMarker;
  for (const auto& [key, value] :
       std::vector<std::pair<std::string, std::string>>{{"SCHILY.xattr.user.a", "b"},
                                                        {"LIBARCHIVE.creationtime", "1700000000"},
                                                        {"GNU.sparse.map", "0,5"},
                                                        {"mtime", "1700000000.5"},
                                                        {"atime", "1700000000"},
                                                        {"uname", "root"},
                                                        {"linkpath", "x"}}) {
    SCOPED_TRACE(key);
    auto r = ReadBytes(PaxHeader(PaxRecord(key, value)) + block + data);
    ExpectRefused(r, "is not one dlsys writes");
    ExpectRefused(r, key);
  }
  // An extra record after a legitimate path record.
  const std::string long_path = LongPath(150, 'x');
  ExpectRefused(ReadBytes(PaxHeader(PaxRecord("path", long_path) + PaxRecord("atime", "1")) +
                          internal::EntryHeaderBlock(long_path, 5, kMtime) + data),
                "pax record 'atime' at offset 0 is not one dlsys writes");
}

TEST(CanonicalTest, MalformedPaxRecords) {
  const std::string block = internal::EntryHeaderBlock(LongPath(150, 'x'), 0, kMtime);
  const std::string path = PaxRecord("path", LongPath(150, 'x'));
  for (const auto& [records, phrase] : std::vector<std::pair<std::string, std::string>>{
           {"157 path=" + LongPath(150, 'x') + "\n", "malformed record"},  // length off by one
           {"0" + path, "malformed record"},
           {path.substr(0, path.size() - 1) + " ", "malformed record"},
           {"8 pathx\n", "without '='"},
           {PaxRecord("size", "12") + path, "out of order"},
           {path + path, "repeated"},
           {PaxRecord("size", "012"), "not a decimal size"},
       }) {
    SCOPED_TRACE(records.substr(0, 20));
    ExpectRefused(ReadBytes(PaxHeader(records) + block + kEndMarker), phrase);
  }
}

TEST(CanonicalTest, PaxPathThatFitsTheNameField) {
  for (std::size_t n : {5, 100}) {
    const std::string path = n == 5 ? "a.txt" : LongPath(100, 'f');
    ExpectRefused(
        ReadBytes(PaxHeader(PaxRecord("path", path)) + internal::EntryHeaderBlock(path, 5, kMtime) +
                  "hello" + Padding(5) + kEndMarker),
        "fits the ustar name field");
  }
}

TEST(CanonicalTest, PaxSizeThatFitsTheSizeField) {
  ExpectRefused(
      ReadBytes(PaxHeader(PaxRecord("size", "5")) + internal::EntryHeaderBlock("a.txt", 0, kMtime) +
                "hello" + Padding(5) + kEndMarker),
      "fits the ustar size field");
}

TEST(CanonicalTest, PaxPathDifferentFromTheNameField) {
  const std::string path = LongPath(150, 'p');
  const std::string other = LongPath(150, 'q');
  const std::string raw = PaxHeader(PaxRecord("path", path)) +
                          internal::EntryHeaderBlock(other, 1, kMtime) + "x" + Padding(1) +
                          kEndMarker;
  ExpectRefused(ReadBytes(raw), "header field 'name' at offset 1024 is");
  // The ustar name holds the first 100 bytes of the path: a difference after them is the
  // path record's business, and the record wins.
  const std::string same_start = path.substr(0, 100) + std::string(50, 'z');
  auto back =
      ReadBytes(PaxHeader(PaxRecord("path", same_start)) +
                internal::EntryHeaderBlock(path, 1, kMtime) + "x" + Padding(1) + kEndMarker);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->entries[0].path, same_start);
}

TEST(CanonicalTest, PaxHeaderBlockIsCanonical) {
  const std::string path = LongPath(150, 'p');
  const std::string good = RawEntry(path, "x") + kEndMarker;
  ASSERT_TRUE(ReadBytes(good));
  std::string mode = good;
  mode.replace(100, 8, S("0000644\0"));
  FixChecksum(mode, 0);
  ExpectRefused(ReadBytes(mode), "header field 'mode' at offset 100");
  std::string name = good;
  name.replace(0, 100, std::string("./PaxHeaders/x") + std::string(86, '\0'));
  FixChecksum(name, 0);
  ExpectRefused(ReadBytes(name), "header field 'name' at offset 0");
  std::string padding = good;
  padding[kBlock + 200] = '\n';  // inside the zero padding of the records
  ExpectRefused(ReadBytes(padding), "pax records");
}

TEST(CanonicalTest, TwoPaxHeadersInARow) {
  const std::string path = LongPath(150, 'p');
  const std::string pax = PaxHeader(PaxRecord("path", path));
  ExpectRefused(ReadBytes(pax + pax + internal::EntryHeaderBlock(path, 1, kMtime) + "x" +
                          Padding(1) + kEndMarker),
                "followed by a pax extended header");
  std::string global = internal::PaxHeaderBlock(10);
  global[156] = 'g';
  FixChecksum(global, 0);
  ExpectRefused(
      ReadBytes(pax + global + std::string(kBlock, '\0') +
                internal::EntryHeaderBlock(path, 1, kMtime) + "x" + Padding(1) + kEndMarker),
      "followed by a pax global header");
}

TEST(CanonicalTest, NonZeroDataPadding) {
  std::string raw = RawEntry("a.txt", "hello") + RawEntry("b", "1") + kEndMarker;
  raw[kBlock + 5 + 10] = 'x';
  for (Mode mode : {Mode::kReadAll, Mode::kNextOnly, Mode::kSkipData}) {
    ExpectRefused(ReadBytes(raw, mode), "padding after entry 'a.txt' at offset 517");
  }
  // The last entry's padding is checked too.
  std::string last = RawEntry("a.txt", "hello") + kEndMarker;
  last[kBlock + kBlock - 1] = '\x01';
  ExpectRefused(ReadBytes(last), "padding");
}

TEST(CanonicalTest, LoneZeroBlock) {
  const std::string entry = RawEntry("a.txt", "hello");
  ExpectRefused(ReadBytes(entry + std::string(kBlock, '\0')), "lone zero block");
  ExpectRefused(ReadBytes(std::string(kBlock, '\0')), "lone zero block at offset 0");
  ExpectRefused(ReadBytes(entry + std::string(kBlock + 100, '\0')), "lone zero block");
}

TEST(CanonicalTest, ZeroBlockFollowedByData) {
  const std::string raw =
      RawEntry("a.txt", "hello") + std::string(kBlock, '\0') + RawEntry("b", "1") + kEndMarker;
  ExpectRefused(ReadBytes(raw), "zero block at offset 1024 is followed by data");
}

TEST(CanonicalTest, TrailingDataPlain) {
  const std::string raw = Pack(Compression::kNone, {{"a.txt", "hello"}});
  ASSERT_TRUE(ReadBytes(raw));
  for (const std::string& tail : {std::string("x"), std::string(1, '\0'), std::string(kBlock, '\0'),
                                  std::string(10240 - raw.size(), '\0')}) {  // a tar record
    SCOPED_TRACE(tail.size());
    for (Mode mode : {Mode::kReadAll, Mode::kSkipData}) {
      ExpectRefused(ReadBytes(raw + tail, mode),
                    "trailing data after the end-of-archive marker at offset 2048");
    }
  }
}

TEST(CanonicalTest, TrailingDataGzip) {
  const std::string tar = Pack(Compression::kNone, {{"a.txt", "hello"}});
  const std::string gz = Pack(Compression::kGzip, {{"a.txt", "hello"}});
  ASSERT_TRUE(Gzip(tar) == gz) << "the test's gzip framing differs from the writer's";
  ExpectRefused(ReadBytes(Gzip(tar + std::string(kBlock, '\0'))),
                "trailing data after the end-of-archive marker at offset 2048 of the tar stream "
                "(inside the gzip stream)");
  ExpectRefused(ReadBytes(Gzip(tar + "x")), "inside the gzip stream");
  ExpectRefused(ReadBytes(gz + Gzip("x")),
                "trailing data after the gzip stream at file offset " + std::to_string(gz.size()));
  ExpectRefused(ReadBytes(gz + gz), "a second gzip member");
  ExpectRefused(ReadBytes(gz + "garbage"), "trailing data after the gzip stream");
  ExpectRefused(ReadBytes(gz + std::string(1, '\0')), "trailing data after the gzip stream");
}

TEST(CanonicalTest, TrailingDataZstd) {
  const std::string tar = Pack(Compression::kNone, {{"a.txt", "hello"}});
  const std::string zst = Pack(Compression::kZstd, {{"a.txt", "hello"}});
  ASSERT_TRUE(ReadBytes(Zstd(tar))) << "the test's zstd framing is refused";
  ExpectRefused(ReadBytes(Zstd(tar + std::string(kBlock, '\0'))),
                "trailing data after the end-of-archive marker at offset 2048 of the tar stream "
                "(inside the zstd frame)");
  ExpectRefused(ReadBytes(zst + Zstd("x")),
                "trailing data after the zstd frame at file offset " + std::to_string(zst.size()));
  ExpectRefused(ReadBytes(zst + zst), "trailing data after the zstd frame");
  ExpectRefused(ReadBytes(zst + SkippableFrame("meta")),
                "a zstd skippable frame after the zstd frame at file offset");
  ExpectRefused(ReadBytes(SkippableFrame("meta") + zst), "a zstd skippable frame at offset 0");
  ExpectRefused(ReadBytes(zst + "garbage"), "trailing data after the zstd frame");
}

TEST(CanonicalTest, GzipHeaderVariants) {
  const std::string tar = Pack(Compression::kNone, {{"a.txt", "hello"}});
  const std::string gz = Gzip(tar);
  {
    SCOPED_TRACE("FNAME");
    gz_header h{};
    h.name = reinterpret_cast<Bytef*>(const_cast<char*>("a.tar"));
    h.os = 3;
    GzipStream s(6, &h);
    s.Add(tar);
    const std::string named = s.Finish();
    ASSERT_EQ(named[3], 0x08);
    ExpectRefused(ReadBytes(named), "gzip header at offset 0");
  }
  {
    SCOPED_TRACE("mtime");
    std::string stamped = gz;
    stamped[4] = 0x5a;
    ExpectRefused(ReadBytes(stamped), "gzip header at offset 0");
  }
  {
    SCOPED_TRACE("XFL 2");
    std::string xfl = gz;
    xfl[8] = 2;
    ExpectRefused(ReadBytes(xfl), "gzip header at offset 0");
    GzipStream best(9);  // what zlib writes at level 9
    best.Add(tar);
    const std::string level9 = best.Finish();
    ASSERT_EQ(level9[8], 2);
    ExpectRefused(ReadBytes(level9), "gzip header at offset 0");
  }
  {
    SCOPED_TRACE("OS");
    std::string os = gz;
    os[9] = 0;
    ExpectRefused(ReadBytes(os), "gzip header at offset 0");
  }
}

TEST(CanonicalTest, ZstdFrameHeaderVariants) {
  const std::string tar = Pack(Compression::kNone, {{"a.txt", "hello"}});
  ExpectRefused(ReadBytes(Zstd(tar, /*checksum=*/false)), "zstd frame header at offset 4");
  // A one-byte dictionary id after the window descriptor.
  std::string dict = Zstd(tar);
  ASSERT_EQ(dict[4] & 0x23, 0) << "expected a frame without dictionary id or single segment";
  dict[4] = static_cast<char>(dict[4] | 0x01);
  dict.insert(6, 1, '\x07');
  ExpectRefused(ReadBytes(dict), "zstd frame header at offset 4");
  // A frame with a content size (one-shot compression) is a different but valid header.
  std::string one_shot(ZSTD_compressBound(tar.size()), '\0');
  ZSTD_CCtx* c = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1);
  one_shot.resize(ZSTD_compress2(c, one_shot.data(), one_shot.size(), tar.data(), tar.size()));
  ZSTD_freeCCtx(c);
  EXPECT_TRUE(ReadBytes(one_shot)) << "single-segment frame";
  // A window beyond 8 MiB.
  ExpectInvalid(ReadBytes(Zstd(tar, true, 24)), "window");
}

TEST(CanonicalTest, UnsafePathsInHeaders) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "is empty"},
      {"/etc/passwd", "entry path '/etc/passwd' is absolute"},
      {"a/../../b", "contains '..'"},
      {"./a", "contains '.'"},
      {"a//b", "has an empty component"},
      {"a/", "ends with '/'"},
      {"a\\b", "contains a backslash"},
      {"a\x01"
       "b",
       "contains a control character"},
      {"mod\xe8le.pt", "non-ASCII"},
      {"../" + std::string(150, 'u'), "contains '..'"},
      {std::string(kMaxPathBytes + 1, 'v'), "more than the limit of 1024"},
  };
  for (const auto& [path, phrase] : cases) {
    SCOPED_TRACE(path.substr(0, 20));
    ExpectRefused(ReadBytes(RawEntry(path, "x") + kEndMarker), "unsafe entry at offset 0");
    ExpectRefused(ReadBytes(RawEntry("ok", "1") + RawEntry(path, "x") + kEndMarker), phrase);
  }
}

// Any single changed byte outside entry data is refused. (Bytes of a pax path past the
// first 100 are data too: they name a different, equally canonical entry.)
TEST(CanonicalTest, EveryChangedByteOutsideDataIsRefused) {
  const std::vector<File> files = {
      {"a.txt", "hello"}, {LongPath(150, 'l'), RandomBytes(600, 21)}, {"empty", ""}};
  const std::string raw = Pack(Compression::kNone, files);
  std::vector<bool> free_bytes(raw.size(), false);
  std::uint64_t off = 0;
  for (const auto& f : files) {
    const std::string headers = internal::EntryHeaders(f.path, f.data.size(), kMtime);
    const std::string records = internal::PaxRecords(f.path, f.data.size());
    if (!records.empty()) {
      const std::size_t value = off + kBlock + records.find("path=") + 5;
      for (std::size_t i = value + internal::kNameBytes; i < value + f.path.size(); ++i) {
        free_bytes[i] = true;
      }
    }
    off += headers.size();
    for (std::size_t i = 0; i < f.data.size(); ++i) free_bytes[off + i] = true;
    off += internal::PaddedSize(f.data.size());
  }
  ASSERT_EQ(off + kEndMarker.size(), raw.size());
  std::size_t tried = 0;
  for (std::size_t i = 0; i < raw.size(); ++i) {
    if (free_bytes[i]) continue;
    for (unsigned char flip : {0x01, 0x20, 0x80}) {
      std::string bad = raw;
      bad[i] = static_cast<char>(bad[i] ^ flip);
      auto r = ReadBytes(bad);
      ASSERT_FALSE(r) << "byte " << i << " ^ " << int{flip} << " was accepted";
      ASSERT_EQ(r.error().code, Code::kInvalid) << r.error().message;
      ++tried;
    }
  }
  EXPECT_GT(tried, 3 * 4000u);
}

TEST(CanonicalTest, ArchivesOfOtherToolsAreRefused) {
  TempDir tmp;
  Spit(tmp / "a.txt", "hello");
  for (const char* format : {"gnu", "pax", "ustar"}) {
    SCOPED_TRACE(format);
    std::string out;
    ASSERT_EQ(RunCommand(std::string("tar --format=") + format + " -cf '" + (tmp / "x.tar") +
                             "' -C '" + tmp.path().string() + "' a.txt",
                         &out),
              0)
        << out;
    ExpectRefused(ReadBytes(Slurp(tmp / "x.tar")), "offset");
  }
}

// ============================================================================= cross-checks

// Python's tarfile in PAX format with dlsys's fixed attributes writes the same bytes as the
// Writer up to the end-of-archive marker (it then pads to a 10240-byte record).
TEST(CrossCheckTest, PythonTarfileWritesTheSameBytes) {
  if (::access("/usr/bin/python3", X_OK) != 0) GTEST_SKIP() << "no /usr/bin/python3";
  TempDir tmp;
  const std::vector<File> files = {
      {"manifest.json", "{\"name\":\"mlp\"}\n"},    {"empty.txt", ""},
      {"block.bin", RandomBytes(kBlock, 31)},       {LongPath(100, 'h'), RandomBytes(700, 32)},
      {LongPath(150, 'n'), RandomBytes(70000, 33)}, {LongPath(kMaxPathBytes, 'm'), "x"},
  };
  std::string args;
  for (std::size_t i = 0; i < files.size(); ++i) {
    const std::string src = tmp / ("f" + std::to_string(i));
    Spit(src, files[i].data);
    args += " '" + files[i].path + "' '" + src + "'";
  }
  const std::string script =
      "import io, sys, tarfile\n"
      "out, mtime = sys.argv[1], int(sys.argv[2])\n"
      "with tarfile.open(out, \"w\", format=tarfile.PAX_FORMAT) as t:\n"
      "    for name, src in zip(sys.argv[3::2], sys.argv[4::2]):\n"
      "        data = open(src, \"rb\").read()\n"
      "        info = tarfile.TarInfo(name)\n"
      "        info.size, info.mtime, info.mode = len(data), mtime, 0o644\n"
      "        info.uid = info.gid = 0\n"
      "        info.uname = info.gname = \"\"\n"
      "        t.addfile(info, io.BytesIO(data))\n";
  std::string out;
  ASSERT_EQ(RunCommand("/usr/bin/python3 -c '" + script + "' '" + (tmp / "py.tar") + "' " +
                           std::to_string(kMtime) + args,
                       &out),
            0)
      << out;
  const std::string python = Slurp(tmp / "py.tar");
  const std::string ours = Pack(Compression::kNone, files);
  ASSERT_GE(python.size(), ours.size());
  EXPECT_EQ(python.size() % 10240, 0u);
  EXPECT_TRUE(AllZero(python.substr(ours.size())));
  const std::string truncated = python.substr(0, ours.size());
  ASSERT_EQ(truncated.substr(truncated.size() - kEndMarker.size()), kEndMarker);
  if (truncated != ours) {
    std::size_t i = 0;
    while (truncated[i] == ours[i]) ++i;
    FAIL() << "first difference at byte " << i << " (header field '"
           << internal::FieldAt(i % kBlock).name << "' if a header): python "
           << internal::ShowBytes(truncated.substr(i, 16)) << ", ours "
           << internal::ShowBytes(ours.substr(i, 16));
  }
  // The reader takes Python's archive once the record padding is gone, and not before.
  EXPECT_TRUE(ReadBytes(truncated));
  if (python.size() > ours.size()) {
    ExpectRefused(ReadBytes(python), "trailing data after the end-of-archive marker");
  }
}

// ============================================================================= compression bombs

// Deflate cannot exceed ~1032:1, below the default limit of 1100:1, so a gzip bomb is only
// refused with a lower limit; the same stream passes the default limits.
TEST(BombTest, GzipBombIsStopped) {
  GzipStream s;  // level 6: level 9 sets XFL 2, which the reader refuses
  const std::string bomb = ZeroBomb(s, 32 * kMiB, 32 * kMiB, true);
  ASSERT_GT(32.0 * kMiB / static_cast<double>(bomb.size()), 1000.0);
  Limits limits;
  limits.max_compression_ratio = 100;
  limits.ratio_grace_bytes = kMiB;
  Fd fd = MemFile(bomb);
  auto r = Reader::Open(fd.get(), "bomb.dlsys", limits);
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
  EXPECT_LT(total, 2 * kMiB) << "the guard should stop reading soon after the grace bytes";
  ExpectInvalid(ReadBytes(bomb, Mode::kNextOnly, limits), "compression ratio above 100:1");
  auto ok = ReadBytes(bomb, Mode::kNextOnly);
  EXPECT_TRUE(ok) << ok.error().message;
}

TEST(BombTest, ZstdBombIsStoppedAfterTheGrace) {
  ZstdStream s;
  const std::string bomb = ZeroBomb(s, 256 * kMiB, 256 * kMiB, true);
  ASSERT_GT(256.0 * kMiB / static_cast<double>(bomb.size()), 1100.0);
  Fd fd = MemFile(bomb);
  auto r = Reader::Open(fd.get(), "bomb.dlsys");
  ASSERT_TRUE(r);
  ASSERT_TRUE(r->Next());
  std::vector<std::byte> buf(1 << 16);
  std::uint64_t total = 0;
  Result<std::size_t> n;
  do {
    n = r->Read(buf);
    if (n) total += *n;
  } while (n && *n > 0);
  ExpectInvalid(n, "compression ratio above 1100:1 (possible compression bomb)");
  EXPECT_GE(total, 63 * kMiB) << "stopped before the grace bytes";
  EXPECT_LT(total, 65 * kMiB) << "the guard should stop reading right after the grace bytes";
  ExpectInvalid(ReadBytes(bomb, Mode::kNextOnly), "compression ratio");
}

// Skipping an entry (Next() without reading it) decompresses it too, and must be guarded as
// it goes: this stream ends after 128 MiB of a 1 GiB entry, so a guard that only looks after
// the skip reports the truncation instead of the bomb (and would decompress a declared 1 TiB
// entry in full first).
TEST(BombTest, ZstdBombIsStoppedWhileSkipping) {
  ZstdStream s;
  const std::string bomb = ZeroBomb(s, 1024 * kMiB, 128 * kMiB, false);
  ExpectInvalid(ReadBytes(bomb, Mode::kChunkReads), "compression ratio");
  ExpectInvalid(ReadBytes(bomb, Mode::kNextOnly), "compression ratio");
}

TEST(BombTest, ZstdWriterRefusesRatioAboveTheLimit) {
  Fd fd = MemFile("");
  auto w = Writer::Open(fd.get(), Compression::kZstd, kMtime);
  ASSERT_TRUE(w);
  const std::string mib(kMiB, '\0');
  const std::uint64_t size = 100 * kMiB;
  ASSERT_TRUE(w->Begin("zeros.bin", size));
  Result<void> r;
  std::uint64_t written = 0;
  while (r && written < size) {
    r = w->WriteData(Bytes(mib));
    written += kMiB;
  }
  if (r) r = w->End();
  if (r) r = w->Close();
  ExpectInvalid(r, "--compression");
  EXPECT_LE(written, 66 * kMiB) << "refused late";
  ExpectInvalid(w->Close(), "--compression");
  ExpectInvalid(ReadBytes(Contents(fd.get()), Mode::kNextOnly), "");

  // Below the grace bytes the ratio does not matter.
  const std::string small = Pack(Compression::kZstd, {{"zeros.bin", std::string(60 * kMiB, '\0')}});
  auto back = ReadBytes(small);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_TRUE(AllZero(back->data[0]) && back->data[0].size() == 60 * kMiB);
}

TEST(BombTest, GzipOfTheSameZerosIsAccepted) {
  Fd fd = MemFile("");
  {
    auto w = Writer::Open(fd.get(), Compression::kGzip, kMtime);
    ASSERT_TRUE(w);
    const std::string mib(kMiB, '\0');
    ASSERT_TRUE(w->Begin("zeros.bin", 100 * kMiB));
    for (int i = 0; i < 100; ++i) ASSERT_TRUE(w->WriteData(Bytes(mib)));
    ASSERT_TRUE(w->End());
    ASSERT_TRUE(w->Close());
  }
  auto r = Reader::Open(fd.get(), "zeros.dlsys");
  ASSERT_TRUE(r) << r.error().message;
  auto e = r->Next();
  ASSERT_TRUE(e && *e) << (e ? "" : e.error().message);
  EXPECT_EQ((*e)->size, 100 * kMiB);
  std::vector<std::byte> buf(kMiB);
  std::uint64_t total = 0;
  for (;;) {
    auto n = r->Read(buf);
    ASSERT_TRUE(n) << n.error().message;
    if (*n == 0) break;
    ASSERT_TRUE(AllZero(std::string_view(reinterpret_cast<const char*>(buf.data()), *n)));
    total += *n;
  }
  EXPECT_EQ(total, 100 * kMiB);
  auto end = r->Next();
  ASSERT_TRUE(end) << end.error().message;
  EXPECT_FALSE(*end);
}

}  // namespace
}  // namespace dlsys::archive
