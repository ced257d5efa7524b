// `dlsys deploy export`: the files a user applies to a real cluster for one model's route in one
// environment (docs/deploy.md, "Beyond one machine").
//
//   kserve      servingruntime.yaml    ServingRuntime `dlsys` (serving.kserve.io/v1alpha1)
//               inferenceservice.yaml  InferenceService NAME (serving.kserve.io/v1beta1); a
//                                      canary route sets canaryTrafficPercent = its weight
//   k8s         deployment.yaml        one apps/v1 Deployment per arm taking traffic
//                                      (NAME-stable, NAME-canary), replicas split by weight
//               service.yaml           a v1 Service selecting every arm's pods
//   dockerfile  Dockerfile, entrypoint.sh, .dockerignore and the archives (NAME-VERSION.dlsys,
//               copied from the registry's blobs and checked against their digests)
//
// Every string that comes from the registry or an archive (names, versions, the model's
// description) reaches the output only through an escaper of the target syntax: YAML
// double-quoted scalars (ASCII-only), Dockerfile quoted words, POSIX shell single quotes.
// Nothing here prints or exits.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "deploy/registry.h"

namespace dlsys::deploy {

enum class ExportFormat { kKServe, kK8s, kDockerfile };
const char* ExportFormatName(ExportFormat f);  // "kserve", "k8s", "dockerfile"
[[nodiscard]] Result<ExportFormat> ParseExportFormat(std::string_view text);  // kUsage

// The port dlsys serve listens on inside the container, and its paths.
inline constexpr int kExportPort = 8080;
// The uid/gid the Dockerfile's user gets and the pods run as (numeric, so the kubelet can
// check runAsNonRoot; any non-zero id would do).
inline constexpr int kExportUid = 10001;
// Memory of a `dlsys serve` process beyond what the model itself needs (libtorch's mapped code,
// allocator arenas, HTTP buffers): the peak resident set (VmHWM) of `dlsys serve` with a 5-KB
// model after 2000 requests from 32 concurrent clients, 174,416 kB on a 2-core bookworm machine
// with libtorch 1.13 (docs/deploy.md, "Export"), rounded up to a MiB. No headroom: more cores,
// threads, instances or bigger batches need more (--server-memory). Added to the model's memory
// need for the containers' memory request and limit.
inline constexpr std::uint64_t kDefaultServerMemoryBytes = std::uint64_t{171} << 20;

struct ExportOptions {
  std::string model;
  std::string env;
  ExportFormat format = ExportFormat::kK8s;
  std::string image;  // the container image running dlsys (required; the CLI's default
                      // is "dlsys:" + the dlsys version)
  std::string kubernetes_namespace;  // metadata.namespace; "" = leave it to kubectl
  // kserve: where each archive is stored; "{name}" and "{version}" are replaced. The location
  // must hold NAME-VERSION.dlsys (KServe makes it /mnt/models/NAME-VERSION.dlsys).
  std::string storage_uri = "pvc://dlsys-models/{name}/{version}";
  unsigned replicas = 1;  // k8s: pods in total over the arms (1..10000)
  // Export only the stable version, whatever the strategy (the way to export ab and shadow
  // routes, which KServe and a plain Service cannot split).
  bool stable_only = false;
  // Serve with --allow-unsigned instead of --trust: needed for a version pushed unsigned.
  bool allow_unsigned = false;
  std::uint64_t server_memory_bytes = kDefaultServerMemoryBytes;
  // The Kubernetes object name; "" = the model name with '.' and '_' made '-'.
  std::string object_name;
};

struct ExportFile {
  std::string name;   // relative to the output directory, one component ("Dockerfile")
  std::string bytes;  // the content, unless `source` is set
  // When set: the content is this registry blob, copied when written and checked against
  // `source_digest` ("sha256:HEX"); `bytes` is empty.
  std::string source;
  std::string source_digest;
  std::uint64_t size = 0;  // bytes.size(), or the blob's recorded size
  unsigned mode = 0644;

  // A file of `bytes`.
  static ExportFile Text(std::string name, std::string bytes, unsigned mode = 0644) {
    ExportFile f;
    f.name = std::move(name);
    f.size = bytes.size();
    f.bytes = std::move(bytes);
    f.mode = mode;
    return f;
  }
};

// The files for `options.model`'s route in `options.env`, from the committed state.
//   kNotFound: the model is not deployed in that environment (or the environment is unknown),
//              or a version's blob is missing.
//   kUsage:    a strategy the format cannot express (ab, shadow: pass stable_only; kserve and
//              a canary weight that is not a whole percent), a version pushed unsigned without
//              allow_unsigned, a name that cannot name a Kubernetes object (object_name), a
//              version that cannot be a label value, replicas out of range, an empty image.
//   kInvalid:  an archive's head or its requirements cannot be read.
[[nodiscard]] Result<std::vector<ExportFile>> Export(const Registry& registry,
                                                     const ExportOptions& options);

// Writes `files` into `dir` as a whole: every file goes into a fresh directory next to `dir`
// (core::AtomicFile each, blobs copied with their digest checked), which then takes `dir`'s
// place with one rename (an exchange if `dir` exists). `dir` is never followed if it is a
// symbolic link (kInvalid). An existing non-empty `dir` is kExists unless `force`; even with
// force, a `dir` holding a subdirectory is refused (kUsage): an export never writes one, so it
// is not an earlier export. On failure nothing under `dir` changes and the temporary directory
// is removed. Returns the paths written (dir/name).
[[nodiscard]] Result<std::vector<std::string>> WriteExport(const std::vector<ExportFile>& files,
                                                           const std::string& dir, bool force);

// The YAML and shell escapers, exposed for tests.
// A YAML double-quoted scalar holding exactly `s`, ASCII-only: " \ and controls escaped, other
// non-ASCII as \uXXXX / \UXXXXXXXX, bytes that are not UTF-8 as \uFFFD.
std::string YamlQuote(std::string_view s);
// A POSIX shell word holding exactly `s` ('...' with ' as '\'').
std::string ShellQuote(std::string_view s);

}  // namespace dlsys::deploy
