// The pack spec (dlsys.yaml): what a training pipeline says about its model.
// Schema: schemas/spec.schema.json; reference: docs/spec-format.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "manifest/manifest.h"

namespace dlsys::manifest {

// Limits on a spec (YAML or JSON); a spec is written by people, so they are generous.
inline constexpr std::size_t kMaxSpecBytes = 16u << 20;  // the spec text
inline constexpr std::size_t kMaxSpecValues = 1000000;   // YAML/JSON values, inline data included
inline constexpr std::size_t kMaxSpecDepth = 64;         // nesting levels
inline constexpr std::size_t kMaxExampleBytes = 256u << 20;  // one example tensor's bytes

// Tensor data for an example input: raw little-endian bytes, from inline `data:` or `file:`.
struct SpecTensor {
  TensorSpec tensor;
  std::string bytes;
};

struct SpecExample {
  std::string name;
  std::vector<SpecTensor> inputs;
  double rtol = 1e-5;
  double atol = 1e-6;
};

struct SpecFile {
  std::string source;        // path on disk (relative paths resolved against the spec's dir)
  std::string archive_path;  // path inside the archive, default "files/<basename>"
};

struct Spec : Metadata {
  std::vector<SpecExample> examples;
  std::vector<SpecFile> files;
  std::string compression;  // "" = not set
};

// Parses spec YAML (or JSON) text; `base_dir` resolves relative file paths. The text is read
// strictly (manifest/internal/yaml_json.h: valid UTF-8, no duplicate keys, bounded nesting and
// size). kInvalid with "dlsys.yaml field 'inputs[0].dtype': ..." for invalid content (YAML
// syntax errors also give "line L, column C"), including free-form sections that canonical
// JSON cannot carry (integers beyond +-(2^53 - 1)); kNotFound if a referenced file does not
// exist.
[[nodiscard]] Result<Spec> ParseSpec(std::string_view yaml, const std::string& base_dir,
                                     const std::string& display_name = "dlsys.yaml");
[[nodiscard]] Result<Spec> LoadSpec(const std::string& path);

// Maps a name to the archive path it gets when added with --file: "files/<basename>".
std::string DefaultArchivePath(const std::string& source);

}  // namespace dlsys::manifest
