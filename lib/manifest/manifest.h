// The archive manifest: what a .dlsys archive holds and everything needed to trust and run it.
//
// Serialised as canonical JSON, RFC 8785 (docs/archive-format.md): UTF-8, object keys sorted,
// no insignificant white space, numbers as ECMAScript writes them, integers within
// +-(2^53 - 1). A manifest is read before its signature is trusted, so Parse is strict: the
// bytes must be exactly the canonical form, every object has exactly its documented keys, and
// every size is bounded (the limits below). Schema: schemas/manifest.schema.json. Free-form
// sections (hyperparameters, training config, ...) are kept as canonical JSON text so the
// library's public types need no JSON library.
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
inline constexpr std::string_view kEntryFile = "model.pt";  // entry_point.file, always
inline constexpr std::string_view kPayloadType = "application/vnd.dlsys.manifest.v1+json";

// Limits on a manifest (Parse refuses anything beyond them; Serialize too).
inline constexpr std::size_t kMaxManifestBytes = 4u << 20;              // 4 MiB of JSON text
inline constexpr std::size_t kMaxManifestValues = 100000;               // JSON values of all kinds
inline constexpr std::size_t kMaxManifestDepth = 64;                    // nested arrays/objects
inline constexpr std::size_t kMaxFiles = 10000;                         // entries of `files`
inline constexpr std::size_t kMaxShapeRank = 16;                        // dimensions of a tensor
inline constexpr std::uint64_t kMaxFileBytes = std::uint64_t{1} << 40;  // 1 TiB, as the archive
// String limits, in bytes.
inline constexpr std::size_t kMaxNameBytes = 128;           // name, examples[i].name
inline constexpr std::size_t kMaxVersionBytes = 256;        // version (SemVer)
inline constexpr std::size_t kMaxDescriptionBytes = 65536;  // description
inline constexpr std::size_t kMaxTextBytes = 4096;          // owner, license
// Tensor, method, argument, operator and device names, entry_point.method.
inline constexpr std::size_t kMaxIdentifierBytes = 256;
inline constexpr std::size_t kMaxSchemaBytes = 65536;    // model.methods[i].schema
inline constexpr std::size_t kMaxPathBytes = 1024;       // files[i].path (archive rule)
inline constexpr std::size_t kMaxToolVersionBytes = 64;  // tool.version, model.runtime_version

// Every payload file has mode 0644 (420): the only mode pack writes and the archive allows.
inline constexpr unsigned kFileMode = 0644;
// A file of at most kShardBytes has `sha256`; a larger one has `shard_bytes` (exactly this)
// and one digest per kShardBytes piece in `shards`.
inline constexpr std::uint64_t kShardBytes = std::uint64_t{64} << 20;  // 67108864
// `created` lies in [1970-01-01T00:00:00Z, 2242-03-16T12:56:31Z]: the tar mtime of every
// entry, and ustar holds at most 8^11 - 1 seconds.
inline constexpr std::int64_t kMaxCreatedEpoch = (std::int64_t{1} << 33) - 1;

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
  unsigned mode = kFileMode;
  std::string sha256;               // whole-file digest, iff size <= kShardBytes
  std::uint64_t shard_bytes = 0;    // kShardBytes iff size > kShardBytes, else 0
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

// The canonical JSON text (RFC 8785) of the manifest: what Parse reads back, byte for byte.
// It does not re-check Parse's rules. kInvalid, naming the field, when a free-form section
// (lineage_json, ...) is not a JSON object, when a value cannot be written exactly (a string
// that is not UTF-8, an integer beyond 2^53 - 1) or when the text would exceed
// kMaxManifestBytes.
[[nodiscard]] Result<std::string> Serialize(const Manifest& manifest);

// Parses and validates an untrusted manifest. kInvalid, with a message naming the field
// ("manifest field 'files[1].sha256': expected ..., found ...") or the byte offset, unless:
//  - the text is strict JSON within the limits above (core::ParseJson: UTF-8, no duplicate
//    keys, integers within +-(2^53 - 1)) and byte-for-byte its own canonical form
//    ("manifest is not in canonical form (RFC 8785) at byte N: ...");
//  - every object has exactly its documented keys, none null; strings are within their limits;
//  - format_version is 1; name passes CheckName; version is SemVer; created is a real UTC
//    calendar time "YYYY-MM-DDTHH:MM:SSZ" within [1970, kMaxCreatedEpoch];
//  - framework is pytorch/torchscript, tool.name is "dlsys";
//  - tensor dtypes are dtype names ("float32", not "FP32"); shapes have at most 16 dimensions
//    of 0..2^53-1 (or -1, dynamic, outside examples); tensor names are unique per list;
//  - model: method names unique, entry_point.method among them, operators sorted and unique,
//    bytes_by_dtype keys dtype names, values >= 0, and parameters + buffers bytes together at
//    most 2^53 - 1 (checked arithmetic);
//  - files: 1..kMaxFiles entries, paths pass the archive path rules, sorted strictly by byte
//    order, no path a directory prefix of another (CheckPathSet), none named manifest.json or
//    signature.json; mode 420; size <= 1 TiB; sha256 iff size <= kShardBytes, else shard_bytes
//    == kShardBytes and ceil(size / kShardBytes) shards; digests 64 lower-case hex;
//  - entry_point.file and every example tensor path are listed in files; an example tensor's
//    file holds exactly elements x dtype size bytes; example names are unique names; rtol and
//    atol are finite and >= 0.
[[nodiscard]] Result<Manifest> Parse(std::string_view json);

// Seconds since the epoch of `created` (for the archive's mtimes). kInvalid naming 'created'
// unless it is a real calendar date-time "YYYY-MM-DDTHH:MM:SSZ" (no 2026-02-30, no 24:00:00,
// no leap second) between 1970-01-01T00:00:00Z and 2242-03-16T12:56:31Z (kMaxCreatedEpoch).
[[nodiscard]] Result<std::int64_t> CreatedEpoch(const Manifest& manifest);

// Checks a set of archive paths that must already be sorted by byte order: kInvalid if two are
// equal or out of order, or if one path is a directory prefix of another ("a" and "a/b": a
// tar cannot hold "a" as both a file and a directory). O(n log n). Messages name the paths.
[[nodiscard]] Result<void> CheckPathSet(const std::vector<std::string>& sorted_paths);

const FileRecord* FindFile(const Manifest& manifest, std::string_view path);

// "[-1, 4]": a shape as people read it.
std::string ShapeText(const std::vector<std::int64_t>& shape);
// True if `actual` (concrete) fits `declared`, where -1 matches any size.
bool ShapeFits(const std::vector<std::int64_t>& declared, const std::vector<std::int64_t>& actual);

// Checks a name: 1-128 chars of [a-z0-9._-], starting with a letter or digit.
[[nodiscard]] Result<void> CheckName(std::string_view name);

}  // namespace dlsys::manifest
