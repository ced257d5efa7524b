// OpenSSL handles owned by std::unique_ptr, and conversion of the OpenSSL error queue.
// Private to lib/signing.
#pragma once

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include <memory>
#include <new>
#include <string>

namespace dlsys::signing::internal {

struct EvpMdCtxDeleter {
  void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
};
struct EvpPkeyDeleter {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct BioDeleter {
  void operator()(BIO* p) const { BIO_free_all(p); }
};

using EvpMdCtxPtr = std::unique_ptr<EVP_MD_CTX, EvpMdCtxDeleter>;
using EvpPkeyPtr = std::unique_ptr<EVP_PKEY, EvpPkeyDeleter>;
using BioPtr = std::unique_ptr<BIO, BioDeleter>;

// Drains the thread's OpenSSL error queue into one line ("no start line; bad base64 decode"),
// or "unknown OpenSSL error" if it is empty. Leaves the queue empty.
inline std::string TakeOpenSslErrors() {
  std::string out;
  int kept = 0;
  while (unsigned long e = ERR_get_error()) {
    if (kept == 3) continue;  // keep draining, but keep the message short
    const char* reason = ERR_reason_error_string(e);
    std::string text;
    if (reason != nullptr) {
      text = reason;
    } else {
      char buf[256];
      ERR_error_string_n(e, buf, sizeof(buf));
      text = buf;
    }
    if (out.find(text) != std::string::npos) continue;
    if (!out.empty()) out += "; ";
    out += text;
    ++kept;
  }
  ERR_clear_error();
  return out.empty() ? std::string("unknown OpenSSL error") : out;
}

// For functions whose contract has no error channel: OpenSSL fails there only when memory
// runs out, which C++ reports as std::bad_alloc like any other allocation.
[[noreturn]] inline void ThrowOutOfMemory() {
  ERR_clear_error();
  throw std::bad_alloc();
}

}  // namespace dlsys::signing::internal
