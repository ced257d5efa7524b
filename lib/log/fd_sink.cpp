#include "log/internal/fd_sink.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "core/parallel.h"

namespace dlsys::log::internal {
namespace {

// One call for the whole text; the loop only resumes after a signal or a short write (a full
// disk), where the kernel has already split it.
void WriteAll(int fd, const char* p, std::size_t left) {
  while (left > 0) {
    const ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;  // nowhere to report a failing log; the command's own output still says it all
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
}

}  // namespace

void FdSink::sink_it_(const spdlog::details::log_msg& msg) {
  spdlog::memory_buf_t line;
  formatter_->format(msg, line);
  WriteAll(fd_, line.data(), line.size());
}

BatchingFdSink::BatchingFdSink(int fd, core::UniqueFd owned) : fd_(fd), owned_(std::move(owned)) {
  writer_ = std::thread([this] {
    core::NameThisThread("dlsys-log");
    Loop();
  });
}

BatchingFdSink::~BatchingFdSink() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  writer_.join();
}

void BatchingFdSink::sink_it_(const spdlog::details::log_msg& msg) {
  spdlog::memory_buf_t line;
  formatter_->format(msg, line);
  buffer_.append(line.data(), line.size());
  if (buffer_.size() >= kMaxBuffered) {
    WriteAll(fd_, buffer_.data(), buffer_.size());
    buffer_.clear();
  } else if (idle_) {
    idle_ = false;
    wake_.notify_one();
  }
}

void BatchingFdSink::flush_() {
  WriteAll(fd_, buffer_.data(), buffer_.size());
  buffer_.clear();
}

void BatchingFdSink::Loop() {
  std::unique_lock lock(mutex_);
  for (;;) {
    idle_ = buffer_.empty();
    wake_.wait(lock, [this] { return stop_ || !buffer_.empty(); });
    idle_ = false;
    // Written under the lock so that flush() and an overflowing producer keep the order; the
    // lock is free while lines gather below.
    spare_.swap(buffer_);
    WriteAll(fd_, spare_.data(), spare_.size());
    spare_.clear();
    if (stop_) return;
    wake_.wait_for(lock, kGather, [this] { return stop_; });
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
