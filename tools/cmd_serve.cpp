// dlsys serve: run verified archives behind a KServe v2 HTTP endpoint until SIGTERM/SIGINT.
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <optional>
#include <thread>

#include "cli.h"
#include "deploy/registry.h"
#include "log/log.h"
#include "oci_cmd.h"
#include "serve/config.h"
#include "serve/server.h"

namespace dlsys::cli {
namespace serve_cmd {

struct Options {
  std::vector<std::string> archives;
  std::string config_file;
  std::vector<std::string> trust;
  bool allow_unsigned = false;
  std::optional<std::string> host;
  std::optional<int> port;
  std::optional<int> http_threads;
  std::optional<int> instances;
  std::optional<int> intra_op_threads;
  std::optional<int> max_batch_size;
  std::optional<std::uint64_t> max_queue_delay_us;
  std::optional<int> queue_capacity;
  std::optional<std::uint64_t> request_timeout_ms;
  std::optional<std::uint64_t> max_request_bytes;
  std::optional<int> max_connections;
  std::optional<std::uint64_t> idle_timeout_ms;
  std::optional<std::uint64_t> body_timeout_ms;
  std::optional<std::uint64_t> max_header_bytes;
  std::optional<std::uint64_t> grace_period_ms;
  std::optional<std::string> token_file;
  std::optional<std::string> tls_cert;
  std::optional<std::string> tls_key;
  std::optional<std::string> access_log;
  std::optional<double> log_sample_rate;
  std::optional<std::string> registry;
  std::optional<std::string> env;
  std::optional<std::uint64_t> registry_poll_ms;
  oci_cmd::RemoteOptions remote;  // serve oci://...
};

template <typename T>
void Apply(const std::optional<T>& flag, T& setting) {
  if (flag) setting = *flag;
}

int Run(const Options& o) {
  // oci:// archives are pulled into the cache first (while Ctrl-C still interrupts).
  const auto archives = oci_cmd::ResolveArchives(o.archives, o.remote);
  if (!archives) return ReportError(archives.error());
  // The signals that stop the server are taken synchronously by this thread (sigwait): block
  // them before any other thread exists, so every thread inherits the mask.
  sigset_t stop_signals = BlockStopSignals();

  // The server's log is written by a background thread, so requests never wait for the disk.
  log::Options log_options = log::CurrentOptions();
  log_options.async = true;
  log_options.service = "dlsys-serve";
  if (auto started = log::Init(log_options); !started) return ReportError(started.error());

  serve::ServeConfig config;
  if (!o.config_file.empty()) {
    if (auto loaded = serve::LoadConfigFile(o.config_file, config); !loaded) {
      return ReportError(loaded.error());
    }
  }
  Apply(o.host, config.host);
  Apply(o.port, config.port);
  Apply(o.http_threads, config.http_threads);
  Apply(o.instances, config.instances);
  Apply(o.intra_op_threads, config.intra_op_threads);
  Apply(o.max_batch_size, config.max_batch_size);
  Apply(o.max_queue_delay_us, config.max_queue_delay_us);
  Apply(o.queue_capacity, config.queue_capacity);
  Apply(o.request_timeout_ms, config.request_timeout_ms);
  Apply(o.max_request_bytes, config.max_request_bytes);
  Apply(o.max_connections, config.max_connections);
  Apply(o.idle_timeout_ms, config.idle_timeout_ms);
  Apply(o.body_timeout_ms, config.body_timeout_ms);
  Apply(o.max_header_bytes, config.max_header_bytes);
  Apply(o.grace_period_ms, config.grace_period_ms);
  Apply(o.token_file, config.token_file);
  Apply(o.tls_cert, config.tls_cert);
  Apply(o.tls_key, config.tls_key);
  Apply(o.access_log, config.access_log);
  Apply(o.log_sample_rate, config.log_sample_rate);
  Apply(o.registry, config.registry);
  Apply(o.env, config.env);
  Apply(o.registry_poll_ms, config.registry_poll_ms);
  if (!config.env.empty() && config.registry.empty()) {
    auto dir = deploy::DefaultRegistryDir();  // DLSYS_REGISTRY, else the user's data directory
    if (!dir) return ReportError(dir.error());
    config.registry = *dir;
  }
  config.trust.insert(config.trust.end(), o.trust.begin(), o.trust.end());
  if (o.allow_unsigned) config.allow_unsigned = true;

  log::Info("serve.start", config.registry.empty()
                               ? "loading " + std::to_string(archives->size()) + " archive(s)"
                               : "serving environment '" + config.env + "' of " + config.registry)
      .Str("url.domain", config.host)
      .Int("url.port", config.port)
      .Emit();
  auto server = serve::Server::Create(config, *archives, {DLSYS_VERSION});
  if (!server) return ReportError(server.error());
  (*server)->Start();
  std::printf("dlsys serve: ready on %s (%zu model%s)\n", (*server)->url().c_str(),
              (*server)->model_count(), (*server)->model_count() == 1 ? "" : "s");
  std::fflush(stdout);

  int signal_number = 0;
  for (;;) {
    sigwait(&stop_signals, &signal_number);
    // Following a registry, SIGHUP checks it now; otherwise it stops the server like SIGTERM.
    if (signal_number != SIGHUP || config.registry.empty()) break;
    log::Info("serve.reload", "SIGHUP: checking the registry").Emit();
    (*server)->Reload();
  }
  std::fprintf(stderr, "dlsys serve: %s received, draining (grace period %llu ms)\n",
               strsignal(signal_number), static_cast<unsigned long long>(config.grace_period_ms));
  // A second signal while draining stops at once.
  std::thread([stop_signals, signal_number] {
    int again = 0;
    sigwait(&stop_signals, &again);
    log::Shutdown();
    _exit(128 + again);
  }).detach();
  const bool drained = (*server)->Shutdown();
  server->reset();
  std::fprintf(stderr, "dlsys serve: stopped%s\n",
               drained ? "" : " (the grace period ended before every request completed)");
  return drained ? kExitOk : kExitUnavailable;
}

}  // namespace serve_cmd

void RegisterServe(CLI::App& app, RunFn& run) {
  auto o = std::make_shared<serve_cmd::Options>();
  auto* sub = app.add_subcommand(
      "serve", "Serve verified archives over HTTP (KServe v2 / Open Inference Protocol)");
  sub->add_option("archives", o->archives,
                  "the .dlsys archives to serve, or oci://HOST/REPO[:TAG|@DIGEST] references "
                  "(pulled and verified first; several models and several versions of one model "
                  "may be given; or --env)");
  sub->add_option("--env", o->env,
                  "serve what this environment of the deploy registry routes to, and follow its "
                  "changes live (dlsys deploy promote/rollback; docs/deploy.md)")
      ->check(NonEmpty("an environment name such as production"));
  sub->add_option("--registry", o->registry,
                  "the deploy registry directory (default: $DLSYS_REGISTRY, else "
                  "~/.local/share/dlsys/registry)")
      ->check(NonEmpty("a registry directory, or leave the flag out"));
  sub->add_option("--registry-poll-ms", o->registry_poll_ms,
                  "how often the registry is checked for changes (default 500; SIGHUP checks "
                  "at once)")
      ->check(CLI::Range(10, 86400000));
  sub->add_option("--config", o->config_file,
                  "YAML settings file (schemas/serve-config.schema.json); flags override it")
      ->check(NonEmpty("a YAML file, or leave the flag out"));
  AddTrustOptions(sub, o->trust, o->allow_unsigned, "",
                  "serve archives that are unsigned or not signed by a trusted key (development)");
  oci_cmd::AddRemoteOptions(sub, o->remote);
  sub->add_option("--host", o->host,
                  "address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 exposes "
                  "the server to the network)")
      ->check(NonEmpty("an IP address such as 127.0.0.1"));
  sub->add_option("--port", o->port, "TCP port (default 8080; 0 picks a free one)")
      ->check(CLI::Range(0, 65535));
  sub->add_option("--http-threads", o->http_threads, "HTTP event-loop threads (default 1)")
      ->check(CLI::Range(1, 64));
  sub->add_option("--instances", o->instances,
                  "worker threads running batches per model version (default 0 = auto: a model "
                  "whose forward takes under 0.5 ms runs on the HTTP event loop, others get 1)")
      ->check(CLI::Range(0, 64));
  sub->add_option("--intra-op-threads", o->intra_op_threads,
                  "libtorch threads per forward (default 0 = the number of cores)")
      ->check(CLI::Range(0, 256));
  sub->add_option("--max-batch-size", o->max_batch_size,
                  "rows per execution when batching requests (default 32; 1 disables batching)")
      ->check(CLI::Range(1, 4096));
  sub->add_option("--max-queue-delay-us", o->max_queue_delay_us,
                  "how long the oldest queued request waits for others to batch with (default 0: "
                  "batch what queued while the model was busy)")
      ->check(CLI::Range(0, 10000000));
  sub->add_option("--queue-capacity", o->queue_capacity,
                  "queued requests per model version before 503 + Retry-After (default 1024)")
      ->check(CLI::Range(1, 1000000));
  sub->add_option("--request-timeout-ms", o->request_timeout_ms,
                  "deadline of every request; queued requests past it get 503 (default 30000)")
      ->check(CLI::Range(1, 86400000));
  sub->add_option("--max-request-bytes", o->max_request_bytes,
                  "largest request body; larger ones get 413 (default 67108864)")
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1} << 34));
  sub->add_option("--max-connections", o->max_connections,
                  "open connections; further ones are closed at once (default 256)")
      ->check(CLI::Range(1, 100000));
  sub->add_option("--idle-timeout-ms", o->idle_timeout_ms,
                  "close a connection that sends no complete request headers for this long "
                  "(default 30000)")
      ->check(CLI::Range(1, 86400000));
  sub->add_option("--body-timeout-ms", o->body_timeout_ms,
                  "close a connection whose request body has not fully arrived this long after "
                  "its headers (default 10000)")
      ->check(CLI::Range(1, 86400000));
  sub->add_option("--max-header-bytes", o->max_header_bytes,
                  "largest request line + headers; larger ones get 431 (default 16384)")
      ->check(CLI::Range(1024, 1048576));
  sub->add_option("--grace-period-ms", o->grace_period_ms,
                  "on SIGTERM/SIGINT/SIGHUP, time for queued and running requests to finish "
                  "(default 30000)")
      ->check(CLI::Range(1, 86400000));
  sub->add_option("--token-file", o->token_file,
                  "require 'Authorization: Bearer TOKEN' (TOKEN = the file's one line) on every "
                  "request except /v2/health/*")
      ->check(NonEmpty("a file holding the token"));
  sub->add_option("--tls-cert", o->tls_cert, "PEM certificate chain: serve HTTPS (with --tls-key)")
      ->check(NonEmpty("a PEM file"));
  sub->add_option("--tls-key", o->tls_key, "PEM private key of --tls-cert")
      ->check(NonEmpty("a PEM file"));
  sub->add_option("--access-log", o->access_log,
                  "where access records go: a file, '-' for stdout (default: the main log)");
  sub->add_option("--log-sample-rate", o->log_sample_rate,
                  "fraction of requests whose input and prediction summaries are logged for "
                  "drift detection (default 0)")
      ->check(CLI::Range(0.0, 1.0));
  sub->footer(
      "Endpoints (docs/serving.md): GET /v2/health/live, /v2/health/ready, /v2,\n"
      "/v2/models/M[/versions/V][/ready|/stats], POST /v2/models/M[/versions/V]/infer, GET "
      "/metrics.\n"
      "Requests for a model without a version go to its highest version. Triton's binary tensor\n"
      "extension (Inference-Header-Content-Length) and tritonclient.http work unchanged.\n"
      "Prints 'dlsys serve: ready on URL' on stdout once every model is loaded and warmed up.\n"
      "SIGTERM/SIGINT/SIGHUP: readiness turns 503, queued requests finish, exit 0 (a second "
      "signal\n"
      "stops at once). With --env, SIGHUP re-reads the registry instead.\n"
      "With --env ENV: serves the routes of ENV in the deploy registry (stable, canary, A/B,\n"
      "shadow, blue-green), applies every 'dlsys deploy promote/finalize/rollback' live\n"
      "(load + verify + warm, then switch, then drain), and answers with x-dlsys-model-version\n"
      "and x-dlsys-arm headers (docs/deploy.md).\n"
      "Examples:\n"
      "  dlsys serve iris-mlp-1.0.0.dlsys --trust release.key.pub\n"
      "  dlsys serve mlp-1.0.0.dlsys mlp-1.1.0.dlsys --trust keys/ --port 9000 --max-batch-size "
      "32\n"
      "  dlsys serve --registry /srv/dlsys --env production --trust release.key.pub\n"
      "  curl -s localhost:8080/v2/models/iris-mlp/infer \\\n"
      "    -d "
      "'{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1,4],\"data\":[5.1,3.5,1.4,0."
      "2]}]}'");
  sub->callback([o, &run] { run = [o] { return serve_cmd::Run(*o); }; });
}

}  // namespace dlsys::cli
