// Packing, inspecting and verifying .dlsys archives (docs/archive-format.md).
//
// Pack loads the model through the runtime (kUnavailable if the runtime module is absent),
// digests every payload file, writes a deterministic archive atomically and signs it.
// Inspect reads only the archive's head. Verify streams the archive, never extracts it, and
// reports every check it made.
#pragma once

#include <cstdint>
#include <functional>
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
  ProgressFn progress;         // optional; called from the packing thread
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

// Reads the manifest and signature entries only. kNotFound, or kInvalid if the archive's
// head is not a valid dlsys archive.
[[nodiscard]] Result<InspectResult> Inspect(const std::string& path);

using dlsys::Check;
using dlsys::Status;
using dlsys::StatusName;

struct VerifyOptions {
  signing::TrustStore trust;
  bool allow_unsigned = false;
  // Checks the model's requirements against this target (rows memory, device, operators, ...).
  std::optional<hw::TargetProfile> target;
  // Loads the model here and runs the examples against the golden outputs (needs the runtime).
  bool smoke = false;
  unsigned threads = 0;  // 0 = all cores
  ProgressFn progress;
};

struct VerifyReport {
  std::string archive_path;
  std::string name;     // from the manifest, when readable
  std::string version;
  std::string key_id;   // trusted signer, when signed
  std::vector<Check> checks;
  // kInvalid when the container itself is unreadable or unsafe, kVerifyFailed when any check
  // fails, nullopt-like kInternal never; `ok` is true iff no check failed.
  bool ok = true;
  bool container_broken = false;
};

struct SmokeOptions {
  int latency_runs = 5;  // forward passes timed per example (after one warm-up)
};

// The smoke test: loads the archive's model through the runtime, runs every example, compares
// the outputs with the golden outputs within the example's tolerance (|a-b| <= atol + rtol*|b|),
// checks them against the declared output schema, and compares the measured latency and peak
// memory with the recorded ones and the latency budget. One row per finding, check "smoke";
// a missing runtime module gives a FAIL row saying so. The archive's integrity is the caller's
// business (verify runs this only after the digests pass).
std::vector<Check> Smoke(const std::string& archive_path, const manifest::Manifest& manifest,
                         const hw::Requirements& requirements, const SmokeOptions& options = {});

// Never fails for problems found in the archive (they become checks); kNotFound if the file
// does not exist.
[[nodiscard]] Result<VerifyReport> Verify(const std::string& path, const VerifyOptions& options);

}  // namespace dlsys::package
