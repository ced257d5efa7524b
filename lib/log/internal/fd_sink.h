// An spdlog sink that writes each formatted line to a file descriptor with one write() call,
// so lines from several threads or processes appending to one file never interleave.
// Internal to lib/log.
#pragma once

#include <spdlog/sinks/base_sink.h>

#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "core/file.h"

namespace dlsys::log::internal {

class FdSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  // Writes to `fd`, closing it on destruction if `owned` holds it.
  FdSink(int fd, core::UniqueFd owned) : fd_(fd), owned_(std::move(owned)) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override;
  void flush_() override {}  // nothing is buffered: every line is written at once

 private:
  int fd_;
  core::UniqueFd owned_;
};

// The server's sink: lines are appended to a buffer and a writer thread writes them, many per
// write() call. The writer is woken only when a line arrives while it is idle; after each write
// it lets lines gather for kGather, so a busy server costs one wake-up and one write() per
// interval instead of per line. A write() always holds whole lines. Memory is bounded: a
// producer that finds kMaxBuffered bytes waiting writes them itself (and so waits for the disk
// rather than dropping records). flush() (Shutdown, ~Channel) writes everything at once.
class BatchingFdSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  static constexpr auto kGather = std::chrono::milliseconds(2);
  static constexpr std::size_t kMaxBuffered = 1 << 20;

  BatchingFdSink(int fd, core::UniqueFd owned);
  ~BatchingFdSink() override;  // writes what is buffered and joins the writer

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override;
  void flush_() override;

 private:
  void Loop();

  int fd_;
  core::UniqueFd owned_;
  std::string buffer_;  // whole lines, guarded by base_sink::mutex_
  std::string spare_;   // the other buffer, so neither is reallocated per interval
  std::condition_variable wake_;
  bool idle_ = false;  // the writer waits for a first line (and must be woken)
  bool stop_ = false;
  std::thread writer_;
};

// Opens `path` for appending, creating it with mode 0644. Only regular files: a FIFO, device,
// socket or directory is refused (kInvalid, naming the path and what it is) without blocking.
[[nodiscard]] Result<core::UniqueFd> OpenAppendFile(const std::string& path);

}  // namespace dlsys::log::internal
