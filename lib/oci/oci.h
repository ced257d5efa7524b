// dlsys archives in OCI registries (docs/oci.md): references, the artifact layout, and a
// client for the OCI distribution spec v1.1 over HTTP(S) (libcurl).
//
// Layout of one archive (an OCI image manifest, artifact style):
//   manifest   mediaType application/vnd.oci.image.manifest.v1+json,
//              artifactType application/vnd.dlsys.model.v1
//   config     application/vnd.dlsys.model.config.v1+json: the archive's manifest.json bytes,
//              exactly as signed (inspect and metadata verify need only this blob)
//   layer      application/vnd.dlsys.model.archive.v1.tar[+gzip|+zstd]: the .dlsys file, byte
//              for byte (a pull reproduces the signed archive bit-identically)
//   annotations org.opencontainers.image.{title,version,created,source,revision} from the
//              manifest, and dev.dlsys.signature: the archive's signature.json (so a remote
//              verify needs no layer bytes); nothing that varies between two pushes of the same
//              archive, so pushing it twice gives the same manifest digest.
//
// Everything a registry answers is hostile: sizes, counts and times are bounded, every blob is
// checked against its digest while it streams, and only the canonical manifest form that
// BuildManifest writes is accepted (ParseManifest).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace dlsys::oci {

inline constexpr std::string_view kManifestMediaType = "application/vnd.oci.image.manifest.v1+json";
inline constexpr std::string_view kArtifactType = "application/vnd.dlsys.model.v1";
inline constexpr std::string_view kConfigMediaType = "application/vnd.dlsys.model.config.v1+json";
inline constexpr std::string_view kLayerMediaType = "application/vnd.dlsys.model.archive.v1.tar";
inline constexpr std::string_view kSignatureAnnotation = "dev.dlsys.signature";

// ---- References ---------------------------------------------------------------------------

// oci://HOST[:PORT]/REPO[:TAG|@sha256:HEX]
struct Reference {
  std::string host;  // "127.0.0.1:5000", "ghcr.io" (with the port when given)
  std::string repository;  // "team/iris" (lower-case path components, distribution's grammar)
  std::string tag;         // "" when absent or when a digest is given
  std::string digest;      // "sha256:<64 hex>" or ""
  std::string ToString() const;  // the oci:// form
  bool IsLoopback() const;       // 127.0.0.0/8, ::1, localhost
};
// kUsage naming what is wrong (scheme, host, repository grammar, tag grammar, digest form).
[[nodiscard]] Result<Reference> ParseReference(std::string_view text);
bool IsOciReference(std::string_view text);  // starts with "oci://"

// ---- Layout -------------------------------------------------------------------------------

struct Descriptor {
  std::string media_type;
  std::string digest;  // sha256:HEX
  std::uint64_t size = 0;
};

struct ArtifactManifest {
  Descriptor config;
  Descriptor layer;
  std::map<std::string, std::string> annotations;
};

// The canonical manifest JSON (sorted keys, no white space) for an archive whose manifest.json
// bytes, signature.json bytes (nullopt: unsigned), layer digest/size and compression
// ("none", "gzip", "zstd") are given. The annotations come from the manifest (title
// NAME-VERSION.dlsys, version, created, source and revision from its lineage when present).
[[nodiscard]] Result<std::string> BuildManifest(std::string_view manifest_json,
                                                const std::optional<std::string>& signature_json,
                                                const std::string& layer_digest,
                                                std::uint64_t layer_size,
                                                std::string_view compression);
// Strict: exactly the form BuildManifest writes (schemaVersion 2, the media and artifact
// types above, one layer, only the annotations above), at most 4 MiB. kInvalid naming the
// field otherwise.
[[nodiscard]] Result<ArtifactManifest> ParseManifest(std::string_view json);

// The 4 MiB above (distribution's own limit for a manifest), shared by BuildManifest (kInvalid
// when its output would be larger, so a push never stores what a pull refuses) and
// ParseManifest. The signature annotation holds the whole manifest.json in base64, so this
// admits a manifest.json of about 3 MiB.
inline constexpr std::size_t kMaxOciManifestBytes = 4u << 20;
// "none", "gzip" or "zstd" for the layer media types BuildManifest writes; nullopt otherwise.
std::optional<std::string> LayerCompression(const Descriptor& layer);

// ---- Client -------------------------------------------------------------------------------

struct ClientOptions {
  std::string ca_file;      // --ca-file: PEM bundle instead of the system store
  bool plain_http = false;  // --plain-http: only with IsLoopback() unless forced
  bool plain_http_anywhere = false;  // the user asked for plain HTTP to a non-loopback host
  // Credentials: the first of $REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json,
  // $DOCKER_CONFIG/config.json, ~/.docker/config.json that has an "auths" entry for the host.
  // Empty = search; "-" = anonymous only.
  std::string auth_file;
  int retries = 4;                       // on 5xx, 429 and network errors, with backoff
  std::uint64_t timeout_ms = 30000;      // without progress on one request
  std::uint64_t chunk_bytes = 64u << 20; // uploads larger than this go in chunks
  // Progress of a blob transfer: (done, total) bytes; called from the calling thread.
  std::function<void(std::uint64_t, std::uint64_t)> progress;
};

// One registry (host), one repository at a time. Not thread-safe.
class Client {
 public:
  // Reads credentials (never logged or printed); kInvalid for an unreadable auth file.
  [[nodiscard]] static Result<std::unique_ptr<Client>> Create(const Reference& ref,
                                                              ClientOptions options);
  ~Client();

  // kNotFound (404), kVerifyFailed... see docs/oci.md for the mapping of HTTP statuses:
  // 401/403 -> kUnavailable "not authorized" naming the registry and the credential source,
  // 404 -> kNotFound, 416 -> kInvalid, 5xx after retries -> kUnavailable.
  [[nodiscard]] Result<bool> BlobExists(const std::string& repository, const std::string& digest);
  // Uploads the file at fd (size bytes, digest known) unless present; tries a cross-repository
  // mount from `mount_from` first when given. Returns true if bytes were sent.
  [[nodiscard]] Result<bool> PushBlob(const std::string& repository, int fd, std::uint64_t size,
                                      const std::string& digest,
                                      const std::string& mount_from = "");
  [[nodiscard]] Result<bool> PushBlob(const std::string& repository, std::string_view bytes,
                                      const std::string& digest);
  // Streams the blob into `sink`, checking its size and digest as it arrives (kVerifyFailed
  // on a mismatch, after the sink got the bytes: callers write to a temp file).
  [[nodiscard]] Result<void> PullBlob(const std::string& repository, const std::string& digest,
                                      std::uint64_t size,
                                      const std::function<Result<void>(std::string_view)>& sink);
  // A small blob in memory (at most max_bytes).
  [[nodiscard]] Result<std::string> FetchBlob(const std::string& repository,
                                              const std::string& digest, std::uint64_t size,
                                              std::uint64_t max_bytes);
  // PUT of the manifest under `reference` (a tag or the digest); returns its digest.
  [[nodiscard]] Result<std::string> PushManifest(const std::string& repository,
                                                 const std::string& reference,
                                                 std::string_view manifest_json);
  struct Fetched {
    std::string bytes;
    std::string digest;  // sha256 of bytes; checked against a digest reference
    std::string media_type;
  };
  [[nodiscard]] Result<Fetched> FetchManifest(const std::string& repository,
                                              const std::string& reference);
  [[nodiscard]] Result<std::vector<std::string>> ListTags(const std::string& repository);

  // Requests made so far (for tests and the benchmark: "a remote inspect takes one manifest
  // and one config request").
  std::uint64_t request_count() const;

 private:
  Client();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dlsys::oci
