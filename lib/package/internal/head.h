// Reads the head of a .dlsys archive: the manifest entry and, if present, the signature.
#pragma once

#include <optional>
#include <string>

#include "archive/archive.h"
#include "core/error.h"

namespace dlsys::package::internal {

struct Head {
  archive::Reader reader;
  std::string manifest_json;
  std::optional<std::string> envelope_json;
  // The first payload entry, already read from the reader (nullopt at end of archive).
  std::optional<archive::Entry> next;
};

// kNotFound if the file is missing; kInvalid if it is not a tar archive, is unsafe or
// truncated in its head, or does not start with manifest.json.
[[nodiscard]] Result<Head> ReadHead(const std::string& path, const archive::Limits& limits = {});

}  // namespace dlsys::package::internal
