// `dlsys serve`: an inference server for verified dlsys archives, speaking KServe v2 / the Open
// Inference Protocol over HTTP/1.1 with Triton's binary tensor and statistics extensions,
// Prometheus metrics and a structured access log (docs/serving.md).
//
// Every archive is loaded through package::LoadVerified (opened once, verified, and the verified
// bytes are what runs), its model warmed up with the archive's example inputs, and served
// through a dynamic Batcher. Several models and several versions of one model may be served at
// once; a request without a version gets the highest SemVer version. With config.registry and
// config.env, the server instead serves what that deployment environment routes to and
// follows its changes live (internal/server_impl.h: Deployment; docs/deploy.md).
//
// Thread-safety: Create, Start and Shutdown from one thread (the CLI's); the server's own
// threads do the rest.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "serve/config.h"

namespace dlsys::serve {

struct ServerInfo {
  std::string version;  // dlsys version, reported by GET /v2
};

// Called while loading: ("load", archive path) before each archive.
using LoadProgressFn = std::function<void(const std::string& archive)>;

class Server {
 public:
  // Loads, verifies and warms every archive, then binds the listening socket (not yet
  // serving). kNotFound for a missing archive; kVerifyFailed (with the failing checks as
  // details) for one that does not verify or is not signed by a trusted key (unless
  // allow_unsigned); kInvalid for a model that does not load or whose warm-up fails;
  // kUsage for the same model version twice, for archives together with a registry, or for
  // neither; kNotFound for a registry that does not exist; kUnavailable if the address cannot
  // be bound or the runtime module is missing.
  [[nodiscard]] static Result<std::unique_ptr<Server>> Create(
      const ServeConfig& config, const std::vector<std::string>& archives, const ServerInfo& info);
  ~Server();

  int port() const;
  // "http://127.0.0.1:8080" (https when TLS is on).
  std::string url() const;
  std::size_t model_count() const;

  // Starts the HTTP threads; the server reports ready from now on. With a registry
  // (config.registry), also starts following the environment's state.
  void Start();
  // With a registry: check its state now (SIGHUP) instead of at the next poll. Returns at once.
  void Reload();
  // Graceful stop: readiness turns 503 at once and new inference requests are refused (503),
  // queued and running requests complete and their responses are written, then every
  // connection is closed. Returns false if the grace period ended first (what was left was
  // failed with 503).
  bool Shutdown();

  struct Impl;  // internal/server_impl.h (named by the server's own parts only)

 private:
  Server();
  std::unique_ptr<Impl> impl_;
};

}  // namespace dlsys::serve
