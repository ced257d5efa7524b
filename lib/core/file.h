// Files: read-only mappings, bounded reads, and atomic creation of outputs.
//
// Nothing here prints or exits. Errors carry the path and the system's reason.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "core/error.h"

namespace dlsys::core {

// A read-only view of a whole file, mapped into memory (empty files map to an empty span).
// Movable, not copyable. Thread-safe to read from several threads.
class MappedFile {
 public:
  // kNotFound if the path does not exist, kInvalid if it is not a regular file.
  [[nodiscard]] static Result<MappedFile> Open(const std::string& path);

  MappedFile() = default;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  std::span<const std::byte> bytes() const { return {data_, size_}; }
  std::size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

// Reads a whole file, refusing files larger than max_bytes (kInvalid).
[[nodiscard]] Result<std::string> ReadFile(const std::string& path,
                                           std::size_t max_bytes = 64u << 20);

// An output file that appears under its final name only when Commit() succeeds.
//
// Data goes to an unnamed file in the target's directory (O_TMPFILE) or, where the file
// system lacks it, to a hidden temporary name that is removed on destruction and on SIGINT/
// SIGTERM (see InstallSignalCleanup). A crash or kill before Commit() leaves no partial
// output under the final name. Not thread-safe.
class AtomicFile {
 public:
  // kExists if `path` exists and !overwrite (checked early so long work is not wasted;
  // Commit checks again without a race).
  [[nodiscard]] static Result<AtomicFile> Create(const std::string& path, bool overwrite,
                                                 unsigned mode = 0644);

  AtomicFile(AtomicFile&& other) noexcept;
  AtomicFile& operator=(AtomicFile&&) = delete;
  AtomicFile(const AtomicFile&) = delete;
  ~AtomicFile();

  int fd() const { return fd_; }
  const std::string& path() const { return path_; }

  [[nodiscard]] Result<void> Write(std::span<const std::byte> data);
  [[nodiscard]] Result<void> Write(std::string_view data) {
    return Write(std::as_bytes(std::span(data.data(), data.size())));
  }
  // Flushes to disk and links the file under its final name.
  [[nodiscard]] Result<void> Commit();

 private:
  AtomicFile() = default;
  std::string path_;
  std::string temp_path_;  // empty when using O_TMPFILE
  int fd_ = -1;
  bool overwrite_ = false;
  bool committed_ = false;
  unsigned mode_ = 0644;
};

// Writes bytes to path atomically (AtomicFile + Commit).
[[nodiscard]] Result<void> WriteFileAtomic(const std::string& path, std::string_view data,
                                           bool overwrite, unsigned mode = 0644);

// Installs SIGINT/SIGTERM handlers that remove pending temporary files of AtomicFile, then
// exit with 128+signal. Call once from main.
void InstallSignalCleanup();

// The system's message for errno, e.g. "No such file or directory".
std::string ErrnoMessage(int err);

}  // namespace dlsys::core
