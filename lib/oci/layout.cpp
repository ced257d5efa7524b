// The artifact layout (oci.h, docs/oci.md): the one canonical OCI image manifest per archive.
//
// BuildManifest is a pure function of the archive's signed bytes, so two pushes of one archive
// give one manifest digest, and ParseManifest accepts exactly its output form: a remote verify
// can rebuild the manifest from the config blob and the signature annotation and compare bytes.
#include <openssl/evp.h>

#include <array>
#include <cstdint>
#include <memory>
#include <set>
#include <string>

#include "core/internal/json.h"
#include "core/text.h"
#include "oci/oci.h"

namespace dlsys::oci {
namespace {

using Json = nlohmann::json;

constexpr std::string_view kTitle = "org.opencontainers.image.title";
constexpr std::string_view kVersion = "org.opencontainers.image.version";
constexpr std::string_view kCreated = "org.opencontainers.image.created";
constexpr std::string_view kSource = "org.opencontainers.image.source";
constexpr std::string_view kRevision = "org.opencontainers.image.revision";

// The archive's manifest.json is read with the archive format's own limit (4 MiB of text,
// manifest::kMaxManifestBytes); lib/oci does not depend on lib/manifest.
constexpr std::size_t kMaxArchiveManifestBytes = 4u << 20;
// A layer is one .dlsys archive, which the archive format bounds at 1 TiB per file; the tar
// adds headers, so allow twice that before calling a declared size absurd.
constexpr std::uint64_t kMaxLayerBytes = std::uint64_t{2} << 40;

std::string Sha256Digest(std::string_view bytes) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int len = 0;
  EVP_Digest(bytes.data(), bytes.size(), md.data(), &len, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "sha256:";
  for (unsigned i = 0; i < len; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 15]);
  }
  return out;
}

bool IsDigest(const std::string& s) {
  if (s.size() != 71 || s.rfind("sha256:", 0) != 0) return false;
  for (std::size_t i = 7; i < s.size(); ++i) {
    const char c = s[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

Result<std::string> LayerMediaType(std::string_view compression) {
  if (compression == "none") return std::string(kLayerMediaType);
  if (compression == "gzip" || compression == "zstd") {
    return std::string(kLayerMediaType) + "+" + std::string(compression);
  }
  return Fail(Code::kInvalid, "unknown archive compression '" + core::TerminalSafe(compression) +
                                  "' (none, gzip or zstd)");
}

// A string member of the archive's manifest, or "" when absent or not a string.
std::string StringMember(const Json& object, const char* key) {
  if (!object.is_object()) return "";
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : "";
}

// ---- ParseManifest helpers ------------------------------------------------------------------

Error Invalid(const std::string& field, const std::string& what) {
  return Error{Code::kInvalid, "OCI manifest field '" + field + "': " + what, {}};
}

// Exactly these keys, no more, no fewer.
Result<void> ExactKeys(const Json& j, const std::set<std::string>& keys, const std::string& field) {
  if (!j.is_object()) return tl::unexpected(Invalid(field, "expected an object"));
  for (const auto& [k, v] : j.items()) {
    if (!keys.count(k)) {
      return tl::unexpected(
          Invalid(field, "unexpected key '" + core::Truncate(core::TerminalSafe(k), 64) + "'"));
    }
  }
  for (const auto& k : keys) {
    if (!j.contains(k)) return tl::unexpected(Invalid(field, "missing key '" + k + "'"));
  }
  return {};
}

Result<std::string> StringField(const Json& j, const std::string& key, const std::string& field) {
  const Json& v = j.at(key);
  if (!v.is_string()) return tl::unexpected(Invalid(field + "." + key, "expected a string"));
  return v.get<std::string>();
}

Result<Descriptor> ParseDescriptor(const Json& j, const std::string& field,
                                   std::set<std::string> extra_keys = {}) {
  extra_keys.insert({"mediaType", "digest", "size"});
  DLSYS_TRY(ExactKeys(j, extra_keys, field));
  Descriptor d;
  DLSYS_ASSIGN_OR_RETURN(d.media_type, StringField(j, "mediaType", field));
  DLSYS_ASSIGN_OR_RETURN(d.digest, StringField(j, "digest", field));
  if (!IsDigest(d.digest)) {
    return tl::unexpected(Invalid(field + ".digest", "expected sha256: and 64 lower-case hex"));
  }
  const Json& size = j.at("size");
  if (!size.is_number_unsigned()) {
    return tl::unexpected(Invalid(field + ".size", "expected a whole number of bytes"));
  }
  d.size = size.get<std::uint64_t>();
  return d;
}

}  // namespace

Result<std::string> BuildManifest(std::string_view manifest_json,
                                  const std::optional<std::string>& signature_json,
                                  const std::string& layer_digest, std::uint64_t layer_size,
                                  std::string_view compression) {
  DLSYS_ASSIGN_OR_RETURN(std::string layer_type, LayerMediaType(compression));
  if (!IsDigest(layer_digest)) {
    return Fail(Code::kInvalid, "layer digest '" + core::TerminalSafe(layer_digest) +
                                    "' is not sha256: and 64 lower-case hex digits");
  }
  DLSYS_ASSIGN_OR_RETURN(
      Json m, core::ParseJson(manifest_json, {kMaxArchiveManifestBytes}, "manifest.json"));
  const std::string name = StringMember(m, "name");
  const std::string version = StringMember(m, "version");
  const std::string created = StringMember(m, "created");
  if (name.empty() || version.empty() || created.empty()) {
    return Fail(Code::kInvalid, "manifest.json has no name, version or created string");
  }
  const std::string title = name + "-" + version + ".dlsys";
  Json annotations = {{kTitle, title}, {kVersion, version}, {kCreated, created}};
  // OCI's source/revision from the lineage a training pipeline records (docs/spec-format.md):
  // "source" and "revision" when given, else the conventional git_commit.
  const Json lineage = m.contains("lineage") ? m["lineage"] : Json::object();
  if (std::string s = StringMember(lineage, "source"); !s.empty()) annotations[kSource] = s;
  std::string revision = StringMember(lineage, "revision");
  if (revision.empty()) revision = StringMember(lineage, "git_commit");
  if (!revision.empty()) annotations[kRevision] = revision;
  if (signature_json) annotations[kSignatureAnnotation] = *signature_json;

  const Json out = {
      {"schemaVersion", 2},
      {"mediaType", kManifestMediaType},
      {"artifactType", kArtifactType},
      {"config",
       {{"mediaType", kConfigMediaType},
        {"digest", Sha256Digest(manifest_json)},
        {"size", manifest_json.size()}}},
      {"layers", Json::array({{{"mediaType", layer_type},
                               {"digest", layer_digest},
                               {"size", layer_size},
                               {"annotations", {{kTitle, title}}}}})},
      {"annotations", annotations},
  };
  DLSYS_ASSIGN_OR_RETURN(std::string text, core::CanonicalJson(out));
  if (text.size() > kMaxOciManifestBytes) {
    return Fail(Code::kInvalid,
                "the OCI manifest of " + core::TerminalSafe(title) + " would be " +
                    std::to_string(text.size()) + " bytes, more than the " +
                    std::to_string(kMaxOciManifestBytes) +
                    " a pull accepts (the signature annotation holds the whole manifest.json)");
  }
  return text;
}

Result<ArtifactManifest> ParseManifest(std::string_view json) {
  if (json.size() > kMaxOciManifestBytes) {
    return Fail(Code::kInvalid, "OCI manifest is " + std::to_string(json.size()) +
                                    " bytes, more than " + std::to_string(kMaxOciManifestBytes));
  }
  DLSYS_ASSIGN_OR_RETURN(Json j,
                         core::ParseJson(json, {kMaxOciManifestBytes, 8, 1000}, "OCI manifest"));
  DLSYS_ASSIGN_OR_RETURN(std::string canonical, core::CanonicalJson(j));
  if (canonical != json) {
    return Fail(Code::kInvalid,
                "OCI manifest is not in the canonical form dlsys writes (sorted keys, no white "
                "space): it was not pushed by dlsys or was rewritten");
  }
  DLSYS_TRY(ExactKeys(
      j, {"schemaVersion", "mediaType", "artifactType", "config", "layers", "annotations"},
      "manifest"));
  if (j["schemaVersion"] != 2) return tl::unexpected(Invalid("schemaVersion", "expected 2"));
  if (j["mediaType"] != std::string(kManifestMediaType)) {
    return tl::unexpected(Invalid("mediaType", "expected " + std::string(kManifestMediaType)));
  }
  if (j["artifactType"] != std::string(kArtifactType)) {
    return tl::unexpected(Invalid(
        "artifactType", "expected " + std::string(kArtifactType) + ": not a dlsys archive"));
  }
  ArtifactManifest a;
  DLSYS_ASSIGN_OR_RETURN(a.config, ParseDescriptor(j["config"], "config"));
  if (a.config.media_type != kConfigMediaType) {
    return tl::unexpected(Invalid("config.mediaType", "expected " + std::string(kConfigMediaType)));
  }
  if (a.config.size > kMaxArchiveManifestBytes) {
    return tl::unexpected(Invalid("config.size", "more than the 4 MiB a manifest.json may have"));
  }
  const Json& layers = j["layers"];
  if (!layers.is_array() || layers.size() != 1) {
    return tl::unexpected(Invalid("layers", "expected exactly one layer (the .dlsys file)"));
  }
  DLSYS_ASSIGN_OR_RETURN(a.layer, ParseDescriptor(layers[0], "layers[0]", {"annotations"}));
  if (!LayerCompression(a.layer)) {
    return tl::unexpected(Invalid("layers[0].mediaType",
                                  "expected " + std::string(kLayerMediaType) + "[+gzip|+zstd]"));
  }
  if (a.layer.size > kMaxLayerBytes) {
    return tl::unexpected(Invalid("layers[0].size", "larger than any dlsys archive can be"));
  }
  const Json& annotations = j["annotations"];
  if (!annotations.is_object()) return tl::unexpected(Invalid("annotations", "expected an object"));
  static const std::set<std::string> kAllowed = {
      std::string(kTitle),  std::string(kVersion),  std::string(kCreated),
      std::string(kSource), std::string(kRevision), std::string(kSignatureAnnotation)};
  for (const auto& [k, v] : annotations.items()) {
    if (!kAllowed.count(k)) {
      return tl::unexpected(Invalid(
          "annotations", "unexpected key '" + core::Truncate(core::TerminalSafe(k), 64) + "'"));
    }
    if (!v.is_string()) return tl::unexpected(Invalid("annotations." + k, "expected a string"));
    a.annotations[k] = v.get<std::string>();
  }
  for (std::string_view required : {kTitle, kVersion, kCreated}) {
    if (!a.annotations.count(std::string(required))) {
      return tl::unexpected(Invalid("annotations", "missing key '" + std::string(required) + "'"));
    }
  }
  DLSYS_TRY(ExactKeys(layers[0]["annotations"], {std::string(kTitle)}, "layers[0].annotations"));
  if (layers[0]["annotations"][kTitle] != a.annotations[std::string(kTitle)]) {
    return tl::unexpected(
        Invalid("layers[0].annotations", "title differs from the manifest's title"));
  }
  return a;
}

std::optional<std::string> LayerCompression(const Descriptor& layer) {
  for (std::string_view c : {"none", "gzip", "zstd"}) {
    if (layer.media_type == *LayerMediaType(c)) return std::string(c);
  }
  return std::nullopt;
}

}  // namespace dlsys::oci
