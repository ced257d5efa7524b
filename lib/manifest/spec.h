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

// Parses spec YAML text; `base_dir` resolves relative file paths. kInvalid with
// "dlsys.yaml: line 12: field 'inputs[0].dtype': ..." for malformed or invalid content;
// kNotFound if a referenced file does not exist.
[[nodiscard]] Result<Spec> ParseSpec(std::string_view yaml, const std::string& base_dir,
                                     const std::string& display_name = "dlsys.yaml");
[[nodiscard]] Result<Spec> LoadSpec(const std::string& path);

// Converts YAML 1.2 text (core schema; JSON is valid YAML) to compact JSON text, for other
// documents written by hand in YAML (target profiles). Quoted scalars stay strings; duplicate
// keys and non-scalar keys are errors. kInvalid with "<display>: line N, column M: ..." for
// text that is not YAML or is nested absurdly deep.
[[nodiscard]] Result<std::string> YamlToJson(std::string_view yaml, const std::string& display);

// Maps a name to the archive path it gets when added with --file: "files/<basename>".
std::string DefaultArchivePath(const std::string& source);

}  // namespace dlsys::manifest
