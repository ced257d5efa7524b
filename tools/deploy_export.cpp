// dlsys deploy export: parse options, call deploy::Export and deploy::WriteExport, render.
#include "deploy_export.h"

#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "core/text.h"
#include "deploy/export.h"
#include "deploy/registry.h"

namespace dlsys::cli::deploy_export {
namespace {

struct ExportCliOptions {
  deploy::ExportOptions lib;
  std::string format = "k8s";
  std::string out;
  bool force = false;
  bool json = false;
};

std::string ExportModeText(unsigned mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", mode);
  return buf;
}

// What to do with the files, per format (the full story is in docs/deploy.md).
std::string ExportNextStep(deploy::ExportFormat f, const std::string& dir) {
  const std::string d = core::TerminalSafe(dir);
  switch (f) {
    case deploy::ExportFormat::kKServe:
      return "apply: kubectl apply -f " + d + "/servingruntime.yaml -f " + d +
             "/inferenceservice.yaml\n";
    case deploy::ExportFormat::kK8s:
      return "apply: kubectl apply -f " + d + "/\n";
    case deploy::ExportFormat::kDockerfile:
      return "build: cp build/bin/dlsys build/bin/libdlsys_runtime.so " + d +
             "/ && docker build -t IMAGE " + d + "\n";
  }
  return "";
}

int RunExport(CLI::App& deploy, ExportCliOptions& o) {
  auto fail = [&](Error e) { return ReportError(e, o.json); };
  auto format = deploy::ParseExportFormat(o.format);
  if (!format) return fail(format.error());
  o.lib.format = *format;
  std::string dir;
  if (auto* opt = deploy.get_option_no_throw("--registry"); opt != nullptr && opt->count() > 0) {
    dir = opt->as<std::string>();
  }
  if (dir.empty()) {
    auto d = deploy::DefaultRegistryDir();
    if (!d) return fail(d.error());
    dir = *d;
  }
  auto registry = deploy::Registry::Open(dir, /*create=*/false);
  if (!registry) return fail(registry.error());
  auto files = deploy::Export(*registry, o.lib);
  if (!files) {
    return fail(std::move(files.error())
                    .Wrap("cannot export " + o.lib.model + " in " + o.lib.env + " as " + o.format));
  }
  auto written = deploy::WriteExport(*files, o.out, o.force);
  if (!written) return fail(std::move(written.error()).Wrap("cannot write " + o.out));

  std::string text;
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  for (std::size_t i = 0; i < files->size(); ++i) {
    const auto& f = (*files)[i];
    list.push_back({{"path", (*written)[i]}, {"bytes", f.size}, {"mode", ExportModeText(f.mode)}});
    text +=
        "wrote " + core::TerminalSafe((*written)[i]) + " (" + std::to_string(f.size) + " bytes)\n";
  }
  if (o.json) {
    nlohmann::ordered_json j = {
        {"registry", registry->dir()}, {"model", o.lib.model}, {"env", o.lib.env},
        {"format", o.format},          {"dir", o.out},         {"files", list}};
    text = j.dump(2, ' ', /*ensure_ascii=*/true, nlohmann::ordered_json::error_handler_t::replace) +
           "\n";
  } else {
    text += ExportNextStep(*format, o.out);
  }
  std::fwrite(text.data(), 1, text.size(), stdout);
  return kExitOk;
}

}  // namespace

void Register(CLI::App& deploy, RunFn& run) {
  auto o = std::make_shared<ExportCliOptions>();
  o->lib.image = std::string("dlsys:") + DLSYS_VERSION;
  auto* sub = deploy.add_subcommand(
      "export",
      "Write the files that run a model's route on a cluster: KServe, Kubernetes or a "
      "Dockerfile");
  sub->fallthrough();  // --registry may follow the subcommand's name
  sub->add_option("name", o->lib.model, "the model")->required();
  sub->add_option("--env", o->lib.env, "the environment whose route is exported")
      ->required()
      ->check(NonEmpty("an environment name such as production"));
  sub->add_option("--format", o->format,
                  "kserve (ServingRuntime + InferenceService), k8s (Deployments + Service) or "
                  "dockerfile (Dockerfile, entrypoint.sh and the archives)")
      ->required()
      ->check(CLI::IsMember({"kserve", "k8s", "dockerfile"}));
  sub->add_option("-o,--output", o->out, "the directory to write (created; replaced with --force)")
      ->required()
      ->check(NonEmpty("a directory"));
  sub->add_option("--image", o->lib.image,
                  "the container image running dlsys (default dlsys:" DLSYS_VERSION
                  ", e.g. built from --format dockerfile)")
      ->check(NonEmpty("an image such as registry.example/iris:1.1.0"));
  sub->add_option("--namespace", o->lib.kubernetes_namespace,
                  "metadata.namespace of every object (default: none, kubectl's current)")
      ->check(NonEmpty("a namespace, or leave the flag out"));
  sub->add_option("--storage-uri", o->lib.storage_uri,
                  "kserve: where each archive is stored, {name} and {version} replaced; the "
                  "location holds NAME-VERSION.dlsys (default pvc://dlsys-models/{name}/{version})")
      ->check(NonEmpty("a URI such as s3://models/{name}/{version}"));
  sub->add_option("--replicas", o->lib.replicas,
                  "k8s: pods in total, split between stable and canary by weight (default 1)")
      ->check(WholeNumberIn(1, 10000));
  sub->add_option("--object-name", o->lib.object_name,
                  "the Kubernetes object name (default: the model name, '.' and '_' made '-')")
      ->check(NonEmpty("a DNS label such as iris"));
  sub->add_option("--server-memory", o->lib.server_memory_bytes,
                  "bytes a dlsys serve process needs beyond the model's own memory, added to "
                  "the memory request and limit (default " +
                      std::to_string(deploy::kDefaultServerMemoryBytes) + ")")
      ->check(CLI::Range(std::uint64_t{0}, std::uint64_t{1} << 50));
  sub->add_flag("--stable-only", o->lib.stable_only,
                "export only the stable version, whatever the strategy (ab and shadow need it)");
  sub->add_flag("--allow-unsigned", o->lib.allow_unsigned,
                "serve with --allow-unsigned instead of --trust (a version pushed unsigned)");
  sub->add_flag("--force", o->force, "replace an existing output directory (an earlier export)");
  sub->add_flag("--json", o->json,
                "print the files written as JSON, also on failure (schemas/error.schema.json)");
  sub->footer(
      "Reads the route of NAME in --env from the registry and writes, into a new directory:\n"
      "  kserve      servingruntime.yaml (ServingRuntime 'dlsys', KServe v0.20) and\n"
      "              inferenceservice.yaml; a canary sets canaryTrafficPercent to its weight\n"
      "              (KServe gives the latest revision that share: apply the stable first)\n"
      "  k8s         deployment.yaml (NAME-stable, NAME-canary with replicas split by weight)\n"
      "              and service.yaml; memory request/limit = the archive's memory need +\n"
      "              --server-memory; probes on /v2/health/ready and /v2/health/live\n"
      "  dockerfile  Dockerfile, entrypoint.sh, .dockerignore and the archives; copy the dlsys\n"
      "              binary and libdlsys_runtime.so of a bookworm build next to them\n"
      "Servers verify signatures with the keys of the ConfigMap dlsys-trust mounted at\n"
      "/etc/dlsys/trust. ab and shadow routes have no equivalent: use --stable-only.\n"
      "Exit codes: 0 written, 2 usage (strategy, names, existing -o), 3 not deployed there or\n"
      "no registry, 4 a broken archive or registry.\n\n"
      "Examples:\n"
      "  dlsys deploy export iris --env production --format k8s -o k8s/ --image "
      "reg.example/iris:7\n"
      "  dlsys deploy export iris --env production --format kserve -o kserve/ --namespace ml\n"
      "  dlsys deploy export iris --env production --format dockerfile -o image/ --force --json");
  sub->callback([o, &deploy, &run] { run = [o, &deploy] { return RunExport(deploy, *o); }; });
}

}  // namespace dlsys::cli::deploy_export
