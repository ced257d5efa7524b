// dlsys inspect: show what an archive holds, reading only its head.
#include <cstdio>

#include "cli.h"
#include "log/log.h"
#include "oci/oci.h"
#include "oci_cmd.h"
#include "package/package.h"
#include "render.h"

namespace dlsys::cli {
namespace inspect_cmd {

struct Options {
  std::string archive;
  bool json = false;
  oci_cmd::RemoteOptions remote;  // inspect oci://...
};

int Run(const Options& o) {
  auto r = oci::IsOciReference(o.archive) ? oci_cmd::InspectRemote(o.archive, o.remote)
                                           : package::Inspect(o.archive);
  if (!r) return ReportError(r.error(), o.json);
  log::Info("inspect.done", "read the head of " + o.archive)
      .Str("archive", o.archive)
      .Str("model", r->manifest.name)
      .Str("model_version", r->manifest.version)
      .Int("archive_bytes", static_cast<std::int64_t>(r->archive_bytes))
      .Bool("signed", r->is_signed)
      .Emit();
  const std::string out =
      o.json ? RenderInspectJson(o.archive, *r) : RenderInspectText(o.archive, *r);
  std::fwrite(out.data(), 1, out.size(), stdout);
  return kExitOk;
}

}  // namespace inspect_cmd

void RegisterInspect(CLI::App& app, RunFn& run) {
  auto o = std::make_shared<inspect_cmd::Options>();
  auto* sub =
      app.add_subcommand("inspect", "Show an archive's manifest, files and signer instantly");
  sub->add_option("archive", o->archive, "the .dlsys archive, or oci://HOST/REPO:TAG")->required();
  oci_cmd::AddRemoteOptions(sub, o->remote);
  sub->add_flag(
      "--json", o->json,
      "print JSON (schemas/inspect.schema.json), also on failure (schemas/error.schema.json)");
  sub->footer(
      "Reads only the head of the archive (manifest and signature), so it takes the same time\n"
      "for a 1 KB model and a 10 GB one. It does not check digests or trust: use 'dlsys verify'.\n"
      "Text output escapes control characters and shows at most 50 rows per free-form section\n"
      "and 120 characters per value; --json lists everything.\n\n"
      "Examples:\n  dlsys inspect mlp-1.0.0.dlsys\n"
      "  dlsys inspect mlp-1.0.0.dlsys --json | jq .manifest.metrics");
  sub->callback([o, &run] { run = [o] { return inspect_cmd::Run(*o); }; });
}

}  // namespace dlsys::cli
