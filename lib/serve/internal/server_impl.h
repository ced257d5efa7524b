// The server's state shared by server.cpp (lifecycle) and routes.cpp (HTTP routes).
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "deploy/registry.h"
#include "log/log.h"
#include "package/package.h"
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
  std::string digest;  // registry blobs: "sha256:..."; "" for an archive given by path
  std::string method;
  ModelSchema schema;
  ModelMetrics* metrics = nullptr;
  std::unique_ptr<runtime::Model> model;
  std::unique_ptr<Batcher> batcher;  // destroyed (stopped) before the model
};
// Requests in flight hold their version, so a version switched away from finishes what it
// queued. The last reference is always the server's (loaded or retiring), never a request's:
// a batcher is never destroyed from its own thread.
using VersionPtr = std::shared_ptr<ModelVersion>;

// One version in a route, with its role ("" when serving archives given by path).
struct Arm {
  VersionPtr v;
  std::string name;               // stable, canary, shadow, standby
  ArmMetrics* metrics = nullptr;  // null when name is ""
};

// How requests for one model are routed (deploy::Route, resolved to loaded versions).
struct RoutedModel {
  deploy::Strategy strategy = deploy::Strategy::kReplace;
  Arm stable;
  Arm candidate;  // canary, ab, shadow
  Arm standby;    // blue-green
  std::uint32_t weight_bp = 0;       // canary, ab: share of the candidate in 1/10000
  std::string key;                   // ab: header name
  std::uint64_t sample_below = 0;    // shadow: a request is mirrored if rand64 < sample_below
  std::vector<Arm> all;              // every loaded version, highest SemVer first
};

// An immutable routing table; a new one is published whole on every deployment change.
struct Routing {
  std::uint64_t generation = 0;  // the registry's, 0 when serving archives by path
  bool deployed = false;         // from a registry: responses carry x-dlsys-arm
  std::map<std::string, RoutedModel> models;
};

// An archive that verified, with its schema: checked before libtorch loads, so a bad archive
// costs no runtime start-up.
struct Checked {
  std::string path;
  package::VerifiedArchive archive;
  ModelSchema schema;
  double verify_ms = 0;
};
[[nodiscard]] Result<Checked> VerifyArchive(const std::string& path,
                                            const package::VerifyOptions& verify);
// Loads a verified archive's model, warms it up and gives it a batcher.
[[nodiscard]] Result<VersionPtr> LoadModelVersion(
    Checked checked, const ServeConfig& config, runtime::Runtime& rt, Metrics& metrics,
    const std::function<void(std::function<void()>)>& run_on);

class Deployment;  // deployment.cpp: follows a registry environment
struct ShadowPair;  // routes.cpp: a request's stable and shadow answers, compared

// SHA-256 of a bearer token: compared in constant time whatever the lengths.
std::array<unsigned char, 32> TokenDigest(std::string_view token);

// Compact summary of one tensor for drift detection and shadow records: shape, count, mean,
// std, min, max and the first values, as `into[name]` (docs/logging.md, "input" / "prediction").
void Summarize(nlohmann::json& into, std::string_view name, runtime::DType dtype,
               const std::vector<std::int64_t>& shape, std::span<const std::byte> data);

// "name@version#digest": a version re-pushed with other bytes (after a remove) is another one.
std::string LoadedKey(const std::string& name, const std::string& version,
                      const std::string& digest);

// Arm names of a route's versions: "stable", the candidate's (canary for canary and A/B, so
// `dlsys monitor --compare variant=stable,canary` reads both the same way; shadow), standby.
inline constexpr const char* kStableArm = "stable";
const char* CandidateArmName(deploy::Strategy s);
inline constexpr const char* kStandbyArm = "standby";

struct Server::Impl {
  ServeConfig config;
  ServerInfo info;
  Metrics metrics;
  package::VerifyOptions verify;     // for every archive, also those loaded later
  runtime::Runtime* runtime = nullptr;
  // Every loaded version by LoadedKey (archives by path: all; registry: those routed, and
  // those loaded for a change that failed until retired). Touched by Create, the deployment
  // thread and Shutdown only, never by request handlers.
  std::map<std::string, VersionPtr> loaded;
  std::vector<VersionPtr> retiring;  // switched away from: drained, then destroyed
  std::mutex loaded_mu;              // guards loaded and retiring
  std::optional<std::array<unsigned char, 32>> token_digest;
  std::uint64_t sampler_threshold = 0;  // log_sample_rate * 1e9
  std::atomic<std::uint64_t> request_counter{0};
  std::atomic<std::uint64_t> route_counter{0};  // canary and shadow draws
  std::uint64_t request_id_seed = 0;  // random per process: made-up request ids do not repeat
  std::atomic<bool> ready{false};
  std::atomic<bool> draining{false};
  int port = 0;
  std::unique_ptr<log::Channel> access_log;  // null: access records go to the process log
  // Declared last: destroyed first, after StopAll() completed every job.
  std::unique_ptr<internal::HttpServer> http;
  std::unique_ptr<Deployment> deployment;  // stopped (joined) before anything else

  std::shared_ptr<const Routing> CurrentRouting() const {
    std::lock_guard lock(routing_mu);
    return routing;
  }
  void Publish(std::shared_ptr<const Routing> next) {
    std::lock_guard lock(routing_mu);
    routing = std::move(next);
  }
  // The routing of archives given by path: per name, the highest version takes requests
  // without a version.
  std::shared_ptr<const Routing> StaticRouting() const;
  std::vector<VersionPtr> AllVersions();  // loaded + retiring
  // Loads libtorch (once) and sets its threads.
  [[nodiscard]] Result<void> EnsureRuntime();
  // Loads and warms a verified archive's model (EnsureRuntime first).
  [[nodiscard]] Result<VersionPtr> Load(Checked checked);
  void StopAll();
  void Handle(std::shared_ptr<internal::HttpRequest> request, internal::Reply reply);
  void AccessLog(const internal::HttpRequest& request, const internal::HttpResponse& response,
                 std::uint64_t response_bytes);

 private:
  mutable std::mutex routing_mu;
  std::shared_ptr<const Routing> routing;  // never null after Create

  void Infer(const Arm& arm, const Arm* shadow, std::shared_ptr<internal::HttpRequest> request,
             internal::Reply reply);
  void Shadow(const Arm& shadow, const Arm& stable, std::shared_ptr<internal::HttpRequest> request,
              std::optional<std::size_t> json_length, std::shared_ptr<ShadowPair> pair);
  // The arm a request without a version goes to (and, for shadow, the arm it is mirrored to).
  const Arm& Pick(const RoutedModel& m, const internal::HttpRequest& request,
                  const Arm** shadow);
  bool Authorized(const internal::HttpRequest& request) const;
};

}  // namespace dlsys::serve

namespace dlsys::serve {

// Follows one environment of a deployment registry (deployment.cpp): applies its state at
// start, then every time registry.json changes (polled every config.registry_poll_ms, or at
// once after Wake) — loads, verifies and warms every version a route needs first, then
// publishes the new routing in one step, and drains and unloads versions no longer routed.
// A change that cannot be applied (a blob that does not verify, a model that does not load)
// is logged (serve.deploy.failed) and the current routing stays.
class Deployment {
 public:
  // Opens the registry and applies its current state: kNotFound for a missing registry;
  // the load's error if a routed version cannot be served.
  [[nodiscard]] static Result<std::unique_ptr<Deployment>> Create(Server::Impl& impl);
  ~Deployment();  // stops and joins the thread
  void Start();
  void Wake();
  // The request headers A/B routes split by.
  std::vector<std::string> RouteHeaders() const;

 private:
  Deployment(Server::Impl& impl, deploy::Registry registry);
  void Run();
  void Check(bool forced);
  [[nodiscard]] Result<void> Apply(const deploy::State& state);
  void Retire();

  struct Stamp {
    std::uint64_t dev = 0, ino = 0, size = 0;
    std::int64_t mtime_ns = 0;
    bool operator==(const Stamp&) const = default;
  };

  Server::Impl& impl_;
  deploy::Registry registry_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;  // under mu_
  bool wake_ = false;  // under mu_
  // Deployment thread only:
  Stamp stamp_;
  std::uint64_t applied_generation_ = 0;
  std::optional<std::uint64_t> failed_generation_;
  std::string applied_routes_;  // the environment's routes as last applied (RoutesText)
};

}  // namespace dlsys::serve
