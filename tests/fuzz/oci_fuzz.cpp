// Fuzzes what an OCI registry or a user's auth file can hand dlsys (hostile): a manifest through
// oci::ParseManifest, a reference through oci::ParseReference, and an auth file's JSON through
// the credentials lookup. The first byte chooses which; the rest is the text.
//
// Invariants: a parsed manifest has exactly one layer of a dlsys media type with a sha256
// digest; a parsed reference prints back to a reference that parses to the same parts.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "oci/internal/credentials.h"
#include "oci/oci.h"
#include "invariant.h"

using dlsys::fuzz::Check;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  namespace oci = dlsys::oci;
  switch (data[0] % 3) {
    case 0: {
      auto m = oci::ParseManifest(text);
      if (!m) return 0;
      Check(m->layer.digest.starts_with("sha256:") && m->config.digest.starts_with("sha256:"),
            "digests are sha256");
      Check(oci::LayerCompression(m->layer).has_value(), "the layer is a dlsys archive");
      break;
    }
    case 1: {
      auto r = oci::ParseReference(text);
      if (!r) return 0;
      auto again = oci::ParseReference(r->ToString());
      Check(again.has_value(), "a parsed reference prints to one that parses");
      Check(again->host == r->host && again->repository == r->repository &&
                again->tag == r->tag && again->digest == r->digest,
            "the same parts");
      break;
    }
    default: {
      bool found = false;
      (void)oci::internal::CredentialsFromAuthJson(text, "auth.json", "registry.example.com:5000",
                                                   "team/iris", &found);
      break;
    }
  }
  return 0;
}
