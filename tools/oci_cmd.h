// dlsys and OCI registries (docs/oci.md): `deploy push ARCHIVE oci://...`, `deploy pull`,
// `deploy tags`, and the oci:// forms of inspect, verify and serve. The registry protocol and
// the artifact layout are lib/oci; this file turns them into commands. Everything a registry
// says passes through core::TerminalSafe before it reaches a terminal.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "cli.h"
#include "core/error.h"
#include "package/package.h"

namespace dlsys::cli::oci_cmd {

// The flags every command that talks to a registry takes.
struct RemoteOptions {
  bool plain_http = false;  // --plain-http (loopback registries only: lib/oci refuses others)
  bool insecure_plain_http = false;  // --insecure-plain-http: plain HTTP to any host
  std::string ca_file;      // --ca-file
  std::string auth_file;    // --auth-file ("-" = anonymous)
};
void AddRemoteOptions(CLI::App* sub, RemoteOptions& o);

// `deploy push ARCHIVE oci://HOST/REPO[:TAG]` (the hook in deploy push hands over when its
// last argument is an oci:// reference). Prints the manifest digest; returns the exit code.
struct PushOptions {
  std::string archive;
  std::string reference;
  std::vector<std::string> trust;
  bool allow_unsigned = false;
  bool json = false;
  RemoteOptions remote;
};
int Push(const PushOptions& o);

// Registers `deploy pull` and `deploy tags`. `registry_dir` gives deploy's --registry (empty
// when not given): pull stores the archive there too when it is set.
void RegisterDeploy(CLI::App& deploy, std::function<std::string()> registry_dir, RunFn& run);

// inspect oci://...: one manifest and one config request, the same result as a local inspect
// (archive_bytes is the layer's size).
[[nodiscard]] Result<package::InspectResult> InspectRemote(const std::string& reference,
                                                           const RemoteOptions& remote);

// verify oci://...: without `full`, the metadata only (OCI manifest, config digest, manifest
// schema, signature over the config, annotations against the manifest); with `full`, the layer
// is downloaded to an unnamed temporary file and verified as a local archive (target and smoke
// included). Problems found are report rows; errors are registry or usage failures.
[[nodiscard]] Result<package::VerifyReport> VerifyRemote(const std::string& reference,
                                                         const package::VerifyOptions& options,
                                                         bool full, const RemoteOptions& remote);

// serve: each oci:// reference among `archives` is pulled into the cache
// ($XDG_CACHE_HOME/dlsys/oci, else ~/.cache/dlsys/oci) under its layer digest, reused when
// present, and replaced by that path; other paths are kept. The server verifies every archive
// it loads, so the cache needs no trust of its own.
[[nodiscard]] Result<std::vector<std::string>> ResolveArchives(
    const std::vector<std::string>& archives, const RemoteOptions& remote);

}  // namespace dlsys::cli::oci_cmd
