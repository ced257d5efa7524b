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
#include <optional>
#include <vector>

#include "core/parallel.h"

namespace dlsys::core {
namespace {

Code CodeForErrno(int err) {
  return err == ENOENT || err == ENOTDIR ? Code::kNotFound : Code::kInvalid;
}

// Temporary paths of pending AtomicFiles, readable from a signal handler. A slot is free (0),
// being filled or emptied (1), or holds a complete NUL-terminated path (2); the handler only
// touches slots in state 2, so it never sees a half-written path.
constexpr int kMaxPending = 32;
constexpr std::size_t kMaxPath = 4096;
char g_pending[kMaxPending][kMaxPath];
std::atomic<int> g_slot_state[kMaxPending];

int RegisterPending(const std::string& path) {
  if (path.size() >= kMaxPath) return -1;
  for (int i = 0; i < kMaxPending; ++i) {
    int expected = 0;
    if (g_slot_state[i].compare_exchange_strong(expected, 1)) {
      std::memcpy(g_pending[i], path.c_str(), path.size() + 1);
      g_slot_state[i].store(2, std::memory_order_release);
      return i;
    }
  }
  return -1;
}

void UnregisterPending(int slot) {
  if (slot < 0) return;
  g_slot_state[slot].store(1, std::memory_order_release);
  g_pending[slot][0] = '\0';
  g_slot_state[slot].store(0, std::memory_order_release);
}

extern "C" void CleanupAndExit(int sig) {
  for (int i = 0; i < kMaxPending; ++i) {
    if (g_slot_state[i].load(std::memory_order_acquire) == 2) unlink(g_pending[i]);
  }
  _exit(128 + sig);
}

std::string DirOf(const std::string& path) {
  auto parent = std::filesystem::path(path).parent_path();
  return parent.empty() ? std::string(".") : parent.string();
}

std::string TempNameIn(const std::string& path, const char* suffix) {
  return DirOf(path) + "/." + std::filesystem::path(path).filename().string() + suffix;
}

// kInvalid unless `path` is absent or a regular file (lstat: a symbolic link is not replaced).
Result<void> RequireReplaceable(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0 || S_ISREG(st.st_mode)) return {};
  return Fail(Code::kInvalid, "'" + path + "' exists and is " + FileKindName(st.st_mode) +
                                  "; dlsys writes outputs only as regular files, so it will not "
                                  "replace it (choose another path)");
}

Result<void> SyncDirectory(const std::string& path) {
  const std::string dir = DirOf(path);
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd || ::fsync(fd.get()) != 0) {
    const int err = errno;
    return Fail(Code::kInternal, "cannot flush directory '" + dir + "': " + ErrnoMessage(err));
  }
  return {};
}

}  // namespace

std::string ErrnoMessage(int err) { return std::strerror(err); }

const char* FileKindName(unsigned st_mode) {
  switch (st_mode & S_IFMT) {
    case S_IFREG:
      return "a regular file";
    case S_IFDIR:
      return "a directory";
    case S_IFIFO:
      return "a FIFO";
    case S_IFSOCK:
      return "a socket";
    case S_IFCHR:
      return "a character device";
    case S_IFBLK:
      return "a block device";
    case S_IFLNK:
      return "a symbolic link";
    default:
      return "not a regular file";
  }
}

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.release();
  }
  return *this;
}

UniqueFd::~UniqueFd() {
  if (fd_ >= 0) ::close(fd_);
}

Result<UniqueFd> OpenRegularFile(const std::string& path) {
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever.
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
  if (!fd) {
    const int err = errno;
    return Fail(CodeForErrno(err), "cannot open '" + path + "': " + ErrnoMessage(err));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    const int err = errno;
    return Fail(Code::kInvalid, "cannot stat '" + path + "': " + ErrnoMessage(err));
  }
  if (!S_ISREG(st.st_mode)) {
    return Fail(Code::kInvalid, "'" + path + "' is " + FileKindName(st.st_mode) +
                                    ", not a regular file; give dlsys a regular file");
  }
  const int flags = ::fcntl(fd.get(), F_GETFL);
  if (flags < 0 || ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK) != 0) {
    const int err = errno;
    return Fail(Code::kInternal, "cannot read '" + path + "': " + ErrnoMessage(err));
  }
  return fd;
}

Result<void> ReadAt(int fd, std::uint64_t offset, std::span<std::byte> out,
                    const std::string& display) {
  std::size_t done = 0;
  while (done < out.size()) {
    const ssize_t n =
        ::pread(fd, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      return Fail(Code::kInvalid, "cannot read '" + display + "': " + ErrnoMessage(err));
    }
    if (n == 0) {
      return Fail(Code::kInvalid, "'" + display + "' is truncated: it ends at byte " +
                                      std::to_string(offset + done) + ", expected at least " +
                                      std::to_string(offset + out.size()));
    }
    done += static_cast<std::size_t>(n);
  }
  return {};
}

void FileContent::Unmap::operator()(std::byte* p) const {
  if (p != nullptr) ::munmap(p, size);
}

Result<FileContent> FileContent::Read(const std::string& path, std::uint64_t max_bytes) {
  DLSYS_ASSIGN_OR_RETURN(UniqueFd fd, OpenRegularFile(path));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    const int err = errno;
    return Fail(Code::kInvalid, "cannot stat '" + path + "': " + ErrnoMessage(err));
  }
  const auto size = static_cast<std::uint64_t>(st.st_size);
  if (size > max_bytes) {
    return Fail(Code::kInvalid, "'" + path + "' is " + std::to_string(size) +
                                    " bytes, more than the limit of " + std::to_string(max_bytes));
  }
  FileContent content;
  content.path_ = path;
  content.size_ = static_cast<std::size_t>(size);
  // Anonymous memory (never the file itself: a mapping of the file would raise SIGBUS if it
  // were truncated), in huge pages where the kernel offers them: a 1 GiB model costs 512 page
  // faults instead of 262,144.
  const std::size_t length = std::max<std::size_t>(content.size_, 1);
  void* p = ::mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    const int err = errno;
    return Fail(Code::kInternal, "cannot allocate " + std::to_string(length) + " bytes for '" +
                                     path + "': " + ErrnoMessage(err));
  }
  content.data_ = std::unique_ptr<std::byte, Unmap>(static_cast<std::byte*>(p), Unmap{length});
  ::madvise(p, length, MADV_HUGEPAGE);
  // Large files are read in pieces on all cores: copying out of the page cache and faulting in
  // the buffer are the whole cost.
  constexpr std::size_t kPiece = std::size_t{64} << 20;
  const std::size_t pieces = (content.size_ + kPiece - 1) / kPiece;
  std::vector<std::optional<Error>> errors(pieces);
  ParallelFor(pieces, 0, [&](std::size_t i) {
    const std::size_t off = i * kPiece;
    const std::size_t n = std::min(kPiece, content.size_ - off);
    if (auto ok = ReadAt(fd.get(), off, std::span(content.data_.get() + off, n), path); !ok) {
      errors[i] = std::move(ok).error();
    }
  });
  for (auto& e : errors) {
    if (e) return tl::unexpected(std::move(*e));
  }
  std::byte extra;
  const ssize_t more = ::pread(fd.get(), &extra, 1, static_cast<off_t>(size));
  if (more != 0) {
    return Fail(Code::kInvalid, "'" + path + "' changed size while it was read; try again");
  }
  return content;
}

Result<std::string> ReadFile(const std::string& path, std::size_t max_bytes) {
  DLSYS_ASSIGN_OR_RETURN(UniqueFd fd, OpenRegularFile(path));
  std::string out;
  std::array<char, 65536> buf;
  while (true) {
    ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      return Fail(Code::kInvalid, "cannot read '" + path + "': " + ErrnoMessage(err));
    }
    if (n == 0) break;
    if (out.size() + static_cast<std::size_t>(n) > max_bytes) {
      return Fail(Code::kInvalid, "'" + path + "' is larger than the limit of " +
                                      std::to_string(max_bytes) + " bytes");
    }
    out.append(buf.data(), static_cast<std::size_t>(n));
  }
  return out;
}

Result<AtomicFile> AtomicFile::Create(const std::string& path, bool overwrite, unsigned mode) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!overwrite) {
      return Fail(Code::kExists, "'" + path + "' already exists; pass --force to replace it");
    }
    DLSYS_TRY(RequireReplaceable(path));
  }
  AtomicFile file;
  file.path_ = path;
  file.overwrite_ = overwrite;
  file.mode_ = mode;
  const std::string dir = DirOf(path);
  file.fd_ = ::open(dir.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, mode);
  if (file.fd_ < 0) {
    // No O_TMPFILE here: fall back to a hidden name, removed on failure or signal.
    std::string tmpl = TempNameIn(path, ".XXXXXX");
    file.fd_ = mkostemp(tmpl.data(), O_CLOEXEC);
    if (file.fd_ < 0) {
      int err = errno;
      return Fail(CodeForErrno(err), "cannot create a file in '" + dir + "': " + ErrnoMessage(err));
    }
    file.temp_path_ = tmpl;
    file.pending_slot_ = RegisterPending(file.temp_path_);
    if (file.pending_slot_ < 0) {
      return Fail(Code::kInternal, "cannot create '" + path + "': too many pending outputs");
    }
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
      pending_slot_(std::exchange(other.pending_slot_, -1)),
      overwrite_(other.overwrite_),
      committed_(other.committed_),
      mode_(other.mode_) {
  other.temp_path_.clear();
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_ && !temp_path_.empty()) ::unlink(temp_path_.c_str());
  UnregisterPending(pending_slot_);
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
      return SyncDirectory(path_);
    }
    std::string tmp = TempNameIn(path_, (".tmp" + std::to_string(::getpid())).c_str());
    ::unlink(tmp.c_str());
    pending_slot_ = RegisterPending(tmp);
    if (::linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, tmp.c_str(), AT_SYMLINK_FOLLOW) != 0) {
      int err = errno;
      UnregisterPending(std::exchange(pending_slot_, -1));
      return Fail(Code::kInternal, "cannot create '" + tmp + "': " + ErrnoMessage(err));
    }
    temp_path_ = tmp;
  }
  if (!overwrite_) {
    if (::renameat2(AT_FDCWD, temp_path_.c_str(), AT_FDCWD, path_.c_str(), RENAME_NOREPLACE) != 0) {
      int err = errno;
      if (err == EEXIST) {
        return Fail(Code::kExists, "'" + path_ + "' already exists; pass --force to replace it");
      }
      return Fail(Code::kInternal, "cannot create '" + path_ + "': " + ErrnoMessage(err));
    }
  } else {
    // Checked again right before the rename: never replace a FIFO, device or directory.
    DLSYS_TRY(RequireReplaceable(path_));
    if (::rename(temp_path_.c_str(), path_.c_str()) != 0) {
      int err = errno;
      return Fail(Code::kInternal, "cannot replace '" + path_ + "': " + ErrnoMessage(err));
    }
  }
  UnregisterPending(std::exchange(pending_slot_, -1));
  temp_path_.clear();
  committed_ = true;
  return SyncDirectory(path_);
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
  for (int sig : {SIGHUP, SIGINT, SIGPIPE, SIGTERM}) sigaction(sig, &sa, nullptr);
}

}  // namespace dlsys::core
