// Hashing a stream in digest jobs (whole files or shards) while the next chunk is being read:
// decompression and SHA-256 overlap on two cores instead of taking turns on one.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace dlsys::package::internal {

// One producer (the caller) fills buffers from Acquire() and hands them back with Submit();
// SHA-256 runs on a helper thread (or inline when `pipelined` is false), one digest per job,
// a job ending where Submit(..., ends_job = true) says. Bytes are also appended to `keep`
// (may be null), in order. Not thread-safe for more than one producer.
class StreamHasher {
 public:
  StreamHasher(std::string* keep, bool pipelined);
  ~StreamHasher();
  StreamHasher(const StreamHasher&) = delete;
  StreamHasher& operator=(const StreamHasher&) = delete;

  // A free buffer to fill (waits until the hashing thread has released one).
  std::span<std::byte> Acquire();
  // Queues the first n bytes of the buffer from the last Acquire().
  void Submit(std::size_t n, bool ends_job);
  // Waits for the queued work; the lower-case hex digest of every ended job, in order.
  std::vector<std::string> Finish();
  // Stops without hashing what is queued (after a read error).
  void Abandon();

 private:
  struct Chunk {
    std::size_t buffer;
    std::size_t n;
    bool ends_job;
  };
  void Hash(const Chunk& c);
  void Loop();

  static constexpr std::size_t kBuffers = 3;
  static constexpr std::size_t kBufferBytes = 1 << 20;
  std::string* keep_;
  bool pipelined_;
  std::vector<std::vector<std::byte>> buffers_;
  std::vector<std::size_t> free_;  // buffers the producer may fill
  std::deque<Chunk> queue_;        // buffers waiting to be hashed
  std::size_t current_ = 0;        // the buffer handed out by the last Acquire()
  bool stop_ = false;
  std::vector<std::string> digests_;
  struct HasherState;
  std::unique_ptr<HasherState> state_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::thread thread_;
};

}  // namespace dlsys::package::internal
