// serve's settings: defaults, a YAML file (schemas/serve-config.schema.json), then command-line
// flags, in that order of precedence (lowest first).
//
// The YAML is hostile input like any other: one mapping with only the keys below (unknown keys,
// duplicate keys, wrong types, out-of-range values are errors naming the key and the file),
// bounded in size (64 KiB) and depth.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"

namespace dlsys::serve {

struct ServeConfig {
  // Listening.
  std::string host = "127.0.0.1";  // host:        loopback unless asked
  int port = 8080;                 // port:        0 = any free port (printed when ready)
  int http_threads = 1;            // http_threads: threads running the HTTP event loop (1..64)
  int max_connections = 256;       // max_connections: further connections are closed at once
  std::uint64_t idle_timeout_ms = 30000;  // idle_timeout_ms: time for a request's headers to arrive
  std::uint64_t body_timeout_ms = 10000;  // body_timeout_ms: time for a body once headers arrived
  std::uint64_t max_header_bytes = 16384;         // max_header_bytes: request line + headers
  std::uint64_t max_request_bytes = 64ull << 20;  // max_request_bytes: body; larger is 413
  // Models.
  // instances: worker threads running a version's batches (model executions at once);
  // 0 = auto: fast models (warm-up forward < 0.5 ms, no queue delay) run on the event loop.
  int instances = 0;
  int intra_op_threads = 0;  // intra_op_threads: libtorch threads per forward; 0 = cores
  int max_batch_size = 32;   // max_batch_size: rows per execution (1 = no batching)
  std::uint64_t max_queue_delay_us = 0;  // max_queue_delay_us: wait for more rows to batch
  int queue_capacity = 1024;               // queue_capacity: queued requests per version before 503
  std::uint64_t request_timeout_ms = 30000;  // request_timeout_ms: deadline of every request
  std::uint64_t grace_period_ms = 30000;     // grace_period_ms: drain time on SIGTERM/SIGINT
  // Security.
  std::string token_file;  // token_file: bearer token required on every /v2 request
  std::string tls_cert;    // tls_cert:    PEM certificate chain (with tls_key: HTTPS)
  std::string tls_key;     // tls_key:     PEM private key
  // Logging.
  std::string access_log;      // access_log:  "" = the main log; "-" = stdout; else a file
  double log_sample_rate = 0;  // log_sample_rate: fraction of requests whose features are logged
  // Deployment (dlsys serve --registry DIR --env ENV): serve what the environment's routes say
  // and follow their changes (docs/deploy.md#serve-follows-the-registry).
  std::string registry;                  // registry: the registry directory ("" = none)
  std::string env;                       // env:      the environment to follow
  std::uint64_t registry_poll_ms = 500;  // registry_poll_ms: how often registry.json is checked
  // Trust (verify options for every archive).
  std::vector<std::string> trust;  // trust:       public keys or directories of them
  bool allow_unsigned = false;     // allow_unsigned
};

// Reads `path` over `config` (keys absent from the file keep their value). kNotFound if the
// file does not exist; kInvalid naming the key for anything else wrong.
[[nodiscard]] Result<void> LoadConfigFile(const std::string& path, ServeConfig& config);

// Cross-field checks after flags are applied: ranges, tls_cert and tls_key together, host not
// empty. kUsage naming the setting.
[[nodiscard]] Result<void> CheckConfig(const ServeConfig& config);

}  // namespace dlsys::serve
