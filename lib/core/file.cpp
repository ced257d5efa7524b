#include "core/file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>

namespace dlsys::core {
namespace {

Code CodeForErrno(int err) {
  return err == ENOENT || err == ENOTDIR ? Code::kNotFound : Code::kInvalid;
}

// Temporary paths of pending AtomicFiles, readable from a signal handler. Slots hold
// NUL-terminated paths; a slot is in use while its first byte is non-zero.
constexpr int kMaxPending = 16;
constexpr int kMaxPath = 4096;
char g_pending[kMaxPending][kMaxPath];
std::atomic<bool> g_slot_used[kMaxPending];

int RegisterPending(const std::string& path) {
  if (path.size() >= kMaxPath) return -1;
  for (int i = 0; i < kMaxPending; ++i) {
    bool expected = false;
    if (g_slot_used[i].compare_exchange_strong(expected, true)) {
      std::memcpy(g_pending[i], path.c_str(), path.size() + 1);
      return i;
    }
  }
  return -1;
}

void UnregisterPending(const std::string& path) {
  for (int i = 0; i < kMaxPending; ++i) {
    if (g_slot_used[i].load() && path == g_pending[i]) {
      g_pending[i][0] = '\0';
      g_slot_used[i].store(false);
    }
  }
}

extern "C" void CleanupAndExit(int sig) {
  for (int i = 0; i < kMaxPending; ++i) {
    if (g_slot_used[i].load() && g_pending[i][0] != '\0') unlink(g_pending[i]);
  }
  _exit(128 + sig);
}

std::string DirOf(const std::string& path) {
  auto parent = std::filesystem::path(path).parent_path();
  return parent.empty() ? std::string(".") : parent.string();
}

}  // namespace

std::string ErrnoMessage(int err) { return std::strerror(err); }

Result<MappedFile> MappedFile::Open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    return Fail(CodeForErrno(err), "cannot open '" + path + "': " + ErrnoMessage(err));
  }
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return Fail(Code::kInvalid, "'" + path + "' is not a regular file");
  }
  MappedFile file;
  file.path_ = path;
  file.size_ = static_cast<std::size_t>(st.st_size);
  if (file.size_ > 0) {
    void* data = mmap(nullptr, file.size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (data == MAP_FAILED) {
      int err = errno;
      ::close(fd);
      return Fail(Code::kInternal, "cannot map '" + path + "': " + ErrnoMessage(err));
    }
    madvise(data, file.size_, MADV_SEQUENTIAL | MADV_WILLNEED);
    file.data_ = static_cast<const std::byte*>(data);
  }
  ::close(fd);
  return file;
}

MappedFile::MappedFile(MappedFile&& other) noexcept { *this = std::move(other); }

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    if (data_ != nullptr) munmap(const_cast<std::byte*>(data_), size_);
    path_ = std::move(other.path_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) munmap(const_cast<std::byte*>(data_), size_);
}

Result<std::string> ReadFile(const std::string& path, std::size_t max_bytes) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    return Fail(CodeForErrno(err), "cannot open '" + path + "': " + ErrnoMessage(err));
  }
  struct stat st {};
  if (fstat(fd, &st) != 0 || S_ISDIR(st.st_mode)) {
    ::close(fd);
    return Fail(Code::kInvalid, "'" + path + "' is a directory, expected a file");
  }
  std::string out;
  std::array<char, 65536> buf;
  while (true) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      return Fail(Code::kInvalid, "cannot read '" + path + "': " + ErrnoMessage(err));
    }
    if (n == 0) break;
    if (out.size() + static_cast<std::size_t>(n) > max_bytes) {
      ::close(fd);
      return Fail(Code::kInvalid, "'" + path + "' is larger than the limit of " +
                                      std::to_string(max_bytes) + " bytes");
    }
    out.append(buf.data(), static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

Result<AtomicFile> AtomicFile::Create(const std::string& path, bool overwrite, unsigned mode) {
  struct stat st {};
  if (!overwrite && ::lstat(path.c_str(), &st) == 0) {
    return Fail(Code::kExists, "'" + path + "' already exists; pass --force to replace it");
  }
  AtomicFile file;
  file.path_ = path;
  file.overwrite_ = overwrite;
  file.mode_ = mode;
  const std::string dir = DirOf(path);
  file.fd_ = ::open(dir.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, mode);
  if (file.fd_ < 0) {
    // No O_TMPFILE here: fall back to a hidden name, removed on failure or signal.
    std::string tmpl = dir + "/." + std::filesystem::path(path).filename().string() + ".XXXXXX";
    file.fd_ = mkostemp(tmpl.data(), O_CLOEXEC);
    if (file.fd_ < 0) {
      int err = errno;
      return Fail(CodeForErrno(err),
                  "cannot create a file in '" + dir + "': " + ErrnoMessage(err));
    }
    file.temp_path_ = tmpl;
    RegisterPending(file.temp_path_);
  }
  // Modes for O_TMPFILE and mkostemp are filtered by umask or fixed at 0600; set it exactly.
  if (fchmod(file.fd_, mode) != 0) {
    int err = errno;
    return Fail(Code::kInternal, "cannot set mode of '" + path + "': " + ErrnoMessage(err));
  }
  return file;
}

AtomicFile::AtomicFile(AtomicFile&& other) noexcept
    : path_(std::move(other.path_)),
      temp_path_(std::move(other.temp_path_)),
      fd_(std::exchange(other.fd_, -1)),
      overwrite_(other.overwrite_),
      committed_(other.committed_),
      mode_(other.mode_) {
  other.temp_path_.clear();
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_ && !temp_path_.empty()) {
    ::unlink(temp_path_.c_str());
    UnregisterPending(temp_path_);
  }
}

Result<void> AtomicFile::Write(std::span<const std::byte> data) {
  const std::byte* p = data.data();
  std::size_t left = data.size();
  while (left > 0) {
    ssize_t n = ::write(fd_, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      return Fail(Code::kInternal, "cannot write '" + path_ + "': " + ErrnoMessage(err));
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  return {};
}

Result<void> AtomicFile::Commit() {
  if (fdatasync(fd_) != 0) {
    int err = errno;
    return Fail(Code::kInternal, "cannot flush '" + path_ + "': " + ErrnoMessage(err));
  }
  const std::string proc = "/proc/self/fd/" + std::to_string(fd_);
  if (temp_path_.empty()) {
    // O_TMPFILE: give the unnamed file a name. linkat never replaces, so with overwrite we
    // link under a temporary name first and rename over the target.
    if (!overwrite_) {
      if (::linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, path_.c_str(), AT_SYMLINK_FOLLOW) != 0) {
        int err = errno;
        if (err == EEXIST) {
          return Fail(Code::kExists, "'" + path_ + "' already exists; pass --force to replace it");
        }
        return Fail(Code::kInternal, "cannot create '" + path_ + "': " + ErrnoMessage(err));
      }
      committed_ = true;
      return {};
    }
    std::string tmp = DirOf(path_) + "/." + std::filesystem::path(path_).filename().string() +
                      ".tmp" + std::to_string(::getpid());
    ::unlink(tmp.c_str());
    if (::linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, tmp.c_str(), AT_SYMLINK_FOLLOW) != 0) {
      int err = errno;
      return Fail(Code::kInternal, "cannot create '" + tmp + "': " + ErrnoMessage(err));
    }
    temp_path_ = tmp;
    RegisterPending(temp_path_);
  }
  if (!overwrite_) {
    if (::renameat2(AT_FDCWD, temp_path_.c_str(), AT_FDCWD, path_.c_str(), RENAME_NOREPLACE) != 0) {
      int err = errno;
      if (err == EEXIST) {
        return Fail(Code::kExists, "'" + path_ + "' already exists; pass --force to replace it");
      }
      return Fail(Code::kInternal, "cannot create '" + path_ + "': " + ErrnoMessage(err));
    }
  } else if (::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    int err = errno;
    return Fail(Code::kInternal, "cannot replace '" + path_ + "': " + ErrnoMessage(err));
  }
  UnregisterPending(temp_path_);
  temp_path_.clear();
  committed_ = true;
  return {};
}

Result<void> WriteFileAtomic(const std::string& path, std::string_view data, bool overwrite,
                             unsigned mode) {
  DLSYS_ASSIGN_OR_RETURN(AtomicFile file, AtomicFile::Create(path, overwrite, mode));
  DLSYS_TRY(file.Write(data));
  return file.Commit();
}

void InstallSignalCleanup() {
  struct sigaction sa {};
  sa.sa_handler = CleanupAndExit;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

}  // namespace dlsys::core
