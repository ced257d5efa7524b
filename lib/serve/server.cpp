// Server lifecycle: loading verified archives, warm-up, batchers, start and graceful stop.
// The HTTP routes live in routes.cpp.
#include "serve/server.h"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <random>
#include <thread>

#include "core/encoding.h"
#include "core/file.h"
#include "log/log.h"
#include "package/package.h"
#include "serve/internal/server_impl.h"

namespace dlsys::serve {
namespace {

// Warm-up forwards timed to choose where batches run (after two untimed ones).
constexpr int kTimedWarmUps = 3;
// instances 0 (auto): models whose warm-up forward is faster than this run their batches on
// the HTTP event loop; slower ones get a worker thread, so the loop never stalls for long.
constexpr double kEventLoopForwardMs = 0.5;
constexpr double kPlainlySlowMs = 10 * kEventLoopForwardMs;

double MsSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

Result<ModelSchema> SchemaOf(const manifest::Manifest& m) {
  ModelSchema schema;
  auto convert = [](const std::vector<manifest::TensorSpec>& in,
                    std::vector<TensorSpec>& out) -> Result<void> {
    for (const auto& t : in) {
      DLSYS_ASSIGN_OR_RETURN(runtime::DType dtype, runtime::ParseDType(t.dtype));
      out.push_back(TensorSpec{t.name, dtype, t.shape});
    }
    return {};
  };
  DLSYS_TRY(convert(m.inputs, schema.inputs));
  DLSYS_TRY(convert(m.outputs, schema.outputs));
  return schema;
}

// Batching concatenates along dim 0: every input and output must have a dynamic first dim.
bool Batchable(const ModelSchema& s) {
  auto dynamic0 = [](const TensorSpec& t) { return !t.shape.empty() && t.shape[0] == -1; };
  return !s.inputs.empty() && std::all_of(s.inputs.begin(), s.inputs.end(), dynamic0) &&
         std::all_of(s.outputs.begin(), s.outputs.end(), dynamic0);
}

// The fastest of kTimedWarmUps forwards of `views`, after two untimed ones (TorchScript
// profiles and optimizes the graph during the first runs); the error of the first failure.
// A model whose second forward already takes kPlainlySlowMs is not run again: it is slow.
tl::expected<double, runtime::RunError> TimeForwards(const runtime::Model& model,
                                                     const std::string& method,
                                                     std::span<const runtime::TensorView> views) {
  double fastest_ms = 0;
  for (int i = 0; i < 2 + kTimedWarmUps; ++i) {
    const auto started = Clock::now();
    auto ran = model.RunViews(method, views);
    if (!ran) return tl::unexpected(std::move(ran.error()));
    const double ms = MsSince(started);
    if (i == 1 && ms >= kPlainlySlowMs) return ms;
    if (i == 2 || (i > 2 && ms < fastest_ms)) fastest_ms = ms;
  }
  return fastest_ms;
}

// Runs every example of the archive through the model, as a request would, and when `timed`
// returns how long a forward of the first one takes (nullopt without examples: nothing is
// timed; a model is never run on made-up inputs, which it may not accept or never return from).
Result<std::optional<double>> WarmUp(const runtime::Model& model, const manifest::Manifest& m,
                                     const std::map<std::string, std::string>& files,
                                     bool timed) {
  std::optional<double> forward_ms;
  for (const auto& example : m.examples) {
    std::vector<runtime::TensorView> views;
    for (const auto& t : example.inputs) {
      DLSYS_ASSIGN_OR_RETURN(runtime::DType dtype, runtime::ParseDType(t.tensor.dtype));
      const auto it = files.find(t.path);
      if (it == files.end()) {
        return Fail(Code::kInvalid, "example input '" + t.path + "' is missing from the archive");
      }
      views.push_back(
          runtime::TensorView{t.tensor.name, dtype, t.tensor.shape, core::AsBytes(it->second)});
    }
    const bool time_this = timed && &example == &m.examples.front();
    auto ran = time_this ? TimeForwards(model, m.entry_method, views)
                         : model.RunViews(m.entry_method, views).map([](auto&&) { return 0.0; });
    if (!ran) {
      return Fail(Code::kInvalid,
                  "warm-up with example '" + example.name + "' failed: " + ran.error().message,
                  {"run 'dlsys verify ARCHIVE --smoke' to see how the model behaves"});
    }
    if (time_this) forward_ms = *ran;
  }
  return forward_ms;
}

Result<std::string> ReadToken(const std::string& path) {
  DLSYS_ASSIGN_OR_RETURN(std::string token, core::ReadFile(path, 4096));
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r')) token.pop_back();
  if (token.empty() || token.find_first_of(" \t\r\n") != std::string::npos) {
    return Fail(Code::kInvalid, "token file '" + path + "' must hold one token on one line",
                {"write a random token, e.g. 'openssl rand -hex 32 > token'"});
  }
  return token;
}

}  // namespace

Result<Checked> VerifyArchive(const std::string& path, const package::VerifyOptions& verify) {
  const auto started = Clock::now();
  DLSYS_ASSIGN_OR_RETURN(package::VerifiedArchive archive, package::LoadVerified(path, verify));
  if (!archive.report.ok) {
    std::vector<std::string> details;
    for (const auto& c : archive.report.checks) {
      if (c.status == Status::kFail) details.push_back(c.check + ": " + c.message);
    }
    details.push_back("run 'dlsys verify " + path + "' for the full report");
    return Fail(archive.report.container_broken ? Code::kInvalid : Code::kVerifyFailed,
                "archive '" + path + "' does not verify", std::move(details));
  }
  const auto& m = archive.manifest;
  DLSYS_ASSIGN_OR_RETURN(ModelSchema schema, SchemaOf(m));
  if (schema.inputs.empty() || schema.outputs.empty()) {
    return Fail(Code::kInvalid,
                "archive '" + path + "' declares no " +
                    (schema.inputs.empty() ? "inputs" : "outputs") +
                    ": serve validates requests and responses against the declared schema",
                {"re-pack with inputs and outputs in the spec (or with examples, from which "
                 "pack derives the outputs)"});
  }
  if (archive.files.find(m.entry_file) == archive.files.end()) {
    return Fail(Code::kInvalid, "archive '" + path + "' holds no " + m.entry_file);
  }
  return Checked{path, std::move(archive), std::move(schema), MsSince(started)};
}

Result<VersionPtr> LoadModelVersion(
    Checked checked, const ServeConfig& config, runtime::Runtime& rt, Metrics& metrics,
    const std::function<void(std::function<void()>)>& run_on) {
  const auto started = Clock::now();
  const std::string& path = checked.path;
  const auto& archive = checked.archive;
  const auto& m = archive.manifest;
  const ModelSchema& schema = checked.schema;
  const auto model_bytes = archive.files.find(m.entry_file);
  if (model_bytes == archive.files.end()) {
    return Fail(Code::kInvalid, "archive '" + path + "' holds no " + m.entry_file);
  }
  auto loaded = rt.Load(core::AsBytes(model_bytes->second), {});
  if (!loaded) return tl::unexpected(std::move(loaded.error()).Wrap("cannot load '" + path + "'"));
  std::unique_ptr<runtime::Model> model = std::move(*loaded);
  // Only instances 0 (auto) with no queue delay needs to know how fast a forward is.
  const bool choose = config.instances == 0 && config.max_queue_delay_us == 0;
  auto warm = WarmUp(*model, m, archive.files, choose);
  if (!warm) return tl::unexpected(std::move(warm.error()).Wrap("cannot serve '" + path + "'"));
  const std::optional<double> forward_ms = *warm;

  auto v = std::make_shared<ModelVersion>();
  v->name = m.name;
  v->version = m.version;
  v->archive = path;
  v->method = m.entry_method;
  v->schema = schema;
  v->metrics = &metrics.Register(m.name, m.version);
  v->model = std::move(model);
  BatcherOptions bo;
  bo.instances = config.instances;
  bo.max_batch_size = config.max_batch_size;
  bo.max_queue_delay = std::chrono::microseconds(config.max_queue_delay_us);
  bo.queue_capacity = config.queue_capacity;
  bo.batchable = Batchable(schema);
  const bool on_loop = choose && forward_ms && *forward_ms < kEventLoopForwardMs;
  if (on_loop) bo.run_on = run_on;
  if (bo.instances == 0) bo.instances = 1;
  const runtime::Model* raw = v->model.get();
  const std::string method = v->method;
  v->batcher = std::make_unique<Batcher>(
      bo, schema,
      [raw, method](std::span<const runtime::TensorView> inputs) {
        return raw->RunViews(method, inputs);
      },
      v->metrics);
  const double load_ms = checked.verify_ms + MsSince(started);
  v->metrics->load_ns.store(static_cast<std::uint64_t>(load_ms * 1e6));
  auto rec = log::Info("serve.load", "loaded " + m.name + " " + m.version);
  rec.Str("model", m.name)
      .Str("model_version", m.version)
      .Str("archive", path)
      .Str("signer", archive.report.key_id)
      .Bool("batching", bo.batchable && bo.max_batch_size > 1)
      .Str("executor", on_loop ? "event-loop" : "threads")
      .Num("load_ms", load_ms);
  if (!on_loop) rec.Int("instances", bo.instances);
  if (forward_ms) rec.Num("warmup_forward_ms", *forward_ms);
  rec.Emit();
  return v;
}

std::string LoadedKey(const std::string& name, const std::string& version,
                      const std::string& digest) {
  return name + "@" + version + "#" + digest;
}

Server::Server() : impl_(std::make_unique<Impl>()) {}

Server::~Server() {
  if (!impl_) return;
  impl_->deployment.reset();
  impl_->StopAll();
}

Result<void> Server::Impl::EnsureRuntime() {
  if (runtime != nullptr) return {};
  DLSYS_ASSIGN_OR_RETURN(runtime::Runtime * rt, runtime::GetRuntime());
  // Always set explicitly: libtorch's own default also starts an inter-op pool serve never
  // uses, and measured 20-25% slower forwards (docs/performance.md).
  const int intra_op = config.intra_op_threads > 0
                           ? config.intra_op_threads
                           : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  DLSYS_TRY(rt->SetThreads({.intra_op = intra_op, .inter_op = 1}));
  const runtime::BlasInfo blas = rt->Blas();
  (blas.reference ? log::Warn("serve.blas",
                              "the runtime uses the reference BLAS: forwards are "
                              "slow and batching will not pay off; install "
                              "libopenblas0-openmp")
                  : log::Info("serve.blas", "BLAS: " + blas.name))
      .Str("blas.name", blas.name)
      .Str("blas.library", blas.library)
      .Str("blas.detail", blas.detail)
      .Emit();
  runtime = rt;
  return {};
}

Result<VersionPtr> Server::Impl::Load(Checked checked) {
  DLSYS_TRY(EnsureRuntime());
  // The HTTP server starts after the first models load; batches are posted to it only once
  // requests arrive.
  Impl* ip = this;
  auto run_on = [ip](std::function<void()> task) { ip->http->Post(std::move(task)); };
  return LoadModelVersion(std::move(checked), config, *runtime, metrics, run_on);
}

Result<std::unique_ptr<Server>> Server::Create(const ServeConfig& config,
                                               const std::vector<std::string>& archives,
                                               const ServerInfo& info) {
  DLSYS_TRY(CheckConfig(config));
  if (!config.registry.empty() && !archives.empty()) {
    return Fail(Code::kUsage, "archives are given together with a registry environment",
                {"serve either archives by path, or what --env routes to in --registry"});
  }
  if (config.registry.empty() && archives.empty()) {
    return Fail(Code::kUsage, "nothing to serve",
                {"give archives, or --registry DIR --env ENV to serve a deployment"});
  }
  auto server = std::unique_ptr<Server>(new Server());
  Impl& impl = *server->impl_;
  impl.config = config;
  impl.info = info;
  impl.sampler_threshold = static_cast<std::uint64_t>(config.log_sample_rate * 1e9);
  impl.request_id_seed =
      (static_cast<std::uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}();
  if (!config.token_file.empty()) {
    DLSYS_ASSIGN_OR_RETURN(std::string token, ReadToken(config.token_file));
    impl.token_digest = TokenDigest(token);
  }

  if (!config.access_log.empty()) {
    log::Options options = log::CurrentOptions();
    options.file = config.access_log;
    options.level = log::Level::kInfo;
    options.async = true;
    options.service = "dlsys-serve";
    DLSYS_ASSIGN_OR_RETURN(impl.access_log, log::Channel::Open(options));
  }

  DLSYS_ASSIGN_OR_RETURN(impl.verify, package::TrustOptions(config.trust, config.allow_unsigned,
                                                           "serve runs", "serve"));
  const package::VerifyOptions& verify = impl.verify;

  if (config.registry.empty()) {
    // Every archive is verified before libtorch loads: a bad one costs no runtime start-up.
    std::vector<Checked> checked;
    for (const auto& path : archives) {
      DLSYS_ASSIGN_OR_RETURN(Checked c, VerifyArchive(path, verify));
      const auto& m = c.archive.manifest;
      for (const auto& other : checked) {
        if (other.archive.manifest.name == m.name && other.archive.manifest.version == m.version) {
          return Fail(Code::kUsage, "model " + m.name + " " + m.version + " is given twice ('" +
                                        other.path + "' and '" + path + "')");
        }
      }
      checked.push_back(std::move(c));
    }
    for (auto& c : checked) {
      const auto& m = c.archive.manifest;
      const std::string key = LoadedKey(m.name, m.version, "");
      DLSYS_ASSIGN_OR_RETURN(VersionPtr v, impl.Load(std::move(c)));
      impl.loaded.emplace(key, std::move(v));
    }
    impl.Publish(impl.StaticRouting());
  } else {
    DLSYS_ASSIGN_OR_RETURN(impl.deployment, Deployment::Create(impl));
  }

  internal::HttpOptions http;
  http.threads = config.http_threads;
  http.max_connections = config.max_connections;
  http.idle_timeout = std::chrono::milliseconds(config.idle_timeout_ms);
  http.body_timeout = std::chrono::milliseconds(config.body_timeout_ms);
  http.max_header_bytes = config.max_header_bytes;
  http.max_body_bytes = config.max_request_bytes;
  http.tls_cert = config.tls_cert;
  http.tls_key = config.tls_key;
  Impl* p = &impl;
  DLSYS_ASSIGN_OR_RETURN(
      impl.http,
      internal::HttpServer::Create(
          http,
          [p](std::shared_ptr<internal::HttpRequest> request, internal::Reply reply) {
            p->Handle(std::move(request), std::move(reply));
          },
          [p](const internal::HttpRequest& request, const internal::HttpResponse& response,
              std::uint64_t bytes) { p->AccessLog(request, response, bytes); }));
  if (impl.deployment) impl.http->SetRouteHeaders(impl.deployment->RouteHeaders());
  DLSYS_ASSIGN_OR_RETURN(impl.port, impl.http->Listen(config.host, config.port));
  return server;
}

int Server::port() const { return impl_->port; }

std::string Server::url() const {
  const std::string& h = impl_->config.host;
  const std::string host = h.find(':') != std::string::npos ? "[" + h + "]" : h;
  return std::string(impl_->http->tls() ? "https" : "http") + "://" + host + ":" +
         std::to_string(impl_->port);
}

std::size_t Server::model_count() const {
  std::size_t n = 0;
  for (const auto& [name, m] : impl_->CurrentRouting()->models) n += m.all.size();
  return n;
}

void Server::Start() {
  impl_->http->Start();
  impl_->ready.store(true);
  log::Info("serve.ready", "ready on " + url())
      .Str("url.full", url())
      .Int("models", static_cast<std::int64_t>(model_count()))
      .Emit();
  if (impl_->deployment) impl_->deployment->Start();
}

void Server::Reload() {
  if (impl_->deployment) impl_->deployment->Wake();
}

bool Server::Shutdown() {
  Impl& impl = *impl_;
  impl.deployment.reset();  // no change is applied while draining
  impl.ready.store(false);
  impl.draining.store(true);
  impl.http->SetClosing();
  const auto until = Clock::now() + std::chrono::milliseconds(impl.config.grace_period_ms);
  // Responses being written when the signal came are logged first (a client may already have
  // one whose completion has not run yet), so the log shows them before serve.drain.
  impl.http->WaitWritten(std::min(until, Clock::now() + std::chrono::seconds(1)));
  const std::vector<VersionPtr> all = impl.AllVersions();
  std::int64_t queued = 0;
  for (const auto& v : all) queued += v->batcher->QueueDepth();
  log::Info("serve.drain", "draining: finishing queued and running requests")
      .Int("queued", queued)
      .Int("grace_period_ms", static_cast<std::int64_t>(impl.config.grace_period_ms))
      .Emit();
  bool drained = true;
  for (const auto& v : all) drained = v->batcher->Drain(until) && drained;
  impl.StopAll();  // fails what is left (503), then waits for responses to be written
  drained = impl.http->StopAccepting(until) && drained;
  impl.http->Stop();
  log::Info("serve.stop", drained ? "stopped" : "stopped; the grace period ended first")
      .Bool("drained", drained)
      .Emit();
  return drained;
}

std::vector<VersionPtr> Server::Impl::AllVersions() {
  std::lock_guard lock(loaded_mu);
  std::vector<VersionPtr> all = retiring;
  for (const auto& [key, v] : loaded) all.push_back(v);
  return all;
}

void Server::Impl::StopAll() {
  for (const auto& v : AllVersions()) v->batcher->Stop();
}

std::shared_ptr<const Routing> Server::Impl::StaticRouting() const {
  auto r = std::make_shared<Routing>();
  for (const auto& [key, v] : loaded) r->models[v->name].all.push_back(Arm{v, "", nullptr});
  for (auto& [name, m] : r->models) {
    std::sort(m.all.begin(), m.all.end(), [](const Arm& a, const Arm& b) {
      return core::CompareSemver(a.v->version, b.v->version) > 0;
    });
    m.stable = m.all.front();
  }
  return r;
}

const char* CandidateArmName(deploy::Strategy s) {
  switch (s) {
    case deploy::Strategy::kShadow:
      return "shadow";
    case deploy::Strategy::kBlueGreen:
      return kStandbyArm;
    default:
      return "canary";
  }
}

}  // namespace dlsys::serve
