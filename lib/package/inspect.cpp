#include <sys/stat.h>

#include "package/internal/head.h"
#include "package/package.h"

namespace dlsys::package {

Result<InspectResult> Inspect(const std::string& path) {
  auto head = internal::ReadHead(path);
  if (!head) return tl::unexpected(std::move(head.error()).Wrap("cannot inspect '" + path + "'"));
  InspectResult r;
  auto m = manifest::Parse(head->manifest_json);
  if (!m) return tl::unexpected(std::move(m.error()).Wrap("cannot inspect '" + path + "'"));
  r.manifest = std::move(*m);
  r.manifest_json = std::move(head->manifest_json);
  if (head->envelope_json) {
    auto env = signing::ParseEnvelope(*head->envelope_json);
    if (!env) return tl::unexpected(std::move(env.error()).Wrap("cannot inspect '" + path + "'"));
    r.is_signed = !env->signatures.empty();
    for (const auto& s : env->signatures) r.signer_key_ids.push_back(s.keyid);
  }
  r.compression = head->reader.compression();
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) r.archive_bytes = static_cast<std::uint64_t>(st.st_size);
  return r;
}

}  // namespace dlsys::package
