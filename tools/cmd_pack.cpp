// dlsys pack: turn a TorchScript model and its metadata into a signed, reproducible archive.
#include <cstdio>
#include <cstdlib>
#include <ctime>

#include <nlohmann/json.hpp>

#include "cli.h"
#include "core/encoding.h"
#include "package/package.h"
#include "render.h"

namespace dlsys::cli {
namespace pack_cmd {

struct Options {
  std::string model;
  std::string name;
  std::string version;
  std::string spec;
  std::string key;
  std::vector<std::string> files;
  std::string out;
  std::string compression;
  std::string description;
  std::string owner;
  std::string license;
  bool force = false;
  bool json = false;
  bool quiet = false;
};

Result<std::int64_t> CreatedEpoch() {
  const char* env = std::getenv("SOURCE_DATE_EPOCH");
  if (env == nullptr || *env == '\0') return static_cast<std::int64_t>(std::time(nullptr));
  char* end = nullptr;
  long long v = std::strtoll(env, &end, 10);
  if (*end != '\0' || v < 0) {
    return Fail(Code::kUsage, "SOURCE_DATE_EPOCH='" + std::string(env) +
                                  "' is not a non-negative number of seconds");
  }
  return static_cast<std::int64_t>(v);
}

// Flags override the spec.
Result<package::PackOptions> Build(const Options& o) {
  package::PackOptions p;
  if (!o.spec.empty()) {
    DLSYS_ASSIGN_OR_RETURN(p.spec, manifest::LoadSpec(o.spec));
  }
  auto set = [](std::string& field, const std::string& flag) {
    if (!flag.empty()) field = flag;
  };
  set(p.spec.name, o.name);
  set(p.spec.version, o.version);
  set(p.spec.description, o.description);
  set(p.spec.owner, o.owner);
  set(p.spec.license, o.license);
  set(p.spec.compression, o.compression);
  for (const auto& f : o.files) {
    manifest::SpecFile sf;
    auto eq = f.find('=');
    sf.source = eq == std::string::npos ? f : f.substr(0, eq);
    sf.archive_path = eq == std::string::npos ? manifest::DefaultArchivePath(f) : f.substr(eq + 1);
    p.spec.files.push_back(std::move(sf));
  }
  DLSYS_ASSIGN_OR_RETURN(p.compression, archive::ParseCompression(
                                            p.spec.compression.empty() ? "none" : p.spec.compression));
  DLSYS_ASSIGN_OR_RETURN(p.created_epoch, CreatedEpoch());
  // Reproducible builds leave out wall-clock measurements, which differ run to run.
  const char* sde = std::getenv("SOURCE_DATE_EPOCH");
  p.reproducible = sde != nullptr && *sde != '\0';
  p.model_path = o.model;
  p.output_path = o.out;
  p.overwrite = o.force;
  p.key_path = o.key;
  p.tool_version = DLSYS_VERSION;
  return p;
}

int Run(const Options& o) {
  auto p = Build(o);
  if (!p) return ReportError(p.error());
  ProgressLine progress("packing " + o.out);
  p->progress = [&](const package::Progress& pr) {
    progress.Update(pr.phase, pr.done_bytes, pr.total_bytes);
  };
  auto r = package::Pack(*p);
  if (!r) return ReportError(std::move(r.error()).Wrap("cannot pack '" + o.model + "'"));
  if (o.json) {
    nlohmann::json j{{"archive", o.out},
                     {"archive_bytes", r->archive_bytes},
                     {"name", r->manifest.name},
                     {"version", r->manifest.version},
                     {"signed", !r->key_id.empty()},
                     {"key_id", r->key_id},
                     {"files", r->manifest.files.size()}};
    std::printf("%s\n", j.dump().c_str());
  } else if (!o.quiet) {
    std::printf("packed %s %s -> %s (%s, %zu files, %s)\n", r->manifest.name.c_str(),
                r->manifest.version.c_str(), o.out.c_str(),
                core::HumanBytes(r->archive_bytes).c_str(), r->manifest.files.size(),
                r->key_id.empty() ? "unsigned" : ("signed by " + r->key_id.substr(0, 16) + "…").c_str());
  }
  return kExitOk;
}

}  // namespace pack_cmd

void RegisterPack(CLI::App& app, RunFn& run) {
  auto o = std::make_shared<pack_cmd::Options>();
  auto* sub = app.add_subcommand("pack", "Pack a TorchScript model into a signed, versioned archive");
  sub->add_option("model", o->model, "the TorchScript model file (torch.jit.save)")->required();
  sub->add_option("--name", o->name, "model name: a-z 0-9 . _ - (overrides the spec)");
  sub->add_option("--version", o->version, "SemVer version, e.g. 1.2.0 (overrides the spec)");
  sub->add_option("--spec", o->spec, "dlsys.yaml with metadata, schema, examples (docs/spec-format.md)");
  sub->add_option("--key", o->key, "sign with this Ed25519 private key (from dlsys keygen)");
  sub->add_option("--file", o->files,
                  "add a file, stored as files/<name>; SRC=PATH stores it at PATH (repeatable)");
  sub->add_option("-o,--out", o->out, "archive to write")->required();
  sub->add_option("--compression", o->compression, "none (default, fastest verify), gzip or zstd");
  sub->add_option("--description", o->description, "one-line description (overrides the spec)");
  sub->add_option("--owner", o->owner, "owning team or person (overrides the spec)");
  sub->add_option("--license", o->license, "license, e.g. Apache-2.0 (overrides the spec)");
  sub->add_flag("--force", o->force, "replace OUT if it exists");
  sub->add_flag("--json", o->json, "print a JSON summary");
  sub->add_flag("-q,--quiet", o->quiet, "print nothing on success");
  sub->footer(
      "Loads the model through the runtime to prove it loads, runs the spec's example inputs to\n"
      "record golden outputs, digests every file and writes the archive atomically: a failed or\n"
      "interrupted pack leaves nothing at OUT. SOURCE_DATE_EPOCH makes the output byte-identical\n"
      "across runs.\n\n"
      "Examples:\n"
      "  dlsys pack model.pt --name mlp --version 1.0.0 -o mlp-1.0.0.dlsys\n"
      "  dlsys pack best_model_final_v7.pt --spec dlsys.yaml --key release.key \\\n"
      "      --file labels.txt -o mlp-1.2.0.dlsys");
  sub->callback([o, &run] { run = [o] { return pack_cmd::Run(*o); }; });
}

}  // namespace dlsys::cli
