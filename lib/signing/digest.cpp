#include "signing/digest.h"

#include <algorithm>
#include <utility>

#include "core/encoding.h"
#include "core/parallel.h"
#include "signing/internal/openssl.h"

namespace dlsys::signing {
namespace {

using internal::EvpMdCtxPtr;

// EVP_DigestUpdate takes size_t, but stay well inside any per-call limit of a provider.
constexpr std::size_t kMaxUpdateBytes = std::size_t{1} << 30;

void UpdateAll(EVP_MD_CTX* ctx, std::span<const std::byte> data) {
  while (!data.empty()) {
    const std::size_t n = std::min(data.size(), kMaxUpdateBytes);
    if (EVP_DigestUpdate(ctx, data.data(), n) != 1) internal::ThrowOutOfMemory();
    data = data.subspan(n);
  }
}

EvpMdCtxPtr NewSha256Context() {
  EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    internal::ThrowOutOfMemory();
  }
  return ctx;
}

}  // namespace

Sha256Digest Sha256(std::span<const std::byte> data) {
  EvpMdCtxPtr ctx = NewSha256Context();
  UpdateAll(ctx.get(), data);
  Sha256Digest out;
  unsigned len = 0;
  if (EVP_DigestFinal_ex(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &len) != 1 ||
      len != out.size()) {
    internal::ThrowOutOfMemory();
  }
  return out;
}

std::string Sha256Hex(std::span<const std::byte> data) { return core::HexEncode(Sha256(data)); }

struct Sha256Hasher::Impl {
  EvpMdCtxPtr ctx = NewSha256Context();
};

Sha256Hasher::Sha256Hasher() : impl_(std::make_unique<Impl>()) {}
Sha256Hasher::~Sha256Hasher() = default;
Sha256Hasher::Sha256Hasher(Sha256Hasher&&) noexcept = default;
Sha256Hasher& Sha256Hasher::operator=(Sha256Hasher&&) noexcept = default;

void Sha256Hasher::Update(std::span<const std::byte> data) { UpdateAll(impl_->ctx.get(), data); }

Sha256Digest Sha256Hasher::Finish() {
  Sha256Digest out;
  unsigned len = 0;
  if (EVP_DigestFinal_ex(impl_->ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &len) !=
          1 ||
      len != out.size() || EVP_DigestInit_ex(impl_->ctx.get(), EVP_sha256(), nullptr) != 1) {
    internal::ThrowOutOfMemory();
  }
  return out;
}

std::string Sha256Hasher::FinishHex() { return core::HexEncode(Finish()); }

FileDigest DigestBytes(std::span<const std::byte> data, std::uint64_t shard_bytes,
                       unsigned threads) {
  if (shard_bytes == 0) shard_bytes = kShardBytes;  // a zero shard size has no meaning
  FileDigest digest;
  digest.size = data.size();
  if (digest.size <= shard_bytes) {
    digest.sha256 = Sha256Hex(data);
    return digest;
  }
  const std::uint64_t count = (digest.size + shard_bytes - 1) / shard_bytes;
  digest.shard_bytes = shard_bytes;
  digest.shards.resize(count);
  // Each task hashes its own sub-span of the caller's buffer (no copies) and writes only its
  // own slot of `shards`.
  core::ParallelFor(count, threads, [&](std::size_t i) {
    const std::uint64_t begin = i * shard_bytes;
    const std::uint64_t len = std::min<std::uint64_t>(shard_bytes, digest.size - begin);
    digest.shards[i] = Sha256Hex(data.subspan(begin, len));
  });
  return digest;
}

}  // namespace dlsys::signing
