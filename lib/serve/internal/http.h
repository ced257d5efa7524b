// The HTTP/1.1 transport of the server (Boost.Beast on Asio, plain or TLS): accepts
// connections on one address, reads requests within limits, hands each to a handler and writes
// its response, keep-alive. No Beast type appears here, so only http.cpp pays Beast's compile
// time.
//
// Limits: at most max_connections open connections (further ones are closed at once); a
// request's headers must arrive within idle_timeout of the connection opening or of the
// previous response; its body within body_timeout once the headers arrived; headers over
// max_header_bytes get 431, bodies over max_body_bytes 413, unparseable requests 400 — each
// answered and the connection closed.
//
// Thread-safety: Reply may be called from any thread, exactly once per request.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"

namespace dlsys::serve::internal {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // origin-form: path [? query]
  std::string body;
  // The headers the server looks at ("" when absent).
  std::string authorization;
  std::string inference_header_content_length;
  bool has_inference_header = false;
  std::string content_encoding;
  std::string traceparent;
  std::string request_id;    // X-Request-ID
  // The headers named by HttpServer::SetRouteHeaders that the request has (name, value).
  std::vector<std::pair<std::string, std::string>> route_headers;
  std::string peer_address;  // "127.0.0.1"
  int peer_port = 0;
  bool keep_alive = true;
  std::chrono::steady_clock::time_point received;  // when the headers were complete
};

// What the handler tells the access log about a request (not sent to the client).
struct AccessNote {
  std::string model;
  std::string version;
  std::string arm;         // the deployment arm that answered ("" when not deployed)
  std::string error_type;  // "" on success: bad_input, model_failure, overloaded, ...
  std::string error_message;
  double queue_ms = -1;  // < 0: not applicable
  double infer_ms = -1;
  std::int64_t batch_size = 0;  // rows in the execution the request ran in
  std::string request_id;       // the inference request's "id", when it has one
  std::string sample_input;     // sampled input summaries (a JSON object), "" if not sampled
  std::string sample_prediction;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
  AccessNote note;
};

using Reply = std::function<void(HttpResponse&&)>;
using HttpHandler = std::function<void(std::shared_ptr<HttpRequest> request, Reply reply)>;
// Called after each response was written (or failed to be), for the access log. `request`
// may be a partial one (method/target empty) when the request could not be read.
// `response_body_bytes` is the size of the body written (0 if the write failed).
using HttpDoneFn = std::function<void(const HttpRequest& request, const HttpResponse& response,
                                      std::uint64_t response_body_bytes)>;

struct HttpOptions {
  int threads = 2;
  int max_connections = 256;
  std::chrono::milliseconds idle_timeout{30000};
  std::chrono::milliseconds body_timeout{10000};
  std::uint64_t max_header_bytes = 16384;
  std::uint64_t max_body_bytes = 64ull << 20;
  std::string tls_cert;  // PEM files; both set = HTTPS
  std::string tls_key;
};

class HttpServer {
 public:
  // kInvalid if the TLS certificate or key cannot be loaded (message names the file).
  [[nodiscard]] static Result<std::unique_ptr<HttpServer>> Create(HttpOptions options,
                                                                  HttpHandler handler,
                                                                  HttpDoneFn done);
  ~HttpServer();
  // Binds and listens; port 0 = any free port. Returns the bound port. kUnavailable if the
  // address cannot be bound (in use, not local).
  [[nodiscard]] Result<int> Listen(const std::string& host, int port);
  void Start();  // starts the event-loop threads
  // Runs `task` on one of the event-loop threads (after the handlers already ready there).
  void Post(std::function<void()> task);
  // From now on every response carries Connection: close.
  void SetClosing();
  // The headers (lower-case names) copied into HttpRequest::route_headers from now on: those
  // an A/B deployment splits traffic by. Thread-safe.
  void SetRouteHeaders(std::vector<std::string> names);
  // Waits (until `until` at most) until no response is being written: every response a client
  // has received has then been through the done callback (logged). False if `until` came first.
  bool WaitWritten(std::chrono::steady_clock::time_point until);
  // Stops accepting; waits until no request is being handled or written, or `until`.
  bool StopAccepting(std::chrono::steady_clock::time_point until);
  void Stop();  // closes every connection and joins the threads (idempotent)
  bool tls() const;

  struct Impl;  // defined in http.cpp (public so its sessions can name it)

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace dlsys::serve::internal
