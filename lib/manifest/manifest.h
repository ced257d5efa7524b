// The archive manifest: what a .dlsys archive holds and everything needed to trust and run it.
//
// Serialised as canonical JSON (docs/archive-format.md): UTF-8, object keys sorted by byte
// value, no insignificant white space, integers without exponent. Schema:
// schemas/manifest.schema.json. Free-form sections (hyperparameters, training config, ...)
// are kept as canonical JSON text so the library's public types need no JSON library.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "runtime/runtime.h"

namespace dlsys::manifest {

inline constexpr int kFormatVersion = 1;
inline constexpr std::string_view kManifestPath = "manifest.json";
inline constexpr std::string_view kSignaturePath = "signature.json";
inline constexpr std::string_view kPayloadType = "application/vnd.dlsys.manifest.v1+json";
inline constexpr std::size_t kMaxManifestBytes = 16u << 20;

struct TensorSpec {
  std::string name;
  std::string dtype;                // "float32", ... (runtime::DTypeName)
  std::vector<std::int64_t> shape;  // -1 for a dynamic dimension
};

// A tensor of an example, stored as a payload file of raw little-endian bytes.
struct ExampleTensor {
  TensorSpec tensor;  // concrete shape (no -1)
  std::string path;   // payload path, e.g. "examples/basic/inputs/x.bin"
};

struct Example {
  std::string name;
  std::vector<ExampleTensor> inputs;
  std::vector<ExampleTensor> outputs;  // golden outputs recorded at pack time
  double rtol = 1e-5;
  double atol = 1e-6;
};

struct FileRecord {
  std::string path;
  std::uint64_t size = 0;
  unsigned mode = 0644;
  std::string sha256;               // whole-file digest, iff size <= shard_bytes
  std::uint64_t shard_bytes = 0;    // iff sharded
  std::vector<std::string> shards;  // per-shard digests, iff sharded
};

// What a training pipeline says about its model: written in the spec, carried into the manifest.
struct Metadata {
  std::string name;
  std::string version;  // SemVer 2.0.0
  std::string description;
  std::string owner;
  std::string license;
  // Canonical JSON objects; "{}" when absent.
  std::string lineage_json = "{}";
  std::string hyperparameters_json = "{}";
  std::string training_json = "{}";
  std::string metrics_json = "{}";
  std::string dependencies_json = "{}";
  std::string requirements_json = "{}";
  std::string entry_method = "forward";
  std::vector<TensorSpec> inputs;
  std::vector<TensorSpec> outputs;
};

struct Manifest : Metadata {
  int format_version = kFormatVersion;
  std::string created;  // RFC 3339 UTC, e.g. "2026-11-23T19:00:00Z"
  std::string entry_file = "model.pt";
  runtime::ModelSummary model;
  std::vector<Example> examples;
  std::vector<FileRecord> files;  // sorted by path; every payload entry of the archive
  std::string tool_version;       // dlsys version that packed it
};

// Canonical JSON text of the manifest.
std::string Serialize(const Manifest& manifest);

// Parses and validates (schemas/manifest.schema.json plus cross-field rules: files sorted and
// unique, entry file listed, example paths listed, digests well-formed). kInvalid with
// "manifest field 'files[1].sha256': ..." naming the field, expected and found.
[[nodiscard]] Result<Manifest> Parse(std::string_view json);

const FileRecord* FindFile(const Manifest& manifest, std::string_view path);

// "[-1, 4]": a shape as people read it.
std::string ShapeText(const std::vector<std::int64_t>& shape);
// True if `actual` (concrete) fits `declared`, where -1 matches any size.
bool ShapeFits(const std::vector<std::int64_t>& declared, const std::vector<std::int64_t>& actual);

// Checks a name: 1-128 chars of [a-z0-9._-], starting with a letter or digit.
[[nodiscard]] Result<void> CheckName(std::string_view name);

}  // namespace dlsys::manifest
