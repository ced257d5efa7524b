// dlsys verify: prove an archive's integrity, signature and schema; report for people and CI.
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "cli.h"
#include "core/file.h"
#include "core/parallel.h"
#include "hw/probe.h"
#include "log/log.h"
#include "oci/oci.h"
#include "oci_cmd.h"
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
  bool force = false;
  unsigned threads = 0;
  std::string target;
  bool smoke = false;
  unsigned smoke_timeout_s = 120;
  oci_cmd::RemoteOptions remote;  // verify oci://...
  bool full = false;              // oci://: download and verify everything
};

bool Exists(const std::string& path) {
  std::error_code ec;
  return std::filesystem::exists(std::filesystem::symlink_status(path, ec));
}

int Run(const Options& o) {
  const auto start = std::chrono::steady_clock::now();
  // A failure before there is a report: the message on stderr and, with --json, the error
  // object (with the report's top-level fields) on stdout.
  auto fail = [&o](const Error& error) {
    const int code = ReportError(error);
    if (o.json) {
      const std::string out = RenderVerifyErrorJson(o.archive, error, code);
      std::fwrite(out.data(), 1, out.size(), stdout);
    }
    return code;
  };
  // Refused before the work is done; writing the report checks again without a race.
  if (!o.junit.empty() && !o.force && Exists(o.junit)) {
    return fail(Error{Code::kExists,
                      "cannot write the --junit report: '" + o.junit +
                          "' already exists; pass --force to replace it",
                      {}});
  }
  auto trusted = package::TrustOptions(o.trust, o.allow_unsigned);
  if (!trusted) return fail(trusted.error());
  package::VerifyOptions v = std::move(*trusted);
  v.threads = o.threads;
  if (o.target == "local") {
    auto profile = hw::ProbeLocal();
    if (!profile) return fail(profile.error());
    v.target = std::move(*profile);
  } else if (!o.target.empty()) {
    auto profile = hw::LoadProfile(o.target);
    if (!profile) {
      return fail(std::move(profile.error()).Wrap("cannot read target profile '" + o.target + "'"));
    }
    v.target = std::move(*profile);
  }
  v.smoke = o.smoke;
  v.smoke_timeout_s = o.smoke_timeout_s;
  log::Debug("verify.start", "verifying " + o.archive)
      .Str("archive", o.archive)
      .Int("trusted_keys", static_cast<std::int64_t>(o.trust.size()))
      .Bool("allow_unsigned", o.allow_unsigned)
      .Str("target", o.target)
      .Bool("smoke", o.smoke)
      .Emit();
  ProgressLine progress("verifying " + o.archive);
  v.progress = [&](const package::Progress& p) {
    progress.Update(p.phase, p.done_bytes, p.total_bytes);
  };
  auto r = oci::IsOciReference(o.archive)
               ? oci_cmd::VerifyRemote(o.archive, v, o.full, o.remote)
               : package::Verify(o.archive, v);
  if (!r) return fail(r.error());
  const int code = r->container_broken ? kExitInvalid : r->ok ? kExitOk : kExitVerifyFailed;
  if (log::Enabled(log::Level::kInfo)) {
    std::int64_t failed = 0, warned = 0;
    for (const auto& c : r->checks) {
      failed += c.status == Status::kFail;
      warned += c.status == Status::kWarn;
      if (c.status != Status::kPass) {
        log::Debug("verify.check", c.message)
            .Str("check", c.check)
            .Str("subject", c.subject)
            .Str("result", StatusName(c.status))
            .Emit();
      }
    }
    const char* result = r->container_broken ? "broken" : r->ok ? "ok" : "failed";
    log::Info("verify.done", o.archive + ": " + result)
        .Str("archive", o.archive)
        .Str("model", r->name)
        .Str("model_version", r->version)
        .Str("result", result)
        .Int("checks", static_cast<std::int64_t>(r->checks.size()))
        .Int("failed_checks", failed)
        .Int("warned_checks", warned)
        .Str("key_id", r->key_id)
        .Num("duration_ms",
             std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                 .count())
        .Emit();
  }
  if (!o.junit.empty()) {
    if (auto written = core::WriteFileAtomic(o.junit, RenderVerifyJUnit(*r), o.force); !written) {
      return fail(std::move(written.error()).Wrap("cannot write the --junit report"));
    }
  }
  const std::string out = o.json ? RenderVerifyJson(*r, code) : RenderVerifyText(*r);
  std::fwrite(out.data(), 1, out.size(), stdout);
  return code;
}

}  // namespace verify_cmd

void RegisterVerify(CLI::App& app, RunFn& run) {
  auto o = std::make_shared<verify_cmd::Options>();
  auto* sub = app.add_subcommand("verify", "Prove an archive's integrity, signature and schema");
  sub->add_option("archive", o->archive, "the .dlsys archive, or oci://HOST/REPO:TAG")->required();
  oci_cmd::AddRemoteOptions(sub, o->remote);
  sub->add_flag("--full", o->full,
                "oci://: download the archive and verify everything (default: the manifest, "
                "signature and annotations only)");
  AddTrustOptions(sub, o->trust, o->allow_unsigned, "",
                  "accept unsigned archives or ones without a trusted key (reported as WARN)");
  sub->add_flag("--json", o->json,
                "print the report as JSON (schemas/verify-report.schema.json), also on failure");
  sub->add_option("--junit", o->junit, "also write a JUnit XML report to FILE (for CI systems)")
      ->check(NonEmpty("the JUnit XML file to write, or leave the flag out"));
  sub->add_flag("--force", o->force, "replace the --junit FILE if it exists");
  sub->add_option("--threads", o->threads, "digest threads: 1 to 256, or 0 for all cores (default)")
      ->check(WholeNumberIn(0, core::kMaxThreads, "0 means all cores"));
  sub->add_option("--target", o->target,
                  "check the model's requirements against a target profile (from dlsys probe, or "
                  "hand-written), or 'local' for this machine")
      ->check(NonEmpty("a target profile file or 'local', or leave the flag out"));
  sub->add_flag("--smoke", o->smoke,
                "load the model here, run its examples against the golden outputs, and compare "
                "latency and memory with the recorded ones (loads libtorch)");
  sub->add_option("--smoke-timeout", o->smoke_timeout_s,
                  "with --smoke: stop a smoke test still running after SECONDS and report it as "
                  "a FAIL row (1 to 86400; default 120)")
      ->check(WholeNumberIn(1, 86400, "seconds"));
  sub->footer(
      "Checks: the archive is in the one canonical form pack writes (every tar header byte, no\n"
      "data after the end marker, one gzip member or zstd frame; exit 4 names the offset), safe\n"
      "paths, bounded sizes and compression ratio, a strict manifest, every file's size and\n"
      "SHA-256, no missing or extra files, and a signature by a trusted key. Reads the archive\n"
      "once; never extracts it. --smoke runs exactly the verified bytes in a child process that\n"
      "is stopped after --smoke-timeout.\n"
      "--target adds one row per requirement (memory, device, gpu_memory, cpu_features,\n"
      "file_format, runtime_version, operators, latency); --smoke adds the smoke-test rows.\n"
      "Exit codes: 0 no check failed, 2 usage error (e.g. --junit FILE exists without --force),\n"
      "3 archive, key or profile not found, 4 archive unreadable or unsafe (or profile\n"
      "malformed), 5 a check failed (integrity, signature, compatibility, smoke); 130/143 when\n"
      "interrupted (docs/exit-codes.md). With --json, stdout is always one JSON document.\n\n"
      "Examples:\n"
      "  dlsys verify mlp-1.0.0.dlsys --trust release.key.pub\n"
      "  dlsys verify mlp-1.0.0.dlsys --trust keys/ --junit verify.xml --json > verify.json\n"
      "  dlsys verify mlp-1.0.0.dlsys --trust keys/ --target edge-pi4.yaml\n"
      "  dlsys verify mlp-1.0.0.dlsys --trust keys/ --target local --smoke");
  sub->callback([o, &run] { run = [o] { return verify_cmd::Run(*o); }; });
}

}  // namespace dlsys::cli
