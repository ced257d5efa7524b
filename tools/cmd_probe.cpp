// dlsys probe: describe this machine as a target profile for `dlsys verify --target`.
#include <cstdio>

#include "cli.h"
#include "core/file.h"
#include "core/text.h"
#include "hw/probe.h"
#include "log/log.h"
#include "render.h"

namespace dlsys::cli {
namespace probe_cmd {

struct Options {
  bool json = false;
  bool yaml = false;
  std::string out;
  bool no_runtime = false;
  bool force = false;
};

int Run(const Options& o) {
  hw::ProbeOptions p;
  p.include_runtime = !o.no_runtime;
  auto profile = hw::ProbeLocal(p);
  if (!profile) return ReportError(profile.error(), o.json);
  log::Info("probe.done", "probed this machine")
      .Bool("runtime", profile->runtime.has_value())
      .Str("file.path", o.out)
      .Emit();
  // JSON when asked for, or when the output file is named *.json (it loads faster: 2000
  // operator names parse in ~1 ms as JSON, ~10 ms as YAML).
  const bool json = o.json || (!o.yaml && o.out.size() > 5 && o.out.ends_with(".json"));
  const std::string text = json ? RenderProfileJson(*profile) : hw::ProfileToYaml(*profile);
  if (profile->runtime && profile->runtime->blas && profile->runtime->blas->Reference()) {
    std::fprintf(stderr,
                 "warning: libtorch uses the reference BLAS (%s): batched inference will be ~10x "
                 "slower; install libopenblas0-openmp\n",
                 core::TerminalSafe(profile->runtime->blas->library).c_str());
  }
  if (!o.out.empty()) {
    if (auto ok = core::WriteFileAtomic(o.out, text, o.force); !ok) {
      return ReportError(ok.error(), o.json);
    }
    std::fprintf(stderr, "wrote target profile %s%s\n", core::TerminalSafe(o.out).c_str(),
                 profile->runtime ? "" : " (no runtime module: operators not listed)");
    return kExitOk;
  }
  std::fwrite(text.data(), 1, text.size(), stdout);
  return kExitOk;
}

}  // namespace probe_cmd

void RegisterProbe(CLI::App& app, RunFn& run) {
  auto o = std::make_shared<probe_cmd::Options>();
  auto* sub = app.add_subcommand("probe", "Describe this machine as a target profile (YAML)");
  sub->add_flag("--json", o->json,
                "print JSON instead of YAML (also chosen by -o FILE.json); on failure an error "
                "object (schemas/error.schema.json)");
  sub->add_flag("--yaml", o->yaml, "print YAML (the default)");
  sub->add_option("-o,--out", o->out, "write the profile to FILE instead of stdout")
      ->check(NonEmpty("the profile file to write, or leave the flag out for stdout"));
  sub->add_flag("--force", o->force, "replace FILE if it exists");
  sub->add_flag("--no-runtime", o->no_runtime,
                "do not load the runtime module (faster; the profile then lists no operators)");
  sub->footer(
      "Reports OS, architecture, CPU model, cores and feature flags, total and available memory,\n"
      "GPUs (through NVML when present), and the runtime's libtorch version, newest TorchScript\n"
      "file format, operator set and BLAS (verify --target WARNs about the slow reference BLAS).\n"
      "Take a profile on a production box, commit it, and check archives against it in CI\n"
      "anywhere. Profiles are plain YAML: write one by hand for an edge device\n"
      "(docs/target-profile.md).\n\n"
      "Examples:\n  dlsys probe -o prod-cpu.yaml\n  dlsys probe -o prod-cpu.json   # same content, "
      "faster to load in CI\n"
      "  dlsys verify model.dlsys --trust keys/ --target prod-cpu.yaml");
  sub->callback([o, &run] { run = [o] { return probe_cmd::Run(*o); }; });
}

}  // namespace dlsys::cli
