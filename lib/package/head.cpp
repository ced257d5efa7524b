#include "package/internal/head.h"

#include <sys/stat.h>

#include "manifest/manifest.h"
#include "signing/keys.h"

namespace dlsys::package::internal {

Result<Head> ReadHead(const std::string& path) {
  DLSYS_ASSIGN_OR_RETURN(core::UniqueFd fd, core::OpenRegularFile(path));
  struct stat st {};
  const std::uint64_t file_bytes =
      ::fstat(fd.get(), &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
  DLSYS_ASSIGN_OR_RETURN(archive::Reader reader, archive::Reader::Open(fd.get(), path));
  DLSYS_ASSIGN_OR_RETURN(auto first, reader.Next());
  if (!first)
    return Fail(Code::kInvalid, "'" + path + "' is an empty archive, not a dlsys archive");
  if (first->path != manifest::kManifestPath) {
    return Fail(Code::kInvalid,
                "'" + path + "' is not a dlsys archive: its first entry (at offset 0) is '" +
                    first->path + "', expected '" + std::string(manifest::kManifestPath) + "'");
  }
  std::vector<archive::Entry> head_entries = {*first};
  DLSYS_ASSIGN_OR_RETURN(std::string manifest_json, reader.ReadAll(manifest::kMaxManifestBytes));
  DLSYS_ASSIGN_OR_RETURN(auto second, reader.Next());
  std::optional<std::string> envelope;
  if (second && second->path == manifest::kSignaturePath) {
    head_entries.push_back(*second);
    DLSYS_ASSIGN_OR_RETURN(envelope, reader.ReadAll(signing::kMaxEnvelopeBytes));
    DLSYS_ASSIGN_OR_RETURN(second, reader.Next());
  }
  if (second &&
      (second->path == manifest::kManifestPath || second->path == manifest::kSignaturePath)) {
    return Fail(Code::kInvalid, "'" + path + "' is not a canonical dlsys archive: entry '" +
                                    second->path + "' at offset " +
                                    std::to_string(second->header_offset) +
                                    " is out of order or repeated; pack writes manifest.json, "
                                    "signature.json, then the payload sorted by path, each once");
  }
  return Head{std::move(fd),       file_bytes,
              std::move(reader),   std::move(manifest_json),
              std::move(envelope), std::move(head_entries),
              std::move(second)};
}

}  // namespace dlsys::package::internal
