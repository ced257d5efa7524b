// Hardware requirements of a model (the manifest's `requirements` object) and the rules that
// check them against a target profile.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/check.h"
#include "core/error.h"
#include "hw/profile.h"
#include "manifest/manifest.h"

namespace dlsys::hw {

// Limits on a requirements object (JSON text, from a spec or a manifest).
inline constexpr std::size_t kMaxRequirementsBytes = 1u << 20;
inline constexpr std::size_t kMaxRequirementsValues = 10000;
inline constexpr std::size_t kMaxRequirementsDepth = 16;
inline constexpr std::size_t kMaxCpuFeatures = 1024;    // entries of cpu_features
inline constexpr std::size_t kMaxCpuFeatureBytes = 64;  // one feature name

// Measured on the packing machine with the example inputs.
struct Measured {
  std::uint64_t peak_memory_bytes = 0;  // peak anonymous RSS growth over load + one forward
  std::uint64_t weights_bytes = 0;      // parameter + buffer bytes
  double forward_latency_ms = 0;        // median over forward_runs
  int forward_runs = 0;
  int threads = 0;      // intra-op threads used
  std::string example;  // which example was timed
  std::string machine;  // CPU model of the packing machine

  bool operator==(const Measured&) const = default;
};

struct Requirements {
  std::string device = "cpu";                             // "cpu" | "cuda"
  std::optional<std::string> min_gpu_compute_capability;  // "8.0"
  std::optional<std::uint64_t> min_gpu_memory_bytes;
  std::optional<std::uint64_t> min_memory_bytes;
  std::vector<std::string> cpu_features;  // lower-case, e.g. "avx2"
  std::optional<double> latency_budget_ms;
  std::optional<std::int64_t> max_batch_size;
  std::optional<Measured> measured;

  bool operator==(const Requirements&) const = default;
};

// Parameter + buffer bytes of a model, all dtypes, in checked arithmetic: a total beyond
// 2^64 - 1 saturates at 2^64 - 1 (so every memory check fails) instead of wrapping around to a
// small number that would pass. (manifest::Parse already refuses totals beyond 2^53 - 1.)
std::uint64_t WeightBytes(const runtime::ModelSummary& summary);

// The memory a model needs to run: the largest of its declared minimum, its measured peak and
// its weight bytes (the manifest's model summary, else the measured weights). What `verify
// --target` checks against a machine and what `deploy export` requests from a cluster.
std::uint64_t MemoryNeedBytes(const manifest::Manifest& m, const Requirements& req);

// Parses the spec's or manifest's requirements object (JSON text), strictly (core::ParseJson:
// UTF-8, no duplicate keys, integers within +-(2^53 - 1), the limits above). Spec form accepts
// sizes with units (`min_memory: 2 GiB`) or in bytes (`min_memory_bytes: 2147483648`), at most
// 2^53 - 1 bytes. kInvalid naming the field ("requirements field 'device': expected \"cpu\" or
// \"cuda\", found \"tpu\"").
[[nodiscard]] Result<Requirements> ParseRequirements(std::string_view json,
                                                     const std::string& display = "requirements");
// Canonical JSON (RFC 8785) for the manifest (sizes in *_bytes fields, measured under
// "measured"). For values JSON cannot carry exactly (only possible in a hand-built struct:
// a size beyond 2^53 - 1, text that is not UTF-8) it falls back to plain JSON, which
// manifest::Serialize then refuses naming the field.
std::string RequirementsToJson(const Requirements& r);

// Checks the model (requirements + model summary) against the target. One row per rule:
// memory, device, gpu_memory, cpu_features, file_format, runtime_version, operators, blas,
// latency. Rows say the numbers: "needs 1.3 GiB (1.1 GiB weights + 0.2 GiB measured activation),
// target has 1.0 GiB". Missing target facts give WARN rows. `blas` (CPU models only) is about
// speed, never FAIL: WARN for the reference BLAS, an unidentified one, or one not stated.
std::vector<Check> CheckTarget(const manifest::Manifest& manifest, const Requirements& req,
                               const TargetProfile& target);

}  // namespace dlsys::hw
