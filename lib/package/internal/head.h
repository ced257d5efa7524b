// Reads the head of a .dlsys archive: the manifest entry and, if present, the signature.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "archive/archive.h"
#include "core/error.h"
#include "core/file.h"
#include "manifest/manifest.h"

namespace dlsys::package::internal {

struct Head {
  core::UniqueFd fd;  // the archive, opened once; every later read goes through it
  std::uint64_t file_bytes = 0;
  archive::Reader reader;
  std::string manifest_json;
  std::optional<std::string> envelope_json;
  std::vector<archive::Entry> head_entries;  // manifest.json [, signature.json]
  // The first payload entry, already read from the reader (nullopt at end of archive).
  std::optional<archive::Entry> next;
};

// kNotFound if the file is missing; kInvalid if it is not a regular file, not a canonical
// dlsys container, truncated in its head, or does not start with manifest.json.
[[nodiscard]] Result<Head> ReadHead(const std::string& path);

}  // namespace dlsys::package::internal
