// SHA-256 digests of byte ranges, streamed or split into shards hashed in parallel.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/error.h"

namespace dlsys::signing {

using Sha256Digest = std::array<std::byte, 32>;

Sha256Digest Sha256(std::span<const std::byte> data);
std::string Sha256Hex(std::span<const std::byte> data);  // 64 lower-case hex digits

// Streaming SHA-256. Not thread-safe; movable.
class Sha256Hasher {
 public:
  Sha256Hasher();
  ~Sha256Hasher();
  Sha256Hasher(Sha256Hasher&&) noexcept;
  Sha256Hasher& operator=(Sha256Hasher&&) noexcept;
  void Update(std::span<const std::byte> data);
  Sha256Digest Finish();  // the hasher is reset afterwards
  std::string FinishHex();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Files larger than this are digested in shards (docs/archive-format.md).
inline constexpr std::uint64_t kShardBytes = 64ull << 20;

// How a payload file is digested: one SHA-256 of the whole content when size <= shard_bytes,
// else one SHA-256 per consecutive shard_bytes-sized shard (the last may be shorter).
struct FileDigest {
  std::uint64_t size = 0;
  std::string sha256;                // set iff size <= shard_bytes
  std::uint64_t shard_bytes = 0;     // set iff sharded
  std::vector<std::string> shards;   // hex digests, set iff sharded
};

// Digests `data` per the scheme above, hashing shards on up to `threads` threads
// (0 = core::WorkerCount()).
FileDigest DigestBytes(std::span<const std::byte> data, std::uint64_t shard_bytes = kShardBytes,
                       unsigned threads = 0);

}  // namespace dlsys::signing
