// An spdlog sink that writes each formatted line to a file descriptor with one write() call,
// so lines from several threads or processes appending to one file never interleave.
// Internal to lib/log.
#pragma once

#include <spdlog/sinks/base_sink.h>

#include <mutex>

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

// Opens `path` for appending, creating it with mode 0644. Only regular files: a FIFO, device,
// socket or directory is refused (kInvalid, naming the path and what it is) without blocking.
[[nodiscard]] Result<core::UniqueFd> OpenAppendFile(const std::string& path);

}  // namespace dlsys::log::internal
