// Reading and writing the tar container of .dlsys archives in its one canonical form
// (docs/archive-format.md, "Container").
//
// Writer: restricted POSIX pax, byte-for-byte deterministic: every header is the canonical
// encoding of (path, size, mtime) with mode 0644, owner 0:0 and empty names; a pax 'x' header
// only for paths over 100 bytes or sizes from 8 GiB; the stream ends right after the two zero
// blocks of the end-of-archive marker; gzip (one member, fixed header) or zstd (one frame with
// a checksum) compress the whole stream.
//
// Reader: accepts only what the writer produces. It decodes each header, re-encodes it and
// requires identical bytes; it refuses every other entry type (pax global headers, GNU long
// names, sparse files, links, directories, devices), every pax record but path and size,
// non-zero padding, anything after the end-of-archive marker, a lone zero block, extra gzip
// members, zstd skippable or extra frames and trailing bytes. Messages name the byte offset
// and what was expected. It enforces safe relative ASCII paths, bounded sizes, entry count and
// compression ratio, reads the file once, sequentially, through the caller's descriptor, keeps
// no per-entry state (memory is bounded whatever the archive holds) and never writes to disk.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "core/error.h"

namespace dlsys::archive {

enum class Compression { kNone, kGzip, kZstd };
const char* CompressionName(Compression c);  // "none", "gzip", "zstd"
[[nodiscard]] Result<Compression> ParseCompression(std::string_view name);  // kUsage otherwise

inline constexpr std::size_t kMaxPathBytes = 1024;
// The latest entry mtime the ustar header can hold: 8^11 - 1 seconds (2242-03-16T12:56:31Z).
inline constexpr std::int64_t kMaxMtime = (std::int64_t{1} << 33) - 1;

// kInvalid with a message naming the path and the rule it breaks: relative, at most 1024
// bytes of printable ASCII without backslash, no empty, "." or ".." component, no trailing '/'.
[[nodiscard]] Result<void> CheckEntryPath(std::string_view path);

struct Limits {
  std::uint64_t max_entry_bytes = std::uint64_t{1} << 40;  // 1 TiB per entry
  std::uint64_t max_entries = 10002;  // 10,000 payload files + manifest + signature
  // Largest ratio of tar-stream bytes to compressed bytes read, enforced once more than
  // ratio_grace_bytes have been produced (compression bombs). Deflate cannot exceed ~1032:1;
  // the writer keeps zstd streams within the limit too.
  double max_compression_ratio = 1100.0;
  std::uint64_t ratio_grace_bytes = std::uint64_t{64} << 20;
};

class Writer {
 public:
  // Writes to `fd` (not owned; not closed). `mtime` (0..kMaxMtime) is stored for every entry.
  [[nodiscard]] static Result<Writer> Open(int fd, Compression compression, std::int64_t mtime,
                                           Limits limits = {});
  Writer(Writer&&) noexcept;
  ~Writer();

  // Adds a whole entry. The path must pass CheckEntryPath and not repeat an earlier one
  // (kInvalid; the writer stays usable). After any other failure the writer is unusable and
  // every call returns that error. Dropping a writer without Close() writes nothing more.
  [[nodiscard]] Result<void> Add(std::string_view path, std::span<const std::byte> data);
  // Streams an entry of exactly `size` bytes: Begin, WriteData..., End (kInvalid if the
  // bytes written differ from size).
  [[nodiscard]] Result<void> Begin(std::string_view path, std::uint64_t size);
  [[nodiscard]] Result<void> WriteData(std::span<const std::byte> data);
  [[nodiscard]] Result<void> End();
  // Writes the end-of-archive marker and finishes compression. Required for a valid archive.
  // kInvalid if a zstd stream compressed beyond Limits::max_compression_ratio (the reader
  // would refuse it as a bomb).
  [[nodiscard]] Result<void> Close();

 private:
  struct Impl;
  explicit Writer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

struct Entry {
  std::string path;
  std::uint64_t size = 0;
  unsigned mode = 0;  // permission bits; always 0644 in a canonical archive
  std::int64_t mtime = 0;
  std::uint64_t header_offset = 0;  // where the entry's first header block starts
  std::uint64_t data_offset = 0;    // where its data starts (tar stream = file when kNone)
};

class Reader {
 public:
  // Reads the archive from `fd`, which stays owned by the caller and open while the reader
  // lives; the reader uses pread/read from offset 0 and must be the only user of the file
  // offset. `display` names the archive in messages. The compression is recognised from the
  // first bytes. kInvalid if it is not a canonical dlsys container.
  [[nodiscard]] static Result<Reader> Open(int fd, std::string display, Limits limits = {});
  Reader(Reader&&) noexcept;
  ~Reader();

  // Advances to the next entry (skipping what is left of the current one); nullopt after the
  // end-of-archive marker, once the end of the stream, the compression framing and the end of
  // the file have been checked. kInvalid naming the offset and what was expected otherwise.
  // Errors are sticky.
  [[nodiscard]] Result<std::optional<Entry>> Next();
  // Reads up to out.size() bytes of the current entry's data; 0 at the end of the entry.
  [[nodiscard]] Result<std::size_t> Read(std::span<std::byte> out);
  // Reads the rest of the current entry; kInvalid if it is larger than max_bytes.
  [[nodiscard]] Result<std::string> ReadAll(std::size_t max_bytes);
  // Uncompressed archives only (kUsage otherwise): the caller reads the current entry's data
  // itself (pread at Entry::data_offset); the reader moves past it without reading it.
  [[nodiscard]] Result<void> SkipData();
  Compression compression() const;

 private:
  struct Impl;
  explicit Reader(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace dlsys::archive
