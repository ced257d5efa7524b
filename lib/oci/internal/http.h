// One HTTP(S) connection to a registry over libcurl: a request, its answer, redirects.
//
// Internal to lib/oci. No retries and no authentication logic here (client.cpp has them);
// this layer sends a request, follows redirects itself (at most kMaxRedirects) and sends the
// Authorization header only to the origin it belongs to. One easy handle is reused, so
// connections stay alive between requests. Not thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.h"

namespace dlsys::oci::internal {

// Bodies other than blobs (manifests, errors, tag lists, tokens) are read into memory up to this.
inline constexpr std::size_t kMaxBodyBytes = 4u << 20;
inline constexpr int kMaxRedirects = 5;

// A request body: bytes in memory, or `size` bytes of fd from `offset` (read with pread as
// libcurl asks for them, so a large blob is never held in memory).
struct Body {
  std::string_view bytes;
  int fd = -1;
  std::uint64_t offset = 0;
  std::uint64_t size = 0;
  std::uint64_t length() const { return fd >= 0 ? size : bytes.size(); }
};

struct HttpRequest {
  std::string method = "GET";  // GET, HEAD, POST, PUT, PATCH, DELETE
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  // Sent only while the URL's scheme://host:port equals auth_origin (not after a redirect to
  // blob storage elsewhere).
  std::string authorization;  // the value, e.g. "Bearer ..."; "" for none
  std::string auth_origin;
  std::optional<Body> body;
  // The body of a 2xx answer goes here, with the status, instead of into HttpResponse::body
  // (blobs). Returning false aborts the transfer (Failure::kAborted).
  std::function<bool(long status, std::string_view data)> sink;
};

struct HttpResponse {
  long status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-case
  std::string body;  // when no sink took it; at most kMaxBodyBytes
  std::string url;   // the URL that answered (after redirects)
  // The first header of that name (lower-case), "" if absent.
  std::string Header(std::string_view name) const;
};

enum class Failure {
  kNone,
  kNetwork,   // connection refused/reset, timeout, truncated answer: worth retrying
  kTls,       // certificate or handshake problem: not retried, the message names --ca-file
  kAborted,   // the sink returned false
  kTooLarge,  // a body or the headers went past their bound
  kRedirect,  // too many redirects, or one to a scheme that is not allowed
  kOther,     // anything else libcurl refuses (bad URL, out of memory, ...)
};

struct HttpOutcome {
  Failure failure = Failure::kNone;
  std::string error;  // libcurl's explanation when failure != kNone (no secrets: URLs only)
  HttpResponse response;
};

struct TransportOptions {
  std::string ca_file;               // "" = the system store
  bool allow_http = false;           // plain http:// URLs (else https only, also for redirects)
  std::uint64_t timeout_ms = 30000;  // a transfer without progress for this long is aborted
};

class Transport {
 public:
  [[nodiscard]] static Result<std::unique_ptr<Transport>> Create(TransportOptions options);
  ~Transport();

  HttpOutcome Perform(const HttpRequest& request);
  // HTTP requests sent (each redirect hop counts).
  std::uint64_t requests() const { return requests_; }

  // scheme://host:port of an absolute URL (default port filled in), "" if it does not parse.
  static std::string Origin(const std::string& url);
  // `reference` (absolute, or relative such as "/v2/...?_state=x") resolved against `base`.
  static std::optional<std::string> Resolve(const std::string& base, const std::string& reference);
  // Percent-encoding of a query value.
  static std::string Escape(std::string_view value);

 private:
  Transport() = default;
  HttpOutcome PerformOnce(const HttpRequest& request, bool send_auth);
  struct Handle;
  std::unique_ptr<Handle> handle_;
  TransportOptions options_;
  std::uint64_t requests_ = 0;
};

}  // namespace dlsys::oci::internal
