// The byte streams under the tar layer: the plain file, or one gzip member, or one zstd
// frame, each checked to be framed exactly as the writer frames it. Private to lib/archive.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "archive/archive.h"
#include "core/error.h"

namespace dlsys::archive::internal {

// The tar stream of an archive file.
class Source {
 public:
  virtual ~Source() = default;
  // Reads up to out.size() bytes; 0 only at the end of the stream.
  [[nodiscard]] virtual Result<std::size_t> Read(std::span<std::byte> out) = 0;
  // Moves forward n bytes (a plain file seeks; compressed streams decompress and discard).
  [[nodiscard]] virtual Result<void> Skip(std::uint64_t n) = 0;
  // Compressed bytes consumed from the file so far (= stream bytes for a plain file).
  virtual std::uint64_t consumed() const = 0;
  // Called after the end-of-archive marker: kInvalid unless the tar stream, the compression
  // framing and the file all end exactly here.
  [[nodiscard]] virtual Result<void> CheckEnd(std::uint64_t stream_offset) = 0;
};

// Recognises the compression from the first bytes of `fd` and returns the matching source.
// kInvalid for a zstd skippable frame or a gzip member whose header is not the writer's.
[[nodiscard]] Result<std::unique_ptr<Source>> OpenSource(int fd, const std::string& display,
                                                         Compression* compression);

// Where the writer's bytes go.
class Sink {
 public:
  virtual ~Sink() = default;
  [[nodiscard]] virtual Result<void> Write(std::span<const std::byte> data) = 0;
  // Ends the compressed stream (no-op for plain output).
  [[nodiscard]] virtual Result<void> Finish() = 0;
};

[[nodiscard]] Result<std::unique_ptr<Sink>> OpenSink(int fd, Compression compression,
                                                     const Limits& limits);

}  // namespace dlsys::archive::internal
