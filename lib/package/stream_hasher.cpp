#include "package/internal/stream_hasher.h"

#include "core/encoding.h"
#include "signing/digest.h"

namespace dlsys::package::internal {

struct StreamHasher::HasherState {
  signing::Sha256Hasher sha;
};

StreamHasher::StreamHasher(std::string* keep, bool pipelined)
    : keep_(keep), pipelined_(pipelined), state_(std::make_unique<HasherState>()) {
  const std::size_t n = pipelined_ ? kBuffers : 1;
  buffers_.assign(n, std::vector<std::byte>(kBufferBytes));
  for (std::size_t i = 0; i < n; ++i) free_.push_back(i);
  if (pipelined_) thread_ = std::thread([this] { Loop(); });
}

StreamHasher::~StreamHasher() { Abandon(); }

std::span<std::byte> StreamHasher::Acquire() {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [this] { return !free_.empty(); });
  current_ = free_.back();
  free_.pop_back();
  return buffers_[current_];
}

void StreamHasher::Hash(const Chunk& c) {
  const auto bytes = std::span<const std::byte>(buffers_[c.buffer].data(), c.n);
  state_->sha.Update(bytes);
  if (keep_) keep_->append(core::AsChars(bytes));
  if (c.ends_job) digests_.push_back(state_->sha.FinishHex());
}

void StreamHasher::Submit(std::size_t n, bool ends_job) {
  const Chunk c{current_, n, ends_job};
  if (!pipelined_) {
    Hash(c);
    free_.push_back(c.buffer);
    return;
  }
  {
    std::lock_guard lock(mu_);
    queue_.push_back(c);
  }
  cv_.notify_all();
}

void StreamHasher::Loop() {
  for (;;) {
    Chunk c;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopped and drained
      c = queue_.front();
      queue_.pop_front();
    }
    Hash(c);
    {
      std::lock_guard lock(mu_);
      free_.push_back(c.buffer);
    }
    cv_.notify_all();
  }
}

std::vector<std::string> StreamHasher::Finish() {
  if (thread_.joinable()) {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  return std::move(digests_);
}

void StreamHasher::Abandon() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard lock(mu_);
    queue_.clear();
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

}  // namespace dlsys::package::internal
