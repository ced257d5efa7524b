// Target profiles: what a machine offers a model (schemas/target.schema.json).
//
// A profile comes from `dlsys probe` on the machine itself, or is written by hand (e.g. for an
// edge device). Every field is optional in a hand-written profile: a missing field makes the
// checks that need it WARN ("target does not say ..."), never pass silently.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace dlsys::hw {

// Limits on a profile text (YAML or JSON): a probed profile lists a few thousand operators.
inline constexpr std::size_t kMaxProfileBytes = 16u << 20;
inline constexpr std::size_t kMaxProfileValues = 1000000;
inline constexpr std::size_t kMaxProfileDepth = 64;

struct Gpu {
  std::string name;  // "NVIDIA A100-SXM4-80GB"
  std::optional<std::uint64_t> memory_bytes;
  std::optional<std::string> compute_capability;  // "8.0"
  std::string driver_version;
  std::string cuda_version;  // "12.2"

  bool operator==(const Gpu&) const = default;
};

// The BLAS library the runtime's CPU matmuls go through (runtime::Runtime::Blas()). Batched CPU
// inference is about 10x slower on the netlib reference BLAS than on OpenBLAS.
struct RuntimeBlas {
  std::string name;     // "openblas", "blis", "mkl", "reference", "unknown" (lower-cased on read)
  std::string library;  // path of the shared library providing sgemm_
  std::string detail;   // version, build configuration and threading, as the library reports them

  bool Reference() const { return name == "reference"; }
  bool operator==(const RuntimeBlas&) const = default;
};

struct RuntimeInfo {
  std::string libtorch_version;                         // "1.13.0"
  std::optional<std::int64_t> max_file_format_version;  // newest TorchScript format it reads
  std::vector<std::string> operators;                   // sorted; empty = not listed
  std::optional<RuntimeBlas> blas;                      // nullopt = not stated

  bool operator==(const RuntimeInfo&) const = default;
};

struct TargetProfile {
  std::string name;  // free label, e.g. "edge-pi4" or the host name
  std::string os;    // "linux"
  std::string arch;  // "x86_64", "aarch64"
  std::string cpu_model;
  std::optional<int> cores;
  std::optional<std::vector<std::string>> cpu_features;  // lower-case /proc/cpuinfo flags
  std::optional<std::uint64_t> memory_total_bytes;
  std::optional<std::uint64_t> memory_available_bytes;
  std::optional<std::vector<Gpu>> gpus;  // nullopt = not stated; empty = no GPU
  std::optional<RuntimeInfo> runtime;    // nullopt = no libtorch known

  bool operator==(const TargetProfile&) const = default;
};

// Parses a YAML (or JSON) profile, strictly (manifest/internal/yaml_json.h: valid UTF-8, no
// duplicate keys, at most the limits above). Sizes may be integers (bytes) or strings with
// units ("4 GiB", "512MiB", "1.5GB"), at most 2^53 - 1 bytes. kInvalid with "target.yaml
// field 'memory.total': ..." naming the field for malformed content; unknown keys are errors.
[[nodiscard]] Result<TargetProfile> ParseProfile(std::string_view yaml,
                                                 const std::string& display = "target.yaml");
[[nodiscard]] Result<TargetProfile> LoadProfile(const std::string& path);

// Serialises a profile as YAML that ParseProfile reads back identically, and as JSON.
std::string ProfileToYaml(const TargetProfile& profile);
std::string ProfileToJson(const TargetProfile& profile);

}  // namespace dlsys::hw
