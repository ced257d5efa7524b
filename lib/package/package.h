// Packing, inspecting and verifying .dlsys archives (docs/archive-format.md).
//
// Pack loads the model through the runtime (kUnavailable if the runtime module is absent),
// digests every payload file, writes a deterministic archive atomically and signs it.
// Inspect reads only the archive's head. Verify streams the archive, never extracts it, and
// reports every check it made.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "archive/archive.h"
#include "core/check.h"
#include "core/error.h"
#include "hw/profile.h"
#include "hw/requirements.h"
#include "manifest/manifest.h"
#include "manifest/spec.h"
#include "signing/keys.h"

namespace dlsys::package {

struct Progress {
  const char* phase;  // "loading", "hashing", "writing", "verifying"
  std::uint64_t done_bytes;
  std::uint64_t total_bytes;
};
using ProgressFn = std::function<void(const Progress&)>;

struct PackOptions {
  std::string model_path;
  manifest::Spec spec;  // name, version etc. already merged with command-line flags
  std::string output_path;
  bool overwrite = false;
  archive::Compression compression = archive::Compression::kNone;
  std::string key_path;        // empty: unsigned
  std::int64_t created_epoch;  // seconds; SOURCE_DATE_EPOCH or now, chosen by the caller
  // Set by the caller when the output must be byte-identical for the same inputs (i.e. when
  // SOURCE_DATE_EPOCH is set). Peak memory and forward latency are measured on this machine
  // and differ from run to run, so a reproducible pack records only the declared requirements
  // and leaves requirements.measured out of the manifest.
  bool reproducible = false;
  std::string tool_version;
  ProgressFn progress;  // optional; called from the packing thread
};

struct PackResult {
  manifest::Manifest manifest;
  std::string key_id;  // empty when unsigned
  std::uint64_t archive_bytes = 0;
};

// kUsage for bad name/version/paths, kNotFound for missing inputs, kInvalid for an empty or
// unloadable model or examples that do not fit it, kUnavailable without the runtime module,
// kExists if the output exists and !overwrite. On any failure nothing is left at output_path.
[[nodiscard]] Result<PackResult> Pack(const PackOptions& options);

struct InspectResult {
  manifest::Manifest manifest;
  std::string manifest_json;  // the exact bytes stored
  bool is_signed = false;
  std::vector<std::string> signer_key_ids;  // as claimed by the envelope (not verified)
  archive::Compression compression = archive::Compression::kNone;
  std::uint64_t archive_bytes = 0;
};

// Reads the manifest and signature entries only, requiring both to be canonical.
// kNotFound, or kInvalid if the archive's head is not a valid dlsys archive.
[[nodiscard]] Result<InspectResult> Inspect(const std::string& path);

using dlsys::Check;
using dlsys::Status;
using dlsys::StatusName;

struct VerifyOptions {
  signing::TrustStore trust;
  bool allow_unsigned = false;
  // Checks the model's requirements against this target (rows memory, device, operators, ...).
  std::optional<hw::TargetProfile> target;
  // Loads the model and runs the examples against the golden outputs (needs the runtime), in
  // a child process stopped after smoke_timeout_s seconds.
  bool smoke = false;
  unsigned smoke_timeout_s = 120;
  unsigned threads = 0;  // 0 = all cores
  ProgressFn progress;
};

// Verify options that trust the keys at `paths` (key files, or directories of *.pub), with
// allow_unsigned; kNotFound / kInvalid naming the path that does not load. With `who` set (e.g.
// "serve runs"), no key and no allow_unsigned is kUsage: "no trusted key: serve runs only
// archives signed by a trusted key", with the two ways out ("--allow-unsigned to `verb`
// unsigned archives on a development machine").
[[nodiscard]] Result<VerifyOptions> TrustOptions(const std::vector<std::string>& paths,
                                                 bool allow_unsigned, std::string_view who = {},
                                                 std::string_view verb = {});

// The "signature" check of `manifest_json` against the envelope `envelope_json` (nullopt:
// unsigned) under options.trust / options.allow_unsigned, as verify reports it; `subject` names
// where the envelope came from ("signature.json", an OCI annotation). broken: the envelope is
// not the strict canonical form pack writes (invalid input, exit 4).
struct SignatureCheck {
  Check row;
  bool broken = false;
  std::string key_id;  // the trusted signer, when the row passes
};
SignatureCheck CheckSignature(std::string_view manifest_json,
                              const std::optional<std::string>& envelope_json,
                              const VerifyOptions& options, const std::string& subject);

struct VerifyReport {
  std::string archive_path;
  std::string name;  // from the manifest, when readable
  std::string version;
  std::string key_id;  // trusted signer, when signed
  std::vector<Check> checks;
  // `ok` is true iff no check failed. container_broken: the archive itself is not a canonical,
  // readable dlsys archive (or its manifest is invalid); reading stopped there (exit code 4).
  bool ok = true;
  bool container_broken = false;
};

// Never fails for problems found in the archive (they become checks); kNotFound if the file
// does not exist. The archive is opened once and read once, sequentially; nothing is extracted.
[[nodiscard]] Result<VerifyReport> Verify(const std::string& path, const VerifyOptions& options);

// A verified archive loaded into memory: what runs is exactly what was verified.
struct VerifiedArchive {
  VerifyReport report;
  manifest::Manifest manifest;
  hw::Requirements requirements;  // the manifest's, parsed (an invalid one breaks the container)
  // The model and every example tensor, by archive path: the very bytes whose digests were
  // checked (filled only when report.ok).
  std::map<std::string, std::string> files;
};

// The one way to load a model from an archive: opens it once, reads it once, verifies the
// container, manifest, signature and every digest (as Verify does, without target or smoke
// checks) while keeping the bytes of the model and examples, and returns those bytes. Nothing
// is re-opened by path afterwards, so a file swapped or changed meanwhile cannot be run
// unchecked. kNotFound if the file does not exist; other problems are report rows.
[[nodiscard]] Result<VerifiedArchive> LoadVerified(const std::string& path,
                                                   const VerifyOptions& options);

struct SmokeOptions {
  int latency_runs = 5;  // forward passes timed per example (after one warm-up)
};

// The smoke test, in this process: loads the model from `archive.files`, runs every example,
// compares the outputs with the golden outputs within the example's tolerance
// (|a-b| <= atol + rtol*|b|), checks them against the declared output schema, and compares the
// measured latency and peak memory with the recorded ones and the latency budget. One row per
// finding, check "smoke"; a missing runtime module gives a FAIL row saying so.
std::vector<Check> Smoke(const VerifiedArchive& archive, const hw::Requirements& requirements,
                         const SmokeOptions& options = {});

// Runs Smoke in a child process (fork) so a model that hangs, crashes libtorch or exhausts
// memory costs one FAIL row, not the caller: the child is killed after timeout_s seconds.
std::vector<Check> SmokeIsolated(const VerifiedArchive& archive,
                                 const hw::Requirements& requirements, unsigned timeout_s,
                                 const SmokeOptions& options = {});

}  // namespace dlsys::package
