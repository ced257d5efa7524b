#include "archive/archive.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <unordered_set>
#include <utility>

#include "archive/internal/streams.h"
#include "archive/internal/tar_format.h"

namespace dlsys::archive {
namespace {

using internal::kBlock;

std::string Quote(std::string_view s) { return "'" + std::string(s) + "'"; }

bool AllZero(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c == '\0'; });
}

const char* TypeName(char t) {
  switch (t) {
    case '1':
      return "a hard link";
    case '2':
      return "a symbolic link";
    case '3':
      return "a character device";
    case '4':
      return "a block device";
    case '5':
      return "a directory";
    case '6':
      return "a FIFO";
    case '7':
      return "a contiguous file";
    case 'g':
      return "a pax global header";
    case 'x':
      return "a pax extended header";
    case 'L':
      return "a GNU long name";
    case 'K':
      return "a GNU long link name";
    case 'S':
      return "an old-GNU sparse file";
    case 'D':
      return "a GNU directory dump";
    case 'M':
      return "a GNU multi-volume continuation";
    case 'V':
      return "a GNU volume label";
    case '\0':
      return "an old-style regular file";
    default:
      return "an unknown entry type";
  }
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
    if (u < 0x20 || u == 0x7f) {
      return Fail(Code::kInvalid, "entry path contains a control character");
    }
    // ASCII names are the same bytes in every locale and every tar implementation.
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

struct Writer::Impl {
  std::unique_ptr<internal::Sink> sink;
  std::int64_t mtime = 0;
  std::unordered_set<std::string> names;
  bool in_entry = false;  // Begin called, End not yet
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
  Result<void> Emit(std::string_view bytes) {
    if (auto ok = sink->Write(std::as_bytes(std::span(bytes.data(), bytes.size()))); !ok) {
      return Poison(std::move(ok).error());
    }
    return {};
  }
};

Writer::Writer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Writer::Writer(Writer&&) noexcept = default;
Writer::~Writer() = default;

Result<Writer> Writer::Open(int fd, Compression compression, std::int64_t mtime, Limits limits) {
  if (fd < 0) return Fail(Code::kUsage, "cannot write archive: invalid file descriptor");
  if (mtime < 0 || mtime > kMaxMtime) {
    return Fail(Code::kUsage, "cannot write archive: time " + std::to_string(mtime) +
                                  " is outside 0.." + std::to_string(kMaxMtime) +
                                  " seconds (1970 to 2242), which a tar header can hold");
  }
  auto impl = std::make_unique<Impl>();
  impl->mtime = mtime;
  DLSYS_ASSIGN_OR_RETURN(impl->sink, internal::OpenSink(fd, compression, limits));
  return Writer(std::move(impl));
}

Result<void> Writer::Begin(std::string_view path, std::uint64_t size) {
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
  DLSYS_TRY(w.Emit(internal::EntryHeaders(path, size, w.mtime)));
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
  if (auto ok = w.sink->Write(data); !ok) return w.Poison(std::move(ok).error());
  w.written += data.size();
  return {};
}

Result<void> Writer::End() {
  Impl& w = *impl_;
  DLSYS_TRY(w.CheckUsable("End()"));
  if (!w.in_entry) return Fail(Code::kUsage, "End() called without Begin()");
  if (w.written != w.size) {
    return w.Poison(Error{Code::kInvalid,
                          "entry " + Quote(w.path) + " was declared as " + std::to_string(w.size) +
                              " bytes but " + std::to_string(w.written) + " were written",
                          {}});
  }
  DLSYS_TRY(w.Emit(std::string(internal::PaddedSize(w.size) - w.size, '\0')));
  w.in_entry = false;
  return {};
}

Result<void> Writer::Add(std::string_view path, std::span<const std::byte> data) {
  DLSYS_TRY(Begin(path, data.size()));
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
  DLSYS_TRY(w.Emit(std::string(2 * kBlock, '\0')));
  if (auto ok = w.sink->Finish(); !ok) return w.Poison(std::move(ok).error());
  w.closed = true;
  return {};
}

// ---------------------------------------------------------------------------------------------
// Reader

struct Reader::Impl {
  std::unique_ptr<internal::Source> source;
  std::string display;
  Limits limits;
  Compression compression = Compression::kNone;
  std::uint64_t offset = 0;  // position in the tar stream
  std::optional<Error> failure;
  bool at_end = false;
  bool has_entry = false;
  Entry entry;
  std::uint64_t consumed = 0;  // bytes of the current entry's data read or skipped
  std::uint64_t entries = 0;

  // "at offset N" for a plain file; compressed archives name the tar stream.
  std::string At(std::uint64_t off) const {
    return "at offset " + std::to_string(off) +
           (compression == Compression::kNone ? "" : " of the tar stream");
  }
  tl::unexpected<Error> Bad(std::string message) {
    Error e{Code::kInvalid,
            "archive " + Quote(display) + " is not a canonical dlsys archive: " + message,
            {}};
    return Poison(std::move(e));
  }
  tl::unexpected<Error> Poison(Error e) {
    if (!failure) failure = e;
    has_entry = false;
    return tl::unexpected<Error>(std::move(e));
  }

  Result<void> CheckRatio() {
    if (compression == Compression::kNone || offset <= limits.ratio_grace_bytes) return {};
    const double allowed = limits.max_compression_ratio * static_cast<double>(source->consumed());
    if (static_cast<double>(offset) <= allowed) return {};
    char ratio[32];
    std::snprintf(ratio, sizeof ratio, "%g", limits.max_compression_ratio);
    return Poison(Error{Code::kInvalid,
                        "archive " + Quote(display) + " has a compression ratio above " + ratio +
                            ":1 (possible compression bomb)",
                        {}});
  }

  // Reads exactly out.size() bytes of the tar stream, or reports what ended.
  Result<std::size_t> ReadSome(std::span<std::byte> out) {
    auto n = source->Read(out);
    if (!n) return Poison(std::move(n).error());
    offset += *n;
    DLSYS_TRY(CheckRatio());
    return *n;
  }
  Result<bool> ReadFull(std::string& block, std::size_t size) {
    block.assign(size, '\0');
    std::size_t got = 0;
    while (got < size) {
      DLSYS_ASSIGN_OR_RETURN(
          std::size_t n,
          ReadSome(std::as_writable_bytes(std::span(block.data() + got, size - got))));
      if (n == 0) return false;
      got += n;
    }
    return true;
  }
  Result<void> Skip(std::uint64_t n) {
    if (compression == Compression::kNone) {
      if (auto ok = source->Skip(n); !ok) return Poison(std::move(ok).error());
      offset += n;
      return {};
    }
    // Decompressing what is skipped is work too: go through ReadSome so the ratio limit holds
    // chunk by chunk.
    std::array<std::byte, 65536> scratch;
    while (n > 0) {
      DLSYS_ASSIGN_OR_RETURN(
          std::size_t got,
          ReadSome(std::span(scratch.data(), std::min<std::uint64_t>(n, scratch.size()))));
      if (got == 0) {
        return Bad("the archive ends inside entry " + Quote(entry.path) + " " + At(offset) +
                   " (it is truncated)");
      }
      n -= got;
    }
    return {};
  }

  // Moves past the rest of the current entry and checks its zero padding.
  Result<void> FinishEntry() {
    if (!has_entry) return {};
    DLSYS_TRY(Skip(entry.size - consumed));
    consumed = entry.size;
    const std::uint64_t pad = internal::PaddedSize(entry.size) - entry.size;
    std::string padding;
    const std::uint64_t at = offset;
    DLSYS_ASSIGN_OR_RETURN(bool full, ReadFull(padding, static_cast<std::size_t>(pad)));
    if (!full) return Bad("the archive ends inside the padding of entry " + Quote(entry.path));
    if (!AllZero(padding)) {
      return Bad("the padding after entry " + Quote(entry.path) + " " + At(at) +
                 " is not all zero bytes");
    }
    has_entry = false;
    return {};
  }

  // Compares the stored header bytes with the canonical encoding of what they say.
  Result<void> Compare(const std::string& stored, const std::string& expected, std::uint64_t start,
                       const std::string& what) {
    if (stored == expected) return {};
    // The first differing byte outside the checksum field: a header edited by hand or written
    // by another tar has a valid checksum of its own, and the field to name is the edited one.
    auto in_checksum = [](std::size_t i) { return i % kBlock >= 148 && i % kBlock < 156; };
    std::size_t i = 0;
    while (i < stored.size() && i < expected.size() &&
           (stored[i] == expected[i] || in_checksum(i))) {
      ++i;
    }
    if (i == stored.size() && i == expected.size()) {  // only the checksum differs
      i = 0;
      while (stored[i] == expected[i]) ++i;
    }
    const std::size_t block_start = i / kBlock * kBlock;
    const std::size_t in_block = i - block_start;
    const bool records = stored.size() > kBlock && i >= kBlock && i < stored.size() - kBlock;
    if (records) {
      return Bad("the pax records of " + what + " " + At(start + i) +
                 " differ from what pack writes");
    }
    const internal::Field& f = internal::FieldAt(in_block);
    const std::size_t fs = block_start + f.offset;
    return Bad(what + " " + At(start + block_start) + ": header field '" + f.name + "' " +
               At(start + fs) + " is " +
               internal::ShowBytes(std::string_view(stored).substr(fs, f.size)) + ", expected " +
               internal::ShowBytes(std::string_view(expected).substr(fs, f.size)));
  }

  Result<std::optional<Entry>> ReadHeader();
};

Reader::Reader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Reader::Reader(Reader&&) noexcept = default;
Reader::~Reader() = default;

Result<Reader> Reader::Open(int fd, std::string display, Limits limits) {
  auto impl = std::make_unique<Impl>();
  impl->display = std::move(display);
  impl->limits = limits;
  DLSYS_ASSIGN_OR_RETURN(impl->source, internal::OpenSource(fd, impl->display, &impl->compression));
  return Reader(std::move(impl));
}

Result<std::optional<Entry>> Reader::Impl::ReadHeader() {
  const std::uint64_t start = offset;
  std::string block;
  DLSYS_ASSIGN_OR_RETURN(bool full, ReadFull(block, kBlock));
  if (!full) {
    return Bad("the archive ends " + At(start) +
               " without an end-of-archive marker (it is truncated)");
  }
  if (AllZero(block)) {
    std::string second;
    DLSYS_ASSIGN_OR_RETURN(bool more, ReadFull(second, kBlock));
    if (!more) {
      return Bad("a lone zero block " + At(start) +
                 " ends the archive; the end-of-archive marker is two zero blocks");
    }
    if (!AllZero(second)) {
      return Bad("a zero block " + At(start) +
                 " is followed by data; the end-of-archive marker is two zero blocks and "
                 "nothing follows it");
    }
    if (auto ok = source->CheckEnd(offset); !ok) return Bad(ok.error().message);
    at_end = true;
    return std::optional<Entry>();
  }
  std::string stored;
  std::optional<std::string> pax_path;
  std::optional<std::uint64_t> pax_size;
  char type = block[156];
  if (type == 'x') {
    const auto records_size = internal::ParseOctalField(std::string_view(block).substr(124, 12));
    if (!records_size || *records_size == 0 || *records_size > internal::kMaxPaxRecordBytes) {
      return Bad("the pax header " + At(start) + " declares " +
                 internal::ShowBytes(std::string_view(block).substr(124, 12)) +
                 " bytes of records; pack writes 1 to " +
                 std::to_string(internal::kMaxPaxRecordBytes));
    }
    std::string records;
    DLSYS_ASSIGN_OR_RETURN(bool got, ReadFull(records, internal::PaddedSize(*records_size)));
    if (!got) return Bad("the archive ends inside the pax header " + At(start));
    auto values =
        internal::ParsePaxRecords(std::string_view(records).substr(0, *records_size), At(start));
    if (!values) return Bad(values.error().message);
    pax_path = values->path;
    pax_size = values->size;
    stored = block + records;
    DLSYS_ASSIGN_OR_RETURN(bool next, ReadFull(block, kBlock));
    if (!next) return Bad("the archive ends after the pax header " + At(start));
    type = block[156];
    if (type == 'x' || type == 'g') {
      return Bad("the pax header " + At(start) + " is followed by " + TypeName(type) +
                 "; pack writes one pax header, then the entry it describes");
    }
  }
  if (type != '0') {
    return Bad("the entry " + At(start + stored.size()) + " has type '" +
               (type == '\0' ? std::string("\\0") : std::string(1, type)) + "' (" + TypeName(type) +
               "); a dlsys archive holds only regular files (type '0')");
  }
  stored += block;
  const std::string_view header(block);
  std::string path;
  if (pax_path) {
    path = *pax_path;
  } else {
    const std::string_view name = header.substr(0, internal::kNameBytes);
    path = std::string(name.substr(0, name.find('\0')));
  }
  if (auto ok = CheckEntryPath(path); !ok) {
    return Bad("unsafe entry " + At(start) + ": " + ok.error().message);
  }
  const std::string what = "entry " + Quote(path);
  if (pax_path && path.size() <= internal::kNameBytes) {
    return Bad("pax record 'path' " + At(start) + " holds " + Quote(path) + " (" +
               std::to_string(path.size()) +
               " bytes), which fits the ustar name field; pack writes no pax path for it");
  }
  const auto size_field = internal::ParseOctalField(header.substr(124, 12));
  const auto mtime_field = internal::ParseOctalField(header.substr(136, 12));
  for (auto [field, value] : {std::pair{"size", size_field}, std::pair{"mtime", mtime_field}}) {
    if (!value) {
      const internal::Field& f = internal::FieldNamed(field);
      return Bad(what + " " + At(start) + ": header field '" + f.name + "' is " +
                 internal::ShowBytes(header.substr(f.offset, f.size)) +
                 ", expected 11 octal digits and a NUL");
    }
  }
  if (pax_size && *pax_size <= internal::kMaxOctal11) {
    return Bad("pax record 'size' " + At(start) + " holds " + std::to_string(*pax_size) +
               ", which fits the ustar size field; pack writes no pax size for it");
  }
  const std::uint64_t size = pax_size ? *pax_size : *size_field;
  DLSYS_TRY(Compare(stored,
                    internal::EntryHeaders(path, size, static_cast<std::int64_t>(*mtime_field)),
                    start, what));
  if (size > limits.max_entry_bytes) {
    return Bad(what + " " + At(start) + " declares " + std::to_string(size) +
               " bytes, more than the limit of " + std::to_string(limits.max_entry_bytes));
  }
  if (++entries > limits.max_entries) {
    return Bad("more than " + std::to_string(limits.max_entries) + " entries (the limit) " +
               At(start));
  }
  Entry e;
  e.path = std::move(path);
  e.size = size;
  e.mode = internal::kEntryMode;
  e.mtime = static_cast<std::int64_t>(*mtime_field);
  e.header_offset = start;
  e.data_offset = offset;
  return std::optional<Entry>(std::move(e));
}

Result<std::optional<Entry>> Reader::Next() {
  Impl& r = *impl_;
  if (r.failure) return tl::unexpected<Error>(*r.failure);
  if (r.at_end) return std::optional<Entry>();
  DLSYS_TRY(r.FinishEntry());
  DLSYS_ASSIGN_OR_RETURN(std::optional<Entry> e, r.ReadHeader());
  if (e) {
    r.entry = *e;
    r.has_entry = true;
    r.consumed = 0;
  }
  return e;
}

Result<std::size_t> Reader::Read(std::span<std::byte> out) {
  Impl& r = *impl_;
  if (r.failure) return tl::unexpected<Error>(*r.failure);
  if (!r.has_entry) return Fail(Code::kUsage, "Read() called without a current entry");
  const std::uint64_t left = r.entry.size - r.consumed;
  if (left == 0 || out.empty()) return std::size_t{0};
  DLSYS_ASSIGN_OR_RETURN(std::size_t n,
                         r.ReadSome(out.first(std::min<std::uint64_t>(out.size(), left))));
  if (n == 0) {
    return r.Bad("the archive ends inside entry " + Quote(r.entry.path) + " after " +
                 std::to_string(r.consumed) + " of " + std::to_string(r.entry.size) +
                 " bytes (it is truncated)");
  }
  r.consumed += n;
  return n;
}

Result<std::string> Reader::ReadAll(std::size_t max_bytes) {
  Impl& r = *impl_;
  if (r.failure) return tl::unexpected<Error>(*r.failure);
  if (!r.has_entry) return Fail(Code::kUsage, "ReadAll() called without a current entry");
  const std::uint64_t left = r.entry.size - r.consumed;
  if (left > max_bytes) {
    return Fail(Code::kInvalid, "entry " + Quote(r.entry.path) + " is " +
                                    std::to_string(r.entry.size) +
                                    " bytes, more than the limit of " + std::to_string(max_bytes));
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

Result<void> Reader::SkipData() {
  Impl& r = *impl_;
  if (r.failure) return tl::unexpected<Error>(*r.failure);
  if (r.compression != Compression::kNone) {
    return Fail(Code::kUsage, "SkipData() needs an uncompressed archive");
  }
  return r.FinishEntry();
}

Compression Reader::compression() const { return impl_->compression; }

}  // namespace dlsys::archive
