// The server's state shared by server.cpp (lifecycle) and routes.cpp (HTTP routes).
#pragma once

#include <array>
#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "log/log.h"
#include "runtime/runtime.h"
#include "serve/batcher.h"
#include "serve/config.h"
#include "serve/internal/http.h"
#include "serve/metrics.h"
#include "serve/protocol.h"
#include "serve/server.h"

namespace dlsys::serve {

struct ModelVersion {
  std::string name;
  std::string version;
  std::string archive;
  std::string method;
  ModelSchema schema;
  ModelMetrics* metrics = nullptr;
  std::unique_ptr<runtime::Model> model;
  std::unique_ptr<Batcher> batcher;  // destroyed (stopped) before the model
};

// SHA-256 of a bearer token: compared in constant time whatever the lengths.
std::array<unsigned char, 32> TokenDigest(std::string_view token);

struct Server::Impl {
  ServeConfig config;
  ServerInfo info;
  Metrics metrics;
  std::vector<std::unique_ptr<ModelVersion>> versions;        // in load order
  std::map<std::string, std::vector<ModelVersion*>> by_name;  // highest version first
  std::optional<std::array<unsigned char, 32>> token_digest;
  std::uint64_t sampler_threshold = 0;  // log_sample_rate * 1e9
  std::atomic<std::uint64_t> request_counter{0};
  std::uint64_t request_id_seed = 0;  // random per process: made-up request ids do not repeat
  std::atomic<bool> ready{false};
  std::atomic<bool> draining{false};
  int port = 0;
  std::unique_ptr<log::Channel> access_log;  // null: access records go to the process log
  // Declared last: destroyed first, after StopAll() completed every job.
  std::unique_ptr<internal::HttpServer> http;

  void IndexModels();
  void StopAll();
  void Handle(std::shared_ptr<internal::HttpRequest> request, internal::Reply reply);
  void AccessLog(const internal::HttpRequest& request, const internal::HttpResponse& response,
                 std::uint64_t response_bytes);

 private:
  void Infer(const ModelVersion& v, std::shared_ptr<internal::HttpRequest> request,
             internal::Reply reply);
  const ModelVersion* Find(const std::string& name, const std::string& version) const;
  bool Authorized(const internal::HttpRequest& request) const;
};

}  // namespace dlsys::serve
