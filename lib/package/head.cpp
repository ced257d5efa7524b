#include "package/internal/head.h"

#include "manifest/manifest.h"

namespace dlsys::package::internal {

Result<Head> ReadHead(const std::string& path, const archive::Limits& limits) {
  DLSYS_ASSIGN_OR_RETURN(archive::Reader reader, archive::Reader::Open(path, limits));
  DLSYS_ASSIGN_OR_RETURN(auto first, reader.Next());
  if (!first) return Fail(Code::kInvalid, "'" + path + "' is an empty archive, not a dlsys archive");
  if (first->path != manifest::kManifestPath) {
    return Fail(Code::kInvalid, "'" + path + "' is not a dlsys archive: its first entry is '" +
                                    first->path + "', expected '" +
                                    std::string(manifest::kManifestPath) + "'");
  }
  DLSYS_ASSIGN_OR_RETURN(std::string manifest_json, reader.ReadAll(manifest::kMaxManifestBytes));
  DLSYS_ASSIGN_OR_RETURN(auto second, reader.Next());
  std::optional<std::string> envelope;
  if (second && second->path == manifest::kSignaturePath) {
    DLSYS_ASSIGN_OR_RETURN(envelope, reader.ReadAll(manifest::kMaxManifestBytes * 2));
    DLSYS_ASSIGN_OR_RETURN(second, reader.Next());
  }
  return Head{std::move(reader), std::move(manifest_json), std::move(envelope), std::move(second)};
}

}  // namespace dlsys::package::internal
