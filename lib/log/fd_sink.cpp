#include "log/internal/fd_sink.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace dlsys::log::internal {

void FdSink::sink_it_(const spdlog::details::log_msg& msg) {
  spdlog::memory_buf_t line;
  formatter_->format(msg, line);
  const char* p = line.data();
  std::size_t left = line.size();
  // One call for the whole line; the loop only resumes after a signal or a short write
  // (a full disk), where the kernel has already split the line.
  while (left > 0) {
    const ssize_t n = ::write(fd_, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;  // nowhere to report a failing log; the command's own output still says it all
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
}

namespace {

tl::unexpected<Error> NotRegular(const std::string& path, unsigned st_mode) {
  return Fail(Code::kInvalid, "the log file '" + path + "' is " + core::FileKindName(st_mode) +
                                  ", not a regular file; give a regular file to append to");
}

}  // namespace

Result<core::UniqueFd> OpenAppendFile(const std::string& path) {
  // O_NONBLOCK: opening a FIFO would otherwise wait for a reader forever.
  core::UniqueFd fd(::open(
      path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, 0644));
  if (!fd) {
    const int err = errno;
    // A FIFO without a reader fails with ENXIO, a directory with EISDIR: say what it is.
    if (struct stat st{}; ::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
      return NotRegular(path, st.st_mode);
    }
    return Fail(Code::kInvalid, "cannot open the log file '" + path + "': " +
                                    core::ErrnoMessage(err) + "; give a regular file to append to");
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    const int err = errno;
    return Fail(Code::kInvalid,
                "cannot stat the log file '" + path + "': " + core::ErrnoMessage(err));
  }
  if (!S_ISREG(st.st_mode)) return NotRegular(path, st.st_mode);
  const int flags = ::fcntl(fd.get(), F_GETFL);
  if (flags < 0 || ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK) != 0) {
    const int err = errno;
    return Fail(Code::kInvalid,
                "cannot use the log file '" + path + "': " + core::ErrnoMessage(err));
  }
  return fd;
}

}  // namespace dlsys::log::internal
