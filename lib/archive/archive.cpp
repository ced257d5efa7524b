#include "archive/archive.h"

#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <optional>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "archive/internal/handles.h"
#include "core/file.h"

namespace dlsys::archive {
namespace {

using internal::ArchiveEntry;
using internal::ReadArchive;
using internal::WriteArchive;

constexpr std::size_t kMaxPathBytes = 1024;
constexpr std::size_t kReadBlockBytes = 1 << 20;
constexpr std::uint64_t kTarBlockBytes = 512;

std::string Quote(std::string_view s) { return "'" + std::string(s) + "'"; }

std::string ArchiveMessage(struct archive* a) {
  const char* msg = archive_error_string(a);
  return msg != nullptr ? msg : "unknown libarchive error";
}

}  // namespace

const char* CompressionName(Compression c) {
  switch (c) {
    case Compression::kNone:
      return "none";
    case Compression::kGzip:
      return "gzip";
    case Compression::kZstd:
      return "zstd";
  }
  return "unknown";
}

Result<Compression> ParseCompression(std::string_view name) {
  if (name == "none") return Compression::kNone;
  if (name == "gzip") return Compression::kGzip;
  if (name == "zstd") return Compression::kZstd;
  return Fail(Code::kUsage,
              "unknown compression " + Quote(name) + "; use one of: none, gzip, zstd");
}

Result<void> CheckEntryPath(std::string_view path) {
  if (path.empty()) return Fail(Code::kInvalid, "entry path is empty");
  if (path.size() > kMaxPathBytes) {
    return Fail(Code::kInvalid, "entry path is " + std::to_string(path.size()) +
                                    " bytes long, more than the limit of " +
                                    std::to_string(kMaxPathBytes));
  }
  // Checked before the path is quoted in any message, so messages never carry escapes.
  for (char c : path) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f)
      return Fail(Code::kInvalid, "entry path contains a control character");
    // libarchive converts non-ASCII names through the process locale (and its pax writer
    // crashes on a UTF-8 name it cannot convert in the C locale); ASCII names are the same
    // bytes in every locale and every tar.
    if (u >= 0x80) {
      return Fail(Code::kInvalid, "entry path contains a non-ASCII byte; use ASCII file names");
    }
  }
  const std::string q = Quote(path);
  if (path.find('\\') != std::string_view::npos) {
    return Fail(Code::kInvalid, "entry path " + q + " contains a backslash");
  }
  if (path.front() == '/') return Fail(Code::kInvalid, "entry path " + q + " is absolute");
  if (path.back() == '/') return Fail(Code::kInvalid, "entry path " + q + " ends with '/'");
  std::size_t start = 0;
  while (start <= path.size()) {
    std::size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    const std::string_view part = path.substr(start, end - start);
    if (part.empty()) return Fail(Code::kInvalid, "entry path " + q + " has an empty component");
    if (part == "..") return Fail(Code::kInvalid, "entry path " + q + " contains '..'");
    if (part == ".") return Fail(Code::kInvalid, "entry path " + q + " contains '.'");
    start = end + 1;
  }
  return {};
}

// ---------------------------------------------------------------------------------------------
// Writer

namespace {

struct WriteTarget {
  int fd = -1;
  bool discard = false;  // set when the writer is abandoned: all output is refused
};

}  // namespace

struct Writer::Impl {
  ~Impl();

  WriteArchive a;
  WriteTarget target;  // the write callback's client data; lives as long as `a`
  std::int64_t mtime = 0;
  std::unordered_set<std::string> names;
  // The entry being streamed (Begin called, End not yet).
  bool in_entry = false;
  std::string path;
  std::uint64_t size = 0;
  std::uint64_t written = 0;
  bool closed = false;
  // The first failure: the archive is unusable afterwards and every later call returns it.
  std::optional<Error> failure;

  tl::unexpected<Error> Poison(Error e) {
    if (!failure) failure = e;
    return tl::unexpected<Error>(std::move(e));
  }
  Result<void> CheckUsable(const char* op) {
    if (failure) return tl::unexpected<Error>(*failure);
    if (closed) return Fail(Code::kUsage, std::string(op) + " called after Close()");
    return {};
  }
};

namespace {

// Writes straight to the fd, so large payload chunks reach write(2) without another copy.
la_ssize_t WriteCallback(struct archive* a, void* client_data, const void* buffer, size_t length) {
  const auto* target = static_cast<const WriteTarget*>(client_data);
  if (target->discard) {
    archive_set_error(a, ECANCELED, "archive abandoned");
    return -1;
  }
  const int fd = target->fd;
  const char* p = static_cast<const char*>(buffer);
  size_t left = length;
  while (left > 0) {
    const ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      archive_set_error(a, err, "cannot write archive: %s", core::ErrnoMessage(err).c_str());
      return -1;
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  return static_cast<la_ssize_t>(length);
}

}  // namespace

// A writer dropped before a successful Close() must neither finish the archive (pad the
// current entry with zeros, append the end marker) into the caller's fd nor leak: libarchive
// 3.6 frees a failed writer without closing its compressor (zlib/zstd state leaks). So close
// it with output refused: every write fails at once, and close still releases everything.
Writer::Impl::~Impl() {
  if (a && !closed) {
    target.discard = true;
    archive_write_close(a.get());
  }
}

Writer::Writer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Writer::Writer(Writer&&) noexcept = default;
Writer::~Writer() = default;

Result<Writer> Writer::Open(int fd, Compression compression, std::int64_t mtime) {
  if (fd < 0) return Fail(Code::kUsage, "cannot write archive: invalid file descriptor");
  auto impl = std::make_unique<Impl>();
  impl->target.fd = fd;
  impl->mtime = mtime;
  impl->a.reset(archive_write_new());
  if (!impl->a) return Fail(Code::kInternal, "cannot create archive writer: out of memory");
  struct archive* a = impl->a.get();
  auto check = [a](int r, const char* what) -> Result<void> {
    if (r == ARCHIVE_OK) return {};
    return Fail(Code::kInternal,
                std::string("cannot set up archive writer (") + what + "): " + ArchiveMessage(a));
  };
  DLSYS_TRY(check(archive_write_set_format_pax_restricted(a), "pax format"));
  switch (compression) {
    case Compression::kNone:
      break;
    case Compression::kGzip:
      // ARCHIVE_WARN would mean an external gzip program: refused, output must be reproducible.
      DLSYS_TRY(check(archive_write_add_filter_gzip(a), "gzip"));
      // No modification time in the gzip header, so equal input gives equal bytes.
      DLSYS_TRY(check(archive_write_set_filter_option(a, "gzip", "timestamp", nullptr),
                      "gzip:!timestamp"));
      break;
    case Compression::kZstd:
      DLSYS_TRY(check(archive_write_add_filter_zstd(a), "zstd"));
      break;
  }
  // No blocking: the payload goes to the write callback in the caller's chunks, and the
  // output ends right after the end-of-archive marker (no padding to 10240 bytes).
  DLSYS_TRY(check(archive_write_set_bytes_per_block(a, 0), "block size"));
  DLSYS_TRY(check(archive_write_open2(a, &impl->target, nullptr, WriteCallback, nullptr, nullptr),
                  "open"));
  return Writer(std::move(impl));
}

Result<void> Writer::Begin(std::string_view path, std::uint64_t size, unsigned mode) {
  Impl& w = *impl_;
  DLSYS_TRY(w.CheckUsable("Begin()"));
  if (w.in_entry) {
    return Fail(Code::kUsage, "cannot begin entry " + Quote(path) + ": entry " + Quote(w.path) +
                                  " is not finished (call End())");
  }
  DLSYS_TRY(CheckEntryPath(path));
  std::string name(path);
  if (w.names.count(name) != 0) {
    return Fail(Code::kInvalid, "entry " + Quote(path) + " appears twice");
  }
  if (size > static_cast<std::uint64_t>(INT64_MAX)) {
    return Fail(Code::kInvalid, "entry " + Quote(path) + " is too large");
  }
  ArchiveEntry entry(archive_entry_new());
  if (!entry) return Fail(Code::kInternal, "cannot create archive entry: out of memory");
  struct archive_entry* e = entry.get();
  archive_entry_set_pathname(e, name.c_str());
  archive_entry_set_filetype(e, AE_IFREG);
  archive_entry_set_perm(e, mode & 07777);
  archive_entry_set_size(e, static_cast<la_int64_t>(size));
  archive_entry_set_mtime(e, w.mtime, 0);
  archive_entry_set_uid(e, 0);
  archive_entry_set_gid(e, 0);
  const int r = archive_write_header(w.a.get(), e);
  if (r != ARCHIVE_OK) {
    return w.Poison(
        Error{r == ARCHIVE_FATAL ? Code::kInternal : Code::kInvalid,
              "cannot write header of entry " + Quote(path) + ": " + ArchiveMessage(w.a.get()),
              {}});
  }
  w.names.insert(std::move(name));
  w.in_entry = true;
  w.path = std::string(path);
  w.size = size;
  w.written = 0;
  return {};
}

Result<void> Writer::WriteData(std::span<const std::byte> data) {
  Impl& w = *impl_;
  DLSYS_TRY(w.CheckUsable("WriteData()"));
  if (!w.in_entry) return Fail(Code::kUsage, "WriteData() called outside Begin()/End()");
  if (data.size() > w.size - w.written) {
    return w.Poison(Error{Code::kInvalid,
                          "entry " + Quote(w.path) + " was declared as " + std::to_string(w.size) +
                              " bytes but more data was written",
                          {}});
  }
  const std::byte* p = data.data();
  std::size_t left = data.size();
  while (left > 0) {
    const la_ssize_t n = archive_write_data(w.a.get(), p, left);
    if (n <= 0) {
      return w.Poison(
          Error{Code::kInternal,
                "cannot write data of entry " + Quote(w.path) + ": " + ArchiveMessage(w.a.get()),
                {}});
    }
    p += n;
    left -= static_cast<std::size_t>(n);
    w.written += static_cast<std::uint64_t>(n);
  }
  return {};
}

Result<void> Writer::End() {
  Impl& w = *impl_;
  DLSYS_TRY(w.CheckUsable("End()"));
  if (!w.in_entry) return Fail(Code::kUsage, "End() called without Begin()");
  if (w.written != w.size) {
    // libarchive would pad the entry with zeros; the archive would not hold the real file.
    return w.Poison(Error{Code::kInvalid,
                          "entry " + Quote(w.path) + " was declared as " + std::to_string(w.size) +
                              " bytes but " + std::to_string(w.written) + " were written",
                          {}});
  }
  if (archive_write_finish_entry(w.a.get()) != ARCHIVE_OK) {
    return w.Poison(Error{Code::kInternal,
                          "cannot finish entry " + Quote(w.path) + ": " + ArchiveMessage(w.a.get()),
                          {}});
  }
  w.in_entry = false;
  return {};
}

Result<void> Writer::Add(std::string_view path, std::span<const std::byte> data, unsigned mode) {
  DLSYS_TRY(Begin(path, data.size(), mode));
  DLSYS_TRY(WriteData(data));
  return End();
}

Result<void> Writer::Close() {
  Impl& w = *impl_;
  DLSYS_TRY(w.CheckUsable("Close()"));
  if (w.in_entry) {
    return Fail(Code::kUsage,
                "cannot close archive: entry " + Quote(w.path) + " is not finished (call End())");
  }
  if (archive_write_close(w.a.get()) != ARCHIVE_OK) {
    return w.Poison(
        Error{Code::kInternal, "cannot finish archive: " + ArchiveMessage(w.a.get()), {}});
  }
  w.closed = true;
  return {};
}

// ---------------------------------------------------------------------------------------------
// Reader

struct Reader::Impl {
  ReadArchive a;
  std::string archive_path;
  Limits limits;
  Compression compression = Compression::kNone;
  // Open() reads the first header (to recognise the format); Next() hands it out.
  bool first_header_pending = false;
  int first_header_status = ARCHIVE_OK;
  struct archive_entry* header = nullptr;  // owned by `a`
  bool at_end = false;
  std::optional<Error> failure;  // sticky: libarchive cannot continue after a fatal error

  // The current entry.
  bool has_entry = false;
  Entry entry;
  std::uint64_t data_offset = 0;
  std::uint64_t consumed = 0;  // bytes of the current entry handed out by Read()

  std::uint64_t entries_seen = 0;
  std::uint64_t stream_end = 0;  // end of the last entry's padded data in the tar stream
  std::unordered_set<std::string> names;
  std::unordered_set<std::string> dirs;  // every directory prefix implied by an entry

  tl::unexpected<Error> Poison(Error e) {
    if (!failure) failure = e;
    has_entry = false;
    return tl::unexpected<Error>(std::move(e));
  }
  tl::unexpected<Error> Corrupt() {
    return Poison(
        Error{Code::kInvalid, "archive is truncated or corrupt: " + ArchiveMessage(a.get()), {}});
  }

  Result<void> CheckRatio() {
    if (compression == Compression::kNone) return {};
    const la_int64_t out = archive_filter_bytes(a.get(), 0);  // uncompressed, seen by tar
    if (out < 0 || static_cast<std::uint64_t>(out) <= limits.ratio_grace_bytes) return {};
    const la_int64_t in = archive_filter_bytes(a.get(), -1);  // compressed, read from the file
    if (in > 0 &&
        static_cast<double>(out) / static_cast<double>(in) <= limits.max_compression_ratio) {
      return {};
    }
    char ratio[32];
    snprintf(ratio, sizeof ratio, "%g", limits.max_compression_ratio);
    return Poison(Error{Code::kInvalid,
                        "archive " + Quote(archive_path) + " has a compression ratio above " +
                            ratio + ":1 (possible compression bomb)",
                        {}});
  }

  Result<void> CheckEntry(struct archive_entry* e, std::string* path_out);
};

namespace {

const char* SpecialTypeName(struct archive_entry* e) {
  if (archive_entry_hardlink(e) != nullptr) return "a hard link";
  switch (archive_entry_filetype(e)) {
    case AE_IFREG:
      return archive_entry_sparse_count(e) > 0 ? "a sparse file" : nullptr;
    case AE_IFLNK:
      return "a symbolic link";
    case AE_IFDIR:
      return "a directory";
    case AE_IFCHR:
    case AE_IFBLK:
      return "a device file";
    case AE_IFIFO:
      return "a FIFO";
    case AE_IFSOCK:
      return "a socket";
    default:
      return "not a regular file";
  }
}

}  // namespace

Result<void> Reader::Impl::CheckEntry(struct archive_entry* e, std::string* path_out) {
  const char* raw = archive_entry_pathname(e);
  std::string path = raw != nullptr ? raw : "";
  const std::string q = Quote(path);
  if (const char* type = SpecialTypeName(e)) {
    return Fail(Code::kInvalid, "entry " + q + " is " + type);
  }
  if (auto ok = CheckEntryPath(path); !ok) {
    return tl::unexpected(std::move(ok).error().Wrap("unsafe entry in archive"));
  }
  if (names.count(path) != 0) return Fail(Code::kInvalid, "entry " + q + " appears twice");
  if (dirs.count(path) != 0) {
    return Fail(Code::kInvalid, "entry " + q + " is also the directory of another entry");
  }
  for (std::size_t slash = path.find('/'); slash != std::string::npos;
       slash = path.find('/', slash + 1)) {
    if (names.count(path.substr(0, slash)) != 0) {
      return Fail(Code::kInvalid, "entry " + q + " lies under entry " +
                                      Quote(path.substr(0, slash)) + ", which is a file");
    }
  }
  const la_int64_t size = archive_entry_size(e);
  if (size < 0 || !archive_entry_size_is_set(e)) {
    return Fail(Code::kInvalid, "entry " + q + " has no valid size");
  }
  if (static_cast<std::uint64_t>(size) > limits.max_entry_bytes) {
    return Fail(Code::kInvalid, "entry " + q + " declares " + std::to_string(size) +
                                    " bytes, more than the limit of " +
                                    std::to_string(limits.max_entry_bytes));
  }
  if (entries_seen + 1 > limits.max_entries) {
    return Fail(Code::kInvalid, "archive has more than " + std::to_string(limits.max_entries) +
                                    " entries, the limit");
  }
  *path_out = std::move(path);
  return {};
}

Reader::Reader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Reader::Reader(Reader&&) noexcept = default;
Reader::~Reader() = default;

Result<Reader> Reader::Open(const std::string& path, Limits limits) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    const int err = errno;
    return Fail(err == ENOENT || err == ENOTDIR ? Code::kNotFound : Code::kInvalid,
                "cannot open " + Quote(path) + ": " + core::ErrnoMessage(err));
  }
  if (!S_ISREG(st.st_mode)) {
    return Fail(Code::kInvalid, Quote(path) + " is not a dlsys archive (not a regular file)");
  }
  auto impl = std::make_unique<Impl>();
  impl->archive_path = path;
  impl->limits = limits;
  impl->a.reset(archive_read_new());
  if (!impl->a) return Fail(Code::kInternal, "cannot create archive reader: out of memory");
  struct archive* a = impl->a.get();
  auto setup = [a](int r, const char* what) -> Result<void> {
    // ARCHIVE_WARN: the filter runs through an external program; slower but correct.
    if (r == ARCHIVE_OK || r == ARCHIVE_WARN) return {};
    return Fail(Code::kInternal,
                std::string("cannot set up archive reader (") + what + "): " + ArchiveMessage(a));
  };
  DLSYS_TRY(setup(archive_read_support_format_tar(a), "tar"));
  DLSYS_TRY(setup(archive_read_support_filter_gzip(a), "gzip"));
  DLSYS_TRY(setup(archive_read_support_filter_zstd(a), "zstd"));
  // Opening also recognises the compression and the format (libarchive's "bidding").
  if (archive_read_open_filename(a, path.c_str(), kReadBlockBytes) != ARCHIVE_OK) {
    const int err = archive_errno(a);
    if (err == EILSEQ) {  // ARCHIVE_ERRNO_FILE_FORMAT on Linux
      return Fail(Code::kInvalid, Quote(path) + " is not a dlsys archive (" +
                                      (st.st_size == 0 ? "empty file" : "not a tar file") + ")");
    }
    return Fail(err == ENOENT ? Code::kNotFound : Code::kInvalid,
                "cannot open " + Quote(path) + ": " + ArchiveMessage(a));
  }
  // Reading the first header now makes compression() and format errors known after Open().
  const int r = archive_read_next_header(a, &impl->header);
  if (r != ARCHIVE_OK && r != ARCHIVE_EOF) {
    return Fail(Code::kInvalid, "cannot read " + Quote(path) +
                                    ": archive is truncated or corrupt: " + ArchiveMessage(a));
  }
  impl->first_header_pending = true;
  impl->first_header_status = r;
  impl->data_offset = static_cast<std::uint64_t>(archive_filter_bytes(a, 0));
  switch (archive_filter_code(a, 0)) {
    case ARCHIVE_FILTER_NONE:
      impl->compression = Compression::kNone;
      break;
    case ARCHIVE_FILTER_GZIP:
      impl->compression = Compression::kGzip;
      break;
    case ARCHIVE_FILTER_ZSTD:
      impl->compression = Compression::kZstd;
      break;
    default:
      return Fail(Code::kInvalid,
                  Quote(path) + " uses unsupported compression " +
                      Quote(archive_filter_name(a, 0) ? archive_filter_name(a, 0) : "?"));
  }
  return Reader(std::move(impl));
}

Result<std::optional<Entry>> Reader::Next() {
  Impl& r = *impl_;
  if (r.failure) return tl::unexpected<Error>(*r.failure);
  if (r.at_end) return std::nullopt;
  int status;
  if (r.first_header_pending) {
    r.first_header_pending = false;
    status = r.first_header_status;
  } else {
    if (r.has_entry && r.compression != Compression::kNone) {
      // Skipping compressed data decompresses it anyway: do it through Read() so that the
      // compression-ratio limit also holds for entries the caller does not read.
      std::vector<std::byte> scratch(std::min<std::uint64_t>(
          kReadBlockBytes, std::max<std::uint64_t>(r.entry.size - r.consumed, 1)));
      for (;;) {
        DLSYS_ASSIGN_OR_RETURN(std::size_t n, Read(scratch));
        if (n == 0) break;
      }
    }
    r.has_entry = false;
    status = archive_read_next_header(r.a.get(), &r.header);
    r.data_offset = static_cast<std::uint64_t>(archive_filter_bytes(r.a.get(), 0));
  }
  r.has_entry = false;
  if (status == ARCHIVE_EOF) {
    // libarchive accepts an archive that simply stops at an entry boundary; a dlsys archive
    // always ends with the end-of-archive marker, so a missing one means it was cut short.
    const auto pos = static_cast<std::uint64_t>(archive_filter_bytes(r.a.get(), 0));
    if (pos < r.stream_end + kTarBlockBytes) {
      return r.Poison(Error{Code::kInvalid,
                            "archive is truncated or corrupt: " + Quote(r.archive_path) +
                                " ends without an end-of-archive marker",
                            {}});
    }
    r.at_end = true;
    return std::nullopt;
  }
  if (status == ARCHIVE_WARN) {
    // The header was readable but libarchive could not make full sense of it (e.g. a name it
    // cannot convert); a dlsys writer never produces such entries.
    return r.Poison(Error{
        Code::kInvalid, "archive has an invalid entry header: " + ArchiveMessage(r.a.get()), {}});
  }
  if (status != ARCHIVE_OK) return r.Corrupt();
  DLSYS_TRY(r.CheckRatio());
  std::string path;
  if (auto ok = r.CheckEntry(r.header, &path); !ok) return r.Poison(std::move(ok).error());
  r.entries_seen++;
  r.entry.path = path;
  r.entry.size = static_cast<std::uint64_t>(archive_entry_size(r.header));
  r.entry.mode = archive_entry_perm(r.header) & 07777;
  r.entry.mtime = archive_entry_mtime(r.header);
  r.consumed = 0;
  r.has_entry = true;
  r.stream_end =
      r.data_offset + (r.entry.size + kTarBlockBytes - 1) / kTarBlockBytes * kTarBlockBytes;
  for (std::size_t slash = path.find('/'); slash != std::string::npos;
       slash = path.find('/', slash + 1)) {
    r.dirs.insert(path.substr(0, slash));
  }
  r.names.insert(std::move(path));
  return std::optional<Entry>(r.entry);
}

Result<std::size_t> Reader::Read(std::span<std::byte> out) {
  Impl& r = *impl_;
  if (r.failure) return tl::unexpected<Error>(*r.failure);
  if (!r.has_entry) return Fail(Code::kUsage, "Read() called without a current entry");
  if (out.empty()) return std::size_t{0};
  const la_ssize_t n = archive_read_data(r.a.get(), out.data(), out.size());
  if (n < 0) {
    return r.Poison(Error{Code::kInvalid,
                          "cannot read entry " + Quote(r.entry.path) +
                              ": archive is truncated or corrupt: " + ArchiveMessage(r.a.get()),
                          {}});
  }
  if (n == 0 && r.consumed != r.entry.size) {
    return r.Poison(Error{Code::kInvalid,
                          "cannot read entry " + Quote(r.entry.path) +
                              ": archive is truncated or corrupt: data ends after " +
                              std::to_string(r.consumed) + " of " + std::to_string(r.entry.size) +
                              " bytes",
                          {}});
  }
  r.consumed += static_cast<std::uint64_t>(n);
  DLSYS_TRY(r.CheckRatio());
  return static_cast<std::size_t>(n);
}

Result<std::string> Reader::ReadAll(std::size_t max_bytes) {
  Impl& r = *impl_;
  if (r.failure) return tl::unexpected<Error>(*r.failure);
  if (!r.has_entry) return Fail(Code::kUsage, "ReadAll() called without a current entry");
  const std::uint64_t left = r.entry.size - r.consumed;
  if (left > max_bytes) {
    return Fail(Code::kInvalid, "entry " + Quote(r.entry.path) + " is larger than " +
                                    std::to_string(max_bytes) + " bytes");
  }
  std::string data(static_cast<std::size_t>(left), '\0');
  std::size_t filled = 0;
  while (filled < data.size()) {
    DLSYS_ASSIGN_OR_RETURN(
        std::size_t n,
        Read(std::as_writable_bytes(std::span(data.data() + filled, data.size() - filled))));
    filled += n;
  }
  return data;
}

Compression Reader::compression() const { return impl_->compression; }

std::uint64_t Reader::data_offset() const { return impl_->data_offset; }

}  // namespace dlsys::archive
