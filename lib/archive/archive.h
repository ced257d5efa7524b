// Reading and writing the tar container of .dlsys archives (libarchive).
//
// Writer: POSIX pax (restricted: extended headers only when needed), deterministic: entries
// are written in the order given, owner 0:0 with empty names, the given mode and mtime, no
// atime/ctime, compression without timestamps or file names.
//
// Reader: streams entries in order and enforces safety before handing an entry out: relative
// normalised ASCII paths only (no absolute path, no "." or ".." component, no empty component,
// no backslash, control or non-ASCII characters), regular files only (no symlink, hard link,
// device, FIFO, directory or sparse file), no duplicate names and no entry below another
// entry's name, bounded entry size, entry count and compression ratio, and a final
// end-of-archive marker (an archive cut at an entry boundary is truncated). It never writes
// to disk.
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

// kInvalid with a message naming the path and the rule it breaks.
[[nodiscard]] Result<void> CheckEntryPath(std::string_view path);

class Writer {
 public:
  // Writes to `fd` (not owned; not closed). `mtime` is stored for every entry.
  [[nodiscard]] static Result<Writer> Open(int fd, Compression compression, std::int64_t mtime);
  Writer(Writer&&) noexcept;
  ~Writer();

  // Adds a whole entry. The path must pass CheckEntryPath and not repeat an earlier one
  // (kInvalid; the writer stays usable). After any other failure the writer is unusable and
  // every call returns that error. Dropping a writer without Close() writes nothing more.
  [[nodiscard]] Result<void> Add(std::string_view path, std::span<const std::byte> data,
                                 unsigned mode = 0644);
  // Streams an entry of exactly `size` bytes: Begin, WriteData..., End (kInvalid if the
  // bytes written differ from size).
  [[nodiscard]] Result<void> Begin(std::string_view path, std::uint64_t size, unsigned mode = 0644);
  [[nodiscard]] Result<void> WriteData(std::span<const std::byte> data);
  [[nodiscard]] Result<void> End();
  // Writes the end-of-archive marker and flushes compression. Required for a valid archive.
  [[nodiscard]] Result<void> Close();

 private:
  struct Impl;
  explicit Writer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

struct Limits {
  std::uint64_t max_entry_bytes = 1ull << 40;  // 1 TiB per entry
  std::uint64_t max_entries = 100000;
  // Largest allowed ratio of uncompressed to compressed bytes, checked once more than
  // ratio_grace_bytes have been produced (compression bombs).
  double max_compression_ratio = 1000.0;
  std::uint64_t ratio_grace_bytes = 64ull << 20;
};

struct Entry {
  std::string path;
  std::uint64_t size = 0;
  unsigned mode = 0;  // permission bits only
  std::int64_t mtime = 0;
};

class Reader {
 public:
  // Opens a file: plain tar, or tar compressed with gzip or zstd (detected from the content).
  // kNotFound if missing; kInvalid if not a tar archive.
  [[nodiscard]] static Result<Reader> Open(const std::string& path, Limits limits = {});
  Reader(Reader&&) noexcept;
  ~Reader();

  // Advances to the next entry; nullopt at the end of the archive. kInvalid (message names
  // the entry and the rule) for unsafe entries, duplicates, limits or corrupt/truncated data.
  [[nodiscard]] Result<std::optional<Entry>> Next();
  // Reads up to out.size() bytes of the current entry's data; 0 at the end of the entry.
  // kInvalid if the data is truncated or corrupt or the compression ratio limit is exceeded.
  [[nodiscard]] Result<std::size_t> Read(std::span<std::byte> out);
  // Reads the rest of the current entry; kInvalid if it is larger than max_bytes.
  [[nodiscard]] Result<std::string> ReadAll(std::size_t max_bytes);
  Compression compression() const;
  // Byte offset in the (uncompressed) tar stream where the current entry's data begins, for
  // direct positional reads of uncompressed archives.
  std::uint64_t data_offset() const;

 private:
  struct Impl;
  explicit Reader(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace dlsys::archive
