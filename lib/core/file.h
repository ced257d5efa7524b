// Files: opening inputs safely, reading them whole, and atomic creation of outputs.
//
// Inputs are opened once and only if they are regular files: a FIFO, device, socket or
// directory given as an input is refused at once instead of blocking or reading forever.
// Contents are read into memory (a snapshot): nothing here maps files, so a file truncated
// while it is being read gives an error, never SIGBUS.
//
// Nothing here prints or exits. Errors carry the path and the system's reason.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "core/error.h"

namespace dlsys::core {

// An owned file descriptor, closed on destruction. Movable, not copyable.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd();

  int get() const { return fd_; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  explicit operator bool() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

// Opens `path` for reading, only if it is a regular file (symbolic links are followed).
// kNotFound if it does not exist; kInvalid, naming the kind of file, for a directory, FIFO,
// socket or device (opened non-blocking first, so a FIFO never blocks); kInvalid otherwise.
[[nodiscard]] Result<UniqueFd> OpenRegularFile(const std::string& path);

// Reads exactly `out.size()` bytes at `offset`; kInvalid naming `display` if the file ends
// first (it was truncated) or the read fails.
[[nodiscard]] Result<void> ReadAt(int fd, std::uint64_t offset, std::span<std::byte> out,
                                  const std::string& display);

// The whole content of a regular file, read into memory. Later changes to the file do not
// show: what the caller hashes, loads and writes is this one snapshot. Movable.
class FileContent {
 public:
  // kNotFound / kInvalid as OpenRegularFile; kInvalid if larger than max_bytes or if the file
  // changes size while it is read.
  [[nodiscard]] static Result<FileContent> Read(const std::string& path,
                                                std::uint64_t max_bytes = std::uint64_t{1} << 40);

  std::span<const std::byte> bytes() const { return {data_.get(), size_}; }
  std::size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  struct Unmap {
    std::size_t size;
    void operator()(std::byte* p) const;
  };
  std::string path_;
  std::unique_ptr<std::byte, Unmap> data_{nullptr, Unmap{0}};
  std::size_t size_ = 0;
};

// Reads a whole regular file as text, refusing files larger than max_bytes (kInvalid).
[[nodiscard]] Result<std::string> ReadFile(const std::string& path,
                                           std::size_t max_bytes = 64u << 20);

// An output file that appears under its final name only when Commit() succeeds.
//
// Data goes to an unnamed file in the target's directory (O_TMPFILE) or, where the file
// system lacks it, to a hidden temporary name that is removed on destruction and on the
// signals InstallSignalCleanup handles. A crash or kill before Commit() leaves no partial
// output under the final name. Outputs are only ever regular files: an existing directory,
// FIFO, socket, device or symbolic link at the path is never replaced (kInvalid), even with
// overwrite. Commit() flushes the data and the directory entry to disk. Not thread-safe.
class AtomicFile {
 public:
  // kExists if `path` exists and !overwrite (checked early so long work is not wasted;
  // Commit checks again without a race); kInvalid if it exists and is not a regular file.
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
  // Flushes to disk, links the file under its final name and flushes the directory.
  [[nodiscard]] Result<void> Commit();

 private:
  AtomicFile() = default;
  std::string path_;
  std::string temp_path_;  // empty when using O_TMPFILE
  int fd_ = -1;
  int pending_slot_ = -1;  // slot of temp_path_ in the signal-cleanup registry
  bool overwrite_ = false;
  bool committed_ = false;
  unsigned mode_ = 0644;
};

// Writes bytes to path atomically (AtomicFile + Commit).
[[nodiscard]] Result<void> WriteFileAtomic(const std::string& path, std::string_view data,
                                           bool overwrite, unsigned mode = 0644);

// Installs handlers for SIGHUP, SIGINT, SIGPIPE and SIGTERM that remove pending temporary
// files of AtomicFile, then exit with 128 + the signal number (129, 130, 141, 143). Call once
// from main.
void InstallSignalCleanup();

// The system's message for errno, e.g. "No such file or directory".
std::string ErrnoMessage(int err);

// "a FIFO", "a directory", ... for an st_mode that is not a regular file.
const char* FileKindName(unsigned st_mode);

}  // namespace dlsys::core
