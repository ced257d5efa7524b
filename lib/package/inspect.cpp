#include "package/internal/head.h"
#include "package/package.h"

namespace dlsys::package {
namespace {

Result<InspectResult> InspectHead(const std::string& path) {
  DLSYS_ASSIGN_OR_RETURN(internal::Head head, internal::ReadHead(path));
  InspectResult r;
  DLSYS_ASSIGN_OR_RETURN(r.manifest, manifest::Parse(head.manifest_json));
  DLSYS_ASSIGN_OR_RETURN(const std::int64_t created, manifest::CreatedEpoch(r.manifest));
  // The same manifest rules as verify, requirements included: inspect shows only what verify
  // would read.
  DLSYS_TRY(hw::ParseRequirements(r.manifest.requirements_json, "manifest field 'requirements'"));
  for (const archive::Entry& e : head.head_entries) {
    if (e.mtime != created) {
      return Fail(Code::kInvalid, "entry '" + e.path + "' at offset " +
                                      std::to_string(e.header_offset) +
                                      ": header field 'mtime' is " + std::to_string(e.mtime) +
                                      ", expected the manifest's created time " +
                                      std::to_string(created) + " (" + r.manifest.created + ")");
    }
  }
  r.manifest_json = std::move(head.manifest_json);
  if (head.envelope_json) {
    DLSYS_ASSIGN_OR_RETURN(signing::Envelope env, signing::ParseEnvelope(*head.envelope_json));
    r.is_signed = !env.signatures.empty();
    for (const auto& s : env.signatures) r.signer_key_ids.push_back(s.keyid);
  }
  r.compression = head.reader.compression();
  r.archive_bytes = head.file_bytes;
  return r;
}

}  // namespace

Result<InspectResult> Inspect(const std::string& path) {
  auto r = InspectHead(path);
  if (!r) return tl::unexpected(std::move(r.error()).Wrap("cannot inspect '" + path + "'"));
  return r;
}

}  // namespace dlsys::package
