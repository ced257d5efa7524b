#include "archive/internal/streams.h"

#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <vector>

#include "archive/internal/tar_format.h"
#include "core/file.h"

namespace dlsys::archive::internal {
namespace {

// The exact gzip member header the writer emits: no name, comment, extra field or header CRC,
// mtime 0, XFL 0 (zlib's default level), OS 3 (Unix).
constexpr std::array<unsigned char, 10> kGzipHeader = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
constexpr std::array<unsigned char, 4> kZstdMagic = {0x28, 0xb5, 0x2f, 0xfd};
// Largest zstd window the reader accepts; the writer's level 3 uses at most 2^21.
constexpr int kZstdMaxWindowLog = 23;
constexpr std::size_t kInputBytes = 256 << 10;
// The writer flushes zstd at least this often so the reader's ratio limit provably holds.
constexpr std::uint64_t kZstdFlushBytes = 1 << 20;

Error Invalid(std::string message) { return Error{Code::kInvalid, std::move(message), {}}; }

std::string Hex(std::span<const unsigned char> bytes) {
  static const char* kDigits = "0123456789abcdef";
  std::string s;
  for (unsigned char c : bytes) {
    s += kDigits[c >> 4];
    s += kDigits[c & 15];
  }
  return s;
}

// Sequential reads of the file through a fixed buffer, counting what was consumed.
class FileInput {
 public:
  FileInput(int fd, std::string display) : fd_(fd), display_(std::move(display)) {
    buf_.resize(kInputBytes);
  }
  // Refills when empty; false at the end of the file.
  Result<bool> Fill() {
    if (pos_ < len_) return true;
    for (;;) {
      const ssize_t n = ::pread(fd_, buf_.data(), buf_.size(), static_cast<off_t>(offset_));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        const int err = errno;
        return tl::unexpected(
            Invalid("cannot read '" + display_ + "': " + core::ErrnoMessage(err)));
      }
      offset_ += static_cast<std::uint64_t>(n);
      pos_ = 0;
      len_ = static_cast<std::size_t>(n);
      return n > 0;
    }
  }
  const unsigned char* data() const { return buf_.data() + pos_; }
  std::size_t available() const { return len_ - pos_; }
  void Consume(std::size_t n) { pos_ += n; }
  std::uint64_t consumed() const { return offset_ - (len_ - pos_); }
  const std::string& display() const { return display_; }

 private:
  int fd_;
  std::string display_;
  std::vector<unsigned char> buf_;
  std::uint64_t offset_ = 0;  // file offset of the end of buf_'s valid bytes
  std::size_t pos_ = 0, len_ = 0;
};

class PlainSource final : public Source {
 public:
  PlainSource(int fd, std::string display, std::uint64_t file_size)
      : fd_(fd), display_(std::move(display)), file_size_(file_size) {}

  Result<std::size_t> Read(std::span<std::byte> out) override {
    for (;;) {
      const ssize_t n = ::pread(fd_, out.data(), out.size(), static_cast<off_t>(offset_));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        const int err = errno;
        return Fail(Code::kInvalid, "cannot read '" + display_ + "': " + core::ErrnoMessage(err));
      }
      offset_ += static_cast<std::uint64_t>(n);
      return static_cast<std::size_t>(n);
    }
  }
  Result<void> Skip(std::uint64_t n) override {
    // The data is the caller's to read; only the file's size tells whether it is all there.
    if (offset_ + n > file_size_) {
      return Fail(Code::kInvalid, "archive '" + display_ + "' is truncated: it ends at byte " +
                                      std::to_string(file_size_) + " inside an entry's data");
    }
    offset_ += n;
    return {};
  }
  std::uint64_t consumed() const override { return offset_; }
  Result<void> CheckEnd(std::uint64_t stream_offset) override {
    std::byte b;
    const ssize_t n = ::pread(fd_, &b, 1, static_cast<off_t>(stream_offset));
    if (n != 0) {
      struct stat st {};
      const std::uint64_t size =
          ::fstat(fd_, &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : stream_offset + 1;
      return Fail(Code::kInvalid, "trailing data after the end-of-archive marker at offset " +
                                      std::to_string(stream_offset) + ": the file has " +
                                      std::to_string(size - stream_offset) +
                                      " more bytes; pack ends the archive right after the marker");
    }
    return {};
  }

 private:
  int fd_;
  std::string display_;
  std::uint64_t file_size_;
  std::uint64_t offset_ = 0;
};

Result<void> Discard(Source& s, std::uint64_t n) {
  std::array<std::byte, 16384> scratch;
  while (n > 0) {
    DLSYS_ASSIGN_OR_RETURN(
        std::size_t got,
        s.Read(std::span(scratch.data(), std::min<std::uint64_t>(n, scratch.size()))));
    if (got == 0) return Fail(Code::kInvalid, "the tar stream ends inside an entry's data");
    n -= got;
  }
  return {};
}

// A gzip member or zstd frame read from the file: both must end exactly where the tar stream
// ends, and the file right after them.
class CompressedSource : public Source {
 public:
  CompressedSource(FileInput input, const char* container)
      : in_(std::move(input)), container_(container) {}
  Result<void> Skip(std::uint64_t n) override { return Discard(*this, n); }
  std::uint64_t consumed() const override { return in_.consumed(); }
  Result<void> CheckEnd(std::uint64_t stream_offset) override {
    std::byte b;
    DLSYS_ASSIGN_OR_RETURN(std::size_t n, Read(std::span(&b, 1)));
    if (n != 0) {
      return Fail(Code::kInvalid, "trailing data after the end-of-archive marker at offset " +
                                      std::to_string(stream_offset) +
                                      " of the tar stream (inside the " + container_ + ")");
    }
    DLSYS_ASSIGN_OR_RETURN(bool more, in_.Fill());
    if (more) return Fail(Code::kInvalid, Trailing());
    return {};
  }

 protected:
  // What to say about bytes in the file after the member or frame.
  virtual std::string Trailing() const = 0;
  Error Corrupt(const char* what, const char* why) const {
    return Error{Code::kInvalid,
                 "archive '" + in_.display() + "' has corrupt " + what + " data at file offset " +
                     std::to_string(in_.consumed()) + ": " + why,
                 {}};
  }
  Error Truncated(const char* what) const {
    return Error{Code::kInvalid,
                 "archive '" + in_.display() + "' is truncated: the " + what +
                     " ends early at byte " + std::to_string(in_.consumed()),
                 {}};
  }
  FileInput in_;

 private:
  const char* container_;
};

class GzipSource final : public CompressedSource {
 public:
  explicit GzipSource(FileInput input) : CompressedSource(std::move(input), "gzip stream") {}
  ~GzipSource() override {
    if (ready_) inflateEnd(&z_);
  }
  Result<void> Init() {
    if (inflateInit2(&z_, 31) != Z_OK) return Fail(Code::kInternal, "cannot start gzip decoder");
    ready_ = true;
    return {};
  }

  Result<std::size_t> Read(std::span<std::byte> out) override {
    if (ended_ || out.empty()) return std::size_t{0};
    z_.next_out = reinterpret_cast<Bytef*>(out.data());
    z_.avail_out = static_cast<uInt>(std::min<std::size_t>(out.size(), 1u << 30));
    while (z_.avail_out > 0) {
      DLSYS_ASSIGN_OR_RETURN(bool more, in_.Fill());
      if (!more) return tl::unexpected(Truncated("gzip stream"));
      z_.next_in = const_cast<Bytef*>(in_.data());
      z_.avail_in = static_cast<uInt>(in_.available());
      const int r = inflate(&z_, Z_NO_FLUSH);
      in_.Consume(in_.available() - z_.avail_in);
      if (r == Z_STREAM_END) {  // the member is complete; never read into a next one
        ended_ = true;
        break;
      }
      if (r != Z_OK && r != Z_BUF_ERROR) {
        return tl::unexpected(Corrupt("gzip", z_.msg ? z_.msg : "inflate failed"));
      }
    }
    return out.size() - z_.avail_out;
  }

 private:
  std::string Trailing() const override {
    return "trailing data after the gzip stream at file offset " + std::to_string(in_.consumed()) +
           " (a second gzip member or other bytes); pack writes one member and nothing after it";
  }
  z_stream z_{};
  bool ready_ = false;
  bool ended_ = false;
};

struct DctxDeleter {
  void operator()(ZSTD_DCtx* d) const { ZSTD_freeDCtx(d); }
};

class ZstdSource final : public CompressedSource {
 public:
  explicit ZstdSource(FileInput input) : CompressedSource(std::move(input), "zstd frame") {}
  Result<void> Init() {
    d_.reset(ZSTD_createDCtx());
    if (!d_ ||
        ZSTD_isError(ZSTD_DCtx_setParameter(d_.get(), ZSTD_d_windowLogMax, kZstdMaxWindowLog))) {
      return Fail(Code::kInternal, "cannot start zstd decoder");
    }
    return {};
  }

  Result<std::size_t> Read(std::span<std::byte> out) override {
    if (ended_ || out.empty()) return std::size_t{0};
    ZSTD_outBuffer o{out.data(), out.size(), 0};
    while (o.pos < o.size) {
      DLSYS_ASSIGN_OR_RETURN(bool more, in_.Fill());
      if (!more) return tl::unexpected(Truncated("zstd frame"));
      ZSTD_inBuffer i{in_.data(), in_.available(), 0};
      const std::size_t r = ZSTD_decompressStream(d_.get(), &o, &i);
      in_.Consume(i.pos);
      if (ZSTD_isError(r)) return tl::unexpected(Corrupt("zstd", ZSTD_getErrorName(r)));
      if (r == 0) {  // the frame is complete and flushed; never read into a next frame
        ended_ = true;
        break;
      }
    }
    return o.pos;
  }

 private:
  std::string Trailing() const override {
    const bool skippable = in_.available() >= 4 && (in_.data()[0] & 0xf0) == 0x50 &&
                           in_.data()[1] == 0x2a && in_.data()[2] == 0x4d && in_.data()[3] == 0x18;
    return std::string(skippable ? "a zstd skippable frame" : "trailing data") +
           " after the zstd frame at file offset " + std::to_string(in_.consumed()) +
           "; pack writes one frame and nothing after it";
  }
  std::unique_ptr<ZSTD_DCtx, DctxDeleter> d_;
  bool ended_ = false;
};

// RFC 8878 section 3.1.1.1: magic, Frame_Header_Descriptor, [Window_Descriptor], [Dictionary_ID],
// [Frame_Content_Size]. The writer sets no dictionary id and the content checksum flag.
Result<void> CheckZstdFrameHeader(const unsigned char* p, std::size_t n,
                                  const std::string& display) {
  if (n < 6) {
    return Fail(Code::kInvalid, "archive '" + display + "' is truncated in its zstd frame header");
  }
  const unsigned fhd = p[4];
  const bool single_segment = (fhd & 0x20) != 0;
  if ((fhd & 0x03) != 0 || (fhd & 0x08) != 0 || (fhd & 0x04) == 0) {
    return Fail(Code::kInvalid,
                "zstd frame header at offset 4 of '" + display + "' has descriptor 0x" +
                    Hex(std::span(p + 4, 1)) +
                    "; pack writes a frame without dictionary id and with a content checksum");
  }
  std::uint64_t window = 0;
  if (!single_segment) {
    const unsigned wd = p[5];
    const std::uint64_t base = std::uint64_t{1} << (10 + (wd >> 3));
    window = base + base / 8 * (wd & 7);
  } else {
    static constexpr std::size_t kFcsBytes[] = {1, 2, 4, 8};
    const std::size_t fcs = kFcsBytes[fhd >> 6];
    if (n < 5 + fcs) {
      return Fail(Code::kInvalid,
                  "archive '" + display + "' is truncated in its zstd frame header");
    }
    for (std::size_t i = 0; i < fcs; ++i) window |= std::uint64_t{p[5 + i]} << (8 * i);
    if (fcs == 2) window += 256;
  }
  if (window > (std::uint64_t{1} << kZstdMaxWindowLog)) {
    return Fail(Code::kInvalid, "zstd frame header at offset 4 of '" + display +
                                    "' asks for a window of " + std::to_string(window) +
                                    " bytes, more than the 8 MiB limit");
  }
  return {};
}

// ---- sinks -----------------------------------------------------------------------------------

Result<void> WriteAll(int fd, const void* data, std::size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd, p, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      return Fail(Code::kInternal, "cannot write archive: " + core::ErrnoMessage(err));
    }
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  return {};
}

class PlainSink final : public Sink {
 public:
  explicit PlainSink(int fd) : fd_(fd) {}
  Result<void> Write(std::span<const std::byte> data) override {
    return WriteAll(fd_, data.data(), data.size());
  }
  Result<void> Finish() override { return {}; }

 private:
  int fd_;
};

class GzipSink final : public Sink {
 public:
  explicit GzipSink(int fd) : fd_(fd), out_(kInputBytes) {}
  ~GzipSink() override {
    if (ready_) deflateEnd(&z_);
  }
  Result<void> Init() {
    // windowBits 31: a gzip wrapper with zlib's fixed header (see kGzipHeader).
    if (deflateInit2(&z_, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
      return Fail(Code::kInternal, "cannot start gzip compression");
    }
    ready_ = true;
    return {};
  }
  Result<void> Write(std::span<const std::byte> data) override { return Run(data, Z_NO_FLUSH); }
  Result<void> Finish() override { return Run({}, Z_FINISH); }

 private:
  Result<void> Run(std::span<const std::byte> data, int flush) {
    z_.next_in = const_cast<Bytef*>(reinterpret_cast<const Bytef*>(data.data()));
    z_.avail_in = static_cast<uInt>(data.size());
    for (;;) {
      z_.next_out = out_.data();
      z_.avail_out = static_cast<uInt>(out_.size());
      const int r = deflate(&z_, flush);
      if (r == Z_STREAM_ERROR) return Fail(Code::kInternal, "gzip compression failed");
      DLSYS_TRY(WriteAll(fd_, out_.data(), out_.size() - z_.avail_out));
      if (flush == Z_FINISH ? r == Z_STREAM_END : (z_.avail_in == 0 && z_.avail_out != 0)) break;
    }
    return {};
  }
  int fd_;
  std::vector<unsigned char> out_;
  z_stream z_{};
  bool ready_ = false;
};

struct CctxDeleter {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};

class ZstdSink final : public Sink {
 public:
  ZstdSink(int fd, const Limits& limits) : fd_(fd), limits_(limits), out_(ZSTD_CStreamOutSize()) {}
  Result<void> Init() {
    c_.reset(ZSTD_createCCtx());
    if (!c_ || ZSTD_isError(ZSTD_CCtx_setParameter(c_.get(), ZSTD_c_compressionLevel, 3)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(c_.get(), ZSTD_c_checksumFlag, 1)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(c_.get(), ZSTD_c_windowLog, 21))) {
      return Fail(Code::kInternal, "cannot start zstd compression");
    }
    return {};
  }
  // Input is cut at multiples of kZstdFlushBytes and flushed there, so a reader that has
  // produced bytes of chunk k+1 has consumed every compressed byte of chunks 0..k. Checking
  // in_{k+1} <= max(grace, ratio * out_k) here therefore guarantees the reader's check
  // produced <= max(grace, ratio * consumed) at every point of the stream.
  Result<void> Write(std::span<const std::byte> data) override {
    while (!data.empty()) {
      const std::size_t room = static_cast<std::size_t>(kZstdFlushBytes - in_ % kZstdFlushBytes);
      const std::size_t n = std::min(room, data.size());
      DLSYS_TRY(Run(data.first(n), ZSTD_e_continue));
      in_ += n;
      data = data.subspan(n);
      if (in_ % kZstdFlushBytes == 0) {
        DLSYS_TRY(CheckRatio(in_));
        DLSYS_TRY(Run({}, ZSTD_e_flush));
        flushed_out_ = out_total_;
      }
    }
    return {};
  }
  Result<void> Finish() override {
    DLSYS_TRY(CheckRatio(in_));
    return Run({}, ZSTD_e_end);
  }

 private:
  Result<void> CheckRatio(std::uint64_t in) const {
    const double allowed =
        std::max(static_cast<double>(limits_.ratio_grace_bytes),
                 limits_.max_compression_ratio * static_cast<double>(flushed_out_));
    if (static_cast<double>(in) <= allowed) return {};
    return Fail(Code::kInvalid,
                "the archive compresses more than " +
                    std::to_string(static_cast<int>(limits_.max_compression_ratio)) +
                    ":1 with zstd (mostly zeros?); dlsys verify refuses such archives as possible "
                    "compression bombs: pack it with --compression gzip or none");
  }
  Result<void> Run(std::span<const std::byte> data, ZSTD_EndDirective mode) {
    ZSTD_inBuffer i{data.data(), data.size(), 0};
    for (;;) {
      ZSTD_outBuffer o{out_.data(), out_.size(), 0};
      const std::size_t r = ZSTD_compressStream2(c_.get(), &o, &i, mode);
      if (ZSTD_isError(r)) {
        return Fail(Code::kInternal,
                    std::string("zstd compression failed: ") + ZSTD_getErrorName(r));
      }
      DLSYS_TRY(WriteAll(fd_, out_.data(), o.pos));
      out_total_ += o.pos;
      const bool done = mode == ZSTD_e_continue ? i.pos == i.size : r == 0;
      if (done) break;
    }
    return {};
  }
  int fd_;
  Limits limits_;
  std::vector<unsigned char> out_;
  std::unique_ptr<ZSTD_CCtx, CctxDeleter> c_;
  std::uint64_t in_ = 0, out_total_ = 0, flushed_out_ = 0;
};

}  // namespace

Result<std::unique_ptr<Source>> OpenSource(int fd, const std::string& display,
                                           Compression* compression) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    return Fail(Code::kInvalid, "cannot stat '" + display + "': " + core::ErrnoMessage(err));
  }
  const auto size = static_cast<std::uint64_t>(st.st_size);
  std::array<unsigned char, 18> head{};
  ssize_t n;
  do {
    n = ::pread(fd, head.data(), head.size(), 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    const int err = errno;
    return Fail(Code::kInvalid, "cannot read '" + display + "': " + core::ErrnoMessage(err));
  }
  const auto got = static_cast<std::size_t>(n);
  if (got == 0)
    return Fail(Code::kInvalid, "'" + display + "' is not a dlsys archive (empty file)");
  if (got >= 2 && head[0] == 0x1f && head[1] == 0x8b) {
    *compression = Compression::kGzip;
    if (got < kGzipHeader.size() ||
        !std::equal(kGzipHeader.begin(), kGzipHeader.end(), head.begin())) {
      return Fail(Code::kInvalid,
                  "gzip header at offset 0 of '" + display + "' is " +
                      Hex(std::span(head.data(), std::min(got, kGzipHeader.size()))) +
                      ", expected " + Hex(kGzipHeader) +
                      " (pack writes no file name, comment, extra field or time stamp)");
    }
    auto src = std::make_unique<GzipSource>(FileInput(fd, display));
    DLSYS_TRY(src->Init());
    return std::unique_ptr<Source>(std::move(src));
  }
  if (got >= 4 && (head[0] & 0xf0) == 0x50 && head[1] == 0x2a && head[2] == 0x4d &&
      head[3] == 0x18) {
    return Fail(Code::kInvalid, "a zstd skippable frame at offset 0 of '" + display +
                                    "'; pack writes one zstd frame and nothing else");
  }
  if (got >= 4 && std::equal(kZstdMagic.begin(), kZstdMagic.end(), head.begin())) {
    *compression = Compression::kZstd;
    DLSYS_TRY(CheckZstdFrameHeader(head.data(), got, display));
    auto src = std::make_unique<ZstdSource>(FileInput(fd, display));
    DLSYS_TRY(src->Init());
    return std::unique_ptr<Source>(std::move(src));
  }
  *compression = Compression::kNone;
  return std::unique_ptr<Source>(std::make_unique<PlainSource>(fd, display, size));
}

Result<std::unique_ptr<Sink>> OpenSink(int fd, Compression compression, const Limits& limits) {
  switch (compression) {
    case Compression::kNone:
      return std::unique_ptr<Sink>(std::make_unique<PlainSink>(fd));
    case Compression::kGzip: {
      auto sink = std::make_unique<GzipSink>(fd);
      DLSYS_TRY(sink->Init());
      return std::unique_ptr<Sink>(std::move(sink));
    }
    case Compression::kZstd: {
      auto sink = std::make_unique<ZstdSink>(fd, limits);
      DLSYS_TRY(sink->Init());
      return std::unique_ptr<Sink>(std::move(sink));
    }
  }
  return Fail(Code::kUsage, "unknown compression");
}

}  // namespace dlsys::archive::internal
