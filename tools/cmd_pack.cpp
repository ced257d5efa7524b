// dlsys pack: turn a TorchScript model and its metadata into a signed, reproducible archive.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <optional>
#include <string_view>

#include "cli.h"
#include "core/text.h"
#include "log/log.h"
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

// The largest mtime a ustar header holds (11 octal digits): 8^11 - 1 seconds, 2242-03-16.
constexpr std::int64_t kMaxSourceDateEpoch = 8589934591;

// SOURCE_DATE_EPOCH (reproducible-builds.org): nullopt when unset or empty; kUsage unless it
// is decimal digits only with a value in [0, kMaxSourceDateEpoch].
Result<std::optional<std::int64_t>> SourceDateEpoch() {
  const char* env = std::getenv("SOURCE_DATE_EPOCH");
  if (env == nullptr || *env == '\0') return std::optional<std::int64_t>();
  const std::string_view text(env);
  std::int64_t v = 0;
  bool digits = true;
  for (char c : text) {
    if (c < '0' || c > '9') {
      digits = false;
      break;
    }
    if (v <= kMaxSourceDateEpoch) v = v * 10 + (c - '0');  // stops before overflow
  }
  if (!digits || v > kMaxSourceDateEpoch) {
    return Fail(Code::kUsage,
                "SOURCE_DATE_EPOCH='" + core::Truncate(text, 64) +
                    "' is not valid: give whole seconds since 1970-01-01 UTC, digits only, from 0 "
                    "to " +
                    std::to_string(kMaxSourceDateEpoch) + " (2242-03-16)",
                {"unset SOURCE_DATE_EPOCH to stamp the archive with the current time"});
  }
  return std::optional<std::int64_t>(v);
}

// Flags override the spec.
Result<package::PackOptions> Build(const Options& o) {
  package::PackOptions p;
  DLSYS_ASSIGN_OR_RETURN(const auto epoch, SourceDateEpoch());
  p.created_epoch = epoch ? *epoch : static_cast<std::int64_t>(std::time(nullptr));
  // Reproducible builds leave out wall-clock measurements, which differ run to run.
  p.reproducible = epoch.has_value();
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
  DLSYS_ASSIGN_OR_RETURN(
      p.compression,
      archive::ParseCompression(p.spec.compression.empty() ? "none" : p.spec.compression));
  p.model_path = o.model;
  p.output_path = o.out;
  p.overwrite = o.force;
  p.key_path = o.key;
  p.tool_version = DLSYS_VERSION;
  return p;
}

int Run(const Options& o) {
  const auto start = std::chrono::steady_clock::now();
  auto p = Build(o);
  if (!p) return ReportError(p.error(), o.json);
  log::Debug("pack.start", "packing " + o.model)
      .Str("file.path", o.model)
      .Str("archive", o.out)
      .Str("model", p->spec.name)
      .Str("model_version", p->spec.version)
      .Str("compression", p->spec.compression.empty() ? "none" : p->spec.compression)
      .Bool("signed", !o.key.empty())
      .Bool("reproducible", p->reproducible)
      .Emit();
  ProgressLine progress("packing " + o.out);
  p->progress = [&](const package::Progress& pr) {
    progress.Update(pr.phase, pr.done_bytes, pr.total_bytes);
  };
  auto r = package::Pack(*p);
  if (!r) return ReportError(std::move(r.error()).Wrap("cannot pack '" + o.model + "'"), o.json);
  log::Info("pack.done",
            "packed " + r->manifest.name + " " + r->manifest.version + " into " + o.out)
      .Str("archive", o.out)
      .Str("model", r->manifest.name)
      .Str("model_version", r->manifest.version)
      .Int("archive_bytes", static_cast<std::int64_t>(r->archive_bytes))
      .Bool("signed", !r->key_id.empty())
      .Str("key_id", r->key_id)
      .Num("duration_ms",
           std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
               .count())
      .Emit();
  if (o.json || !o.quiet) {
    const std::string out = o.json ? RenderPackJson(o.out, *r) : RenderPackText(o.out, *r);
    std::fwrite(out.data(), 1, out.size(), stdout);
  }
  return kExitOk;
}

}  // namespace pack_cmd

void RegisterPack(CLI::App& app, RunFn& run) {
  auto o = std::make_shared<pack_cmd::Options>();
  auto* sub =
      app.add_subcommand("pack", "Pack a TorchScript model into a signed, versioned archive");
  sub->add_option("model", o->model, "the TorchScript model file (torch.jit.save)")->required();
  sub->add_option("--name", o->name, "model name: a-z 0-9 . _ - (overrides the spec)")
      ->check(NonEmpty("a model name, or leave the flag out to use the spec's"));
  sub->add_option("--version", o->version, "SemVer version, e.g. 1.2.0 (overrides the spec)")
      ->check(NonEmpty("a SemVer version, or leave the flag out to use the spec's"));
  sub->add_option("--spec", o->spec,
                  "dlsys.yaml with metadata, schema, examples (docs/spec-format.md)")
      ->check(NonEmpty("the spec file, or leave the flag out"));
  sub->add_option("--key", o->key, "sign with this Ed25519 private key (from dlsys keygen)")
      ->check(NonEmpty("the private key file, or leave the flag out for an unsigned archive"));
  sub->add_option("--file", o->files,
                  "add a file, stored as files/<name>; SRC=PATH stores it at PATH (repeatable)")
      ->check(NonEmpty("a file to add"));
  sub->add_option("-o,--out", o->out, "archive to write")
      ->required()
      ->check(NonEmpty("the archive file to write"));
  sub->add_option("--compression", o->compression, "none (default, fastest verify), gzip or zstd")
      ->check(NonEmpty("none, gzip or zstd"));
  sub->add_option("--description", o->description, "one-line description (overrides the spec)");
  sub->add_option("--owner", o->owner, "owning team or person (overrides the spec)");
  sub->add_option("--license", o->license, "license, e.g. Apache-2.0 (overrides the spec)");
  sub->add_flag("--force", o->force, "replace OUT if it exists");
  sub->add_flag("--json", o->json,
                "print a JSON summary (schemas/pack.schema.json), also on failure "
                "(schemas/error.schema.json)");
  sub->add_flag("-q,--quiet", o->quiet, "print nothing on success");
  sub->footer(
      "Loads the model through the runtime to prove it loads, runs the spec's example inputs to\n"
      "record golden outputs, digests every file and writes the archive atomically: a failed or\n"
      "interrupted pack leaves nothing at OUT. SOURCE_DATE_EPOCH (whole seconds, 0 to\n"
      "8589934591) makes the output byte-identical across runs.\n\n"
      "Examples:\n"
      "  dlsys pack model.pt --name mlp --version 1.0.0 -o mlp-1.0.0.dlsys\n"
      "  dlsys pack best_model_final_v7.pt --spec dlsys.yaml --key release.key \\\n"
      "      --file labels.txt -o mlp-1.2.0.dlsys");
  sub->callback([o, &run] { run = [o] { return pack_cmd::Run(*o); }; });
}

}  // namespace dlsys::cli
