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
// "dlsys.yaml field 'inputs[0].dtype': ..." for invalid content (YAML syntax errors also give
// "line L, column C");
// kNotFound if a referenced file does not exist.
[[nodiscard]] Result<Spec> ParseSpec(std::string_view yaml, const std::string& base_dir,
                                     const std::string& display_name = "dlsys.yaml");
[[nodiscard]] Result<Spec> LoadSpec(const std::string& path);

// Maps a name to the archive path it gets when added with --file: "files/<basename>".
std::string DefaultArchivePath(const std::string& source);

}  // namespace dlsys::manifest
