// dlsys verify: prove an archive's integrity, signature and schema; report for people and CI.
#include <cstdio>

#include "cli.h"
#include "hw/probe.h"
#include "package/package.h"
#include "render.h"

namespace dlsys::cli {
namespace verify_cmd {

struct Options {
  std::string archive;
  std::vector<std::string> trust;
  bool allow_unsigned = false;
  bool json = false;
  std::string junit;
  unsigned threads = 0;
  std::string target;
  bool smoke = false;
};

int Run(const Options& o) {
  package::VerifyOptions v;
  v.allow_unsigned = o.allow_unsigned;
  v.threads = o.threads;
  for (const auto& t : o.trust) {
    if (auto added = v.trust.Add(t); !added) {
      return ReportError(std::move(added.error()).Wrap("cannot load trusted key '" + t + "'"));
    }
  }
  if (o.target == "local") {
    auto profile = hw::ProbeLocal();
    if (!profile) return ReportError(profile.error());
    v.target = std::move(*profile);
  } else if (!o.target.empty()) {
    auto profile = hw::LoadProfile(o.target);
    if (!profile) {
      return ReportError(std::move(profile.error()).Wrap("cannot read target profile '" + o.target + "'"));
    }
    v.target = std::move(*profile);
  }
  v.smoke = o.smoke;
  ProgressLine progress("verifying " + o.archive);
  v.progress = [&](const package::Progress& p) { progress.Update(p.phase, p.done_bytes, p.total_bytes); };
  auto r = package::Verify(o.archive, v);
  if (!r) return ReportError(r.error());
  const int code = r->container_broken ? kExitInvalid : r->ok ? kExitOk : kExitVerifyFailed;
  if (!o.junit.empty()) {
    if (int rc = WriteOutputFile(o.junit, RenderVerifyJUnit(*r)); rc != kExitOk) return rc;
  }
  const std::string out = o.json ? RenderVerifyJson(*r, code) : RenderVerifyText(*r);
  std::fwrite(out.data(), 1, out.size(), stdout);
  return code;
}

}  // namespace verify_cmd

void RegisterVerify(CLI::App& app, RunFn& run) {
  auto o = std::make_shared<verify_cmd::Options>();
  auto* sub = app.add_subcommand("verify", "Prove an archive's integrity, signature and schema");
  sub->add_option("archive", o->archive, "the .dlsys archive")->required();
  sub->add_option("--trust", o->trust, "trusted public key (KEY.pub) or a directory of *.pub (repeatable)");
  sub->add_flag("--allow-unsigned", o->allow_unsigned,
                "accept unsigned archives or ones without a trusted key (reported as WARN)");
  sub->add_flag("--json", o->json, "print the report as JSON (schemas/verify-report.schema.json)");
  sub->add_option("--junit", o->junit, "also write a JUnit XML report to FILE (for CI systems)");
  sub->add_option("--threads", o->threads, "digest threads (default: all cores)");
  sub->add_option("--target", o->target,
                  "check the model's requirements against a target profile (from dlsys probe, or "
                  "hand-written), or 'local' for this machine");
  sub->add_flag("--smoke", o->smoke,
                "load the model here, run its examples against the golden outputs, and compare "
                "latency and memory with the recorded ones (loads libtorch)");
  sub->footer(
      "Checks: archive safety (no absolute paths, '..', links, devices or duplicates; bounded\n"
      "sizes and compression ratio), manifest schema, every file's size and SHA-256, no missing\n"
      "or extra files, and a signature by a trusted key. Streams the archive; never extracts it.\n"
      "--target adds one row per requirement (memory, device, gpu_memory, cpu_features,\n"
      "file_format, runtime_version, operators, latency); --smoke adds the smoke-test rows.\n"
      "Exit codes: 0 no check failed, 3 archive or profile not found, 4 archive unreadable or\n"
      "unsafe (or profile malformed), 5 a check failed (integrity, signature, compatibility).\n\n"
      "Examples:\n"
      "  dlsys verify mlp-1.0.0.dlsys --trust release.key.pub\n"
      "  dlsys verify mlp-1.0.0.dlsys --trust keys/ --junit verify.xml --json > verify.json\n"
      "  dlsys verify mlp-1.0.0.dlsys --trust keys/ --target edge-pi4.yaml\n"
      "  dlsys verify mlp-1.0.0.dlsys --trust keys/ --target local --smoke");
  sub->callback([o, &run] { run = [o] { return verify_cmd::Run(*o); }; });
}

}  // namespace dlsys::cli
