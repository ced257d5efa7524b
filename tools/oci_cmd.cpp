// dlsys and OCI registries: push, pull, tags, and the oci:// forms of inspect, verify and
// serve (docs/oci.md). The protocol is lib/oci's Client, the layout lib/oci's BuildManifest and
// ParseManifest; every archive check is package::Verify on the very bytes that were moved.
#include "oci_cmd.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "archive/archive.h"
#include "core/encoding.h"
#include "core/file.h"
#include "core/text.h"
#include "deploy/registry.h"
#include "log/log.h"
#include "manifest/manifest.h"
#include "oci/oci.h"
#include "render.h"
#include "signing/digest.h"
#include "signing/keys.h"

namespace dlsys::cli::oci_cmd {

using OciJson = nlohmann::ordered_json;

// Read in pieces this large when hashing an archive (large enough that syscalls do not matter).
constexpr std::size_t kHashBufferBytes = 1u << 20;
// The config blob is the archive's manifest.json, which the archive format bounds.
constexpr std::uint64_t kMaxConfigBytes = manifest::kMaxManifestBytes;

// ---- small helpers -----------------------------------------------------------------------------

std::string SafeText(std::string_view s, std::size_t max_chars = 200) {
  return core::TerminalSafe(core::Truncate(s, max_chars));
}

std::string OciDump(const OciJson& j) {
  return j.dump(2, ' ', /*ensure_ascii=*/true, OciJson::error_handler_t::replace) + "\n";
}

int PrintOut(const std::string& out) {
  std::fwrite(out.data(), 1, out.size(), stdout);
  return kExitOk;
}

std::string FdPath(int fd) { return "/proc/self/fd/" + std::to_string(fd); }

std::string DigestOf(std::string_view bytes) {
  return "sha256:" + signing::Sha256Hex(core::AsBytes(bytes));
}

void AddRemoteOptions(CLI::App* sub, RemoteOptions& o) {
  sub->add_flag("--plain-http", o.plain_http,
                "talk HTTP instead of HTTPS to a registry on this machine (127.0.0.0/8, ::1, "
                "localhost)");
  sub->add_flag("--insecure-plain-http", o.insecure_plain_http,
                "talk HTTP to a registry on another machine too: credentials and archives cross "
                "the network unencrypted (for a test registry on a private network only)");
  sub->add_option("--ca-file", o.ca_file,
                  "PEM bundle of the CAs that sign the registry's certificate (default: the "
                  "system's)")
      ->check(NonEmpty("a PEM file, or leave the flag out"));
  sub->add_option("--auth-file", o.auth_file,
                  "registry credentials ({\"auths\": ...} as docker login writes; default: "
                  "$REGISTRY_AUTH_FILE, then the Podman and Docker files; '-' for anonymous)")
      ->check(NonEmpty("an auth file, '-', or leave the flag out"));
}

Result<oci::Reference> ParseRef(const std::string& text, bool need_tag_or_digest) {
  DLSYS_ASSIGN_OR_RETURN(oci::Reference ref, oci::ParseReference(text));
  if (need_tag_or_digest && ref.tag.empty() && ref.digest.empty()) {
    return Fail(Code::kUsage,
                "'" + SafeText(text) + "' names no tag or digest: add :TAG or @sha256:DIGEST",
                {"dlsys deploy tags oci://" + SafeText(ref.host) + "/" + SafeText(ref.repository) +
                 " lists the tags"});
  }
  return ref;
}

Result<std::unique_ptr<oci::Client>> Connect(
    const oci::Reference& ref, const RemoteOptions& remote,
    std::function<void(std::uint64_t, std::uint64_t)> progress = {}) {
  oci::ClientOptions options;
  options.plain_http = remote.plain_http || remote.insecure_plain_http;
  options.plain_http_anywhere = remote.insecure_plain_http;
  options.ca_file = remote.ca_file;
  options.auth_file = remote.auth_file;
  options.progress = std::move(progress);
  return oci::Client::Create(ref, std::move(options));
}

// The manifest.json and signature.json of an archive (its first entries) and its compression.
struct ArchiveHead {
  std::string manifest_json;
  std::optional<std::string> signature_json;
  archive::Compression compression = archive::Compression::kNone;
};

Result<ArchiveHead> ReadArchiveHead(const std::string& path, const std::string& display) {
  DLSYS_ASSIGN_OR_RETURN(core::UniqueFd fd, core::OpenRegularFile(path));
  DLSYS_ASSIGN_OR_RETURN(archive::Reader reader, archive::Reader::Open(fd.get(), display));
  ArchiveHead head;
  head.compression = reader.compression();
  DLSYS_ASSIGN_OR_RETURN(auto first, reader.Next());
  if (!first || first->path != manifest::kManifestPath) {
    return Fail(Code::kInvalid, "'" + SafeText(display) + "' does not start with manifest.json");
  }
  DLSYS_ASSIGN_OR_RETURN(head.manifest_json, reader.ReadAll(manifest::kMaxManifestBytes));
  DLSYS_ASSIGN_OR_RETURN(auto second, reader.Next());
  if (second && second->path == manifest::kSignaturePath) {
    DLSYS_ASSIGN_OR_RETURN(head.signature_json, reader.ReadAll(signing::kMaxEnvelopeBytes));
  }
  return head;
}

Result<std::string> HashFd(int fd, std::uint64_t size, const std::string& display) {
  signing::Sha256Hasher hasher;
  std::vector<std::byte> buf(kHashBufferBytes);
  for (std::uint64_t offset = 0; offset < size;) {
    const std::size_t n =
        static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), size - offset));
    DLSYS_TRY(core::ReadAt(fd, offset, std::span(buf.data(), n), display));
    hasher.Update(std::span<const std::byte>(buf.data(), n));
    offset += n;
  }
  return "sha256:" + hasher.FinishHex();
}

// A verify report that failed, as an error whose details are its failed rows.
Error ReportFailure(const package::VerifyReport& r, const std::string& what) {
  Error e{r.container_broken ? Code::kInvalid : Code::kVerifyFailed, what, {}};
  for (const auto& c : r.checks) {
    if (c.status == Status::kFail) e.details.push_back(c.check + ": " + c.message);
  }
  return e;
}

// A manifest fetched from a registry, parsed as a dlsys artifact, with its config blob.
struct RemoteArtifact {
  oci::Client::Fetched fetched;
  oci::ArtifactManifest manifest;
  std::string config;  // the archive's manifest.json, digest-checked by FetchBlob
};

Result<RemoteArtifact> FetchArtifact(oci::Client& client, const oci::Reference& ref) {
  RemoteArtifact a;
  const std::string& tag_or_digest = ref.digest.empty() ? ref.tag : ref.digest;
  DLSYS_ASSIGN_OR_RETURN(a.fetched, client.FetchManifest(ref.repository, tag_or_digest));
  auto parsed = oci::ParseManifest(a.fetched.bytes);
  if (!parsed) {
    return tl::unexpected(
        std::move(parsed.error())
            .Wrap("'" + SafeText(ref.ToString()) + "' is not a dlsys archive as dlsys pushes it"));
  }
  a.manifest = std::move(*parsed);
  DLSYS_ASSIGN_OR_RETURN(a.config, client.FetchBlob(ref.repository, a.manifest.config.digest,
                                                    a.manifest.config.size, kMaxConfigBytes));
  return a;
}

std::optional<std::string> SignatureAnnotation(const oci::ArtifactManifest& m) {
  auto it = m.annotations.find(std::string(oci::kSignatureAnnotation));
  if (it == m.annotations.end()) return std::nullopt;
  return it->second;
}

// ---- push --------------------------------------------------------------------------------------

// A SemVer version as a tag: '+' (build metadata) is not allowed in tags, so it becomes '_'
// (what Helm does for charts in OCI registries).
std::string TagForVersion(std::string version) {
  std::replace(version.begin(), version.end(), '+', '_');
  return version;
}

// ---- where blobs were seen (cross-repository mounts) ------------------------------------------

Result<std::string> CacheDir() {
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  if (xdg && *xdg == '/') return std::string(xdg) + "/dlsys/oci";
  const char* home = std::getenv("HOME");
  if (home && *home == '/') return std::string(home) + "/.cache/dlsys/oci";
  return Fail(Code::kUsage, "no cache directory for oci:// archives: set XDG_CACHE_HOME or HOME");
}

// Where this machine last pushed or pulled each blob, per registry host, so that a push to
// another repository of the same registry can ask it to mount the blob instead of sending it
// again (docs/oci.md). A hint only: an unreadable, malformed or stale entry costs at most one
// refused mount (the registry then opens an ordinary upload). At most kMaxLocations entries.
constexpr std::size_t kMaxLocations = 10000;

std::string LocationsPath() {
  auto dir = CacheDir();
  return dir ? *dir + "/locations.json" : "";
}

nlohmann::json ReadLocations(const std::string& path) {
  if (path.empty()) return nlohmann::json::object();
  auto text = core::ReadFile(path, 4u << 20);
  if (!text) return nlohmann::json::object();
  auto j = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  return j.is_object() ? j : nlohmann::json::object();
}

// A repository of `host` that held `digest`, other than `except`; "" when none is known.
std::string KnownRepository(const std::string& host, const std::string& digest,
                            const std::string& except) {
  const nlohmann::json j = ReadLocations(LocationsPath());
  const auto h = j.find(host);
  if (h == j.end() || !h->is_object()) return "";
  const auto d = h->find(digest);
  if (d == h->end() || !d->is_string()) return "";
  const std::string repo = d->get<std::string>();
  // Re-validated like any reference before it goes into a URL.
  auto ref = oci::ParseReference("oci://" + host + "/" + repo);
  return ref && ref->repository == repo && repo != except ? repo : "";
}

void RememberBlob(const std::string& host, const std::string& digest, const std::string& repo) {
  const std::string path = LocationsPath();
  if (path.empty()) return;
  nlohmann::json j = ReadLocations(path);
  std::size_t n = 0;
  for (const auto& [h, entries] : j.items()) n += entries.is_object() ? entries.size() : 1;
  if (n >= kMaxLocations) j = nlohmann::json::object();  // start over rather than grow
  j[host][digest] = repo;
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  if (!ec) (void)core::WriteFileAtomic(path, j.dump(), /*overwrite=*/true, 0600);
}

struct PushCounts {
  std::uint64_t uploaded_bytes = 0;
  int uploaded = 0;
  int skipped = 0;
  void Add(bool sent, std::uint64_t size) {
    sent ? ++uploaded : ++skipped;
    if (sent) uploaded_bytes += size;
  }
};

int Push(const PushOptions& o) {
  auto fail = [&o](Error e) { return ReportError(e, o.json); };
  auto ref = oci::ParseReference(o.reference);
  if (!ref) return fail(ref.error());
  if (!ref->digest.empty()) {
    return fail(Error{Code::kUsage,
                      "push needs a tag, not a digest: the registry computes the "
                      "digest (give oci://HOST/REPO[:TAG])",
                      {}});
  }
  auto verify = package::TrustOptions(o.trust, o.allow_unsigned, "deploy push stores", "store");
  if (!verify) return fail(verify.error());
  // One open file: what is verified, hashed and uploaded is this inode.
  auto fd = core::OpenRegularFile(o.archive);
  if (!fd) return fail(fd.error());
  struct stat st {};
  if (::fstat(fd->get(), &st) != 0) {
    return fail(Error{Code::kInvalid, "cannot stat '" + o.archive + "'", {}});
  }
  const auto size = static_cast<std::uint64_t>(st.st_size);
  const std::string path = FdPath(fd->get());
  auto head = ReadArchiveHead(path, o.archive);
  if (!head) return fail(head.error());
  auto man = manifest::Parse(head->manifest_json);
  if (!man) return fail(std::move(man.error()).Wrap("cannot push '" + o.archive + "'"));

  // Hash the file while Verify reads it (both from the page cache after the first pass).
  Result<std::string> digest = Fail(Code::kInternal, "not hashed");
  std::thread hasher([&] { digest = HashFd(fd->get(), size, o.archive); });
  Result<package::VerifyReport> report = Fail(Code::kInternal, "not verified");
  {
    ProgressLine progress("verifying " + o.archive);
    package::VerifyOptions v = std::move(*verify);
    v.progress = [&progress](const package::Progress& p) {
      progress.Update(p.phase, p.done_bytes, p.total_bytes);
    };
    report = package::Verify(path, v);
  }
  hasher.join();
  if (!report) return fail(report.error());
  if (!report->ok) {
    return fail(ReportFailure(*report, "cannot push '" + o.archive + "': it does not verify"));
  }
  if (!digest) return fail(digest.error());

  const std::string tag = ref->tag.empty() ? TagForVersion(man->version) : ref->tag;
  auto tagged = oci::ParseReference("oci://" + ref->host + "/" + ref->repository + ":" + tag);
  if (!tagged) return fail(tagged.error());
  auto built = oci::BuildManifest(head->manifest_json, head->signature_json, *digest, size,
                                  archive::CompressionName(head->compression));
  if (!built) return fail(built.error());

  ProgressLine progress("pushing " + o.archive);
  auto client = Connect(*tagged, o.remote, [&progress](std::uint64_t done, std::uint64_t total) {
    progress.Update("uploading", done, total);
  });
  if (!client) return fail(client.error());
  PushCounts counts;
  const std::string config_digest = DigestOf(head->manifest_json);
  auto config_sent = (*client)->PushBlob(ref->repository, head->manifest_json, config_digest);
  if (!config_sent) return fail(config_sent.error());
  counts.Add(*config_sent, head->manifest_json.size());
  const std::string mount_from = KnownRepository(ref->host, *digest, ref->repository);
  auto layer_sent = (*client)->PushBlob(ref->repository, fd->get(), size, *digest, mount_from);
  if (!layer_sent) return fail(layer_sent.error());
  counts.Add(*layer_sent, size);
  RememberBlob(ref->host, *digest, ref->repository);
  auto manifest_digest = (*client)->PushManifest(ref->repository, tag, *built);
  if (!manifest_digest) return fail(manifest_digest.error());
  if (*manifest_digest != DigestOf(*built)) {
    return fail(Error{Code::kVerifyFailed,
                      "the registry stored the manifest under " + SafeText(*manifest_digest) +
                          ", but its SHA-256 is " + DigestOf(*built),
                      {}});
  }
  log::Info("oci.push", "pushed " + o.archive + " to " + tagged->ToString())
      .Str("archive", o.archive)
      .Str("reference", tagged->ToString())
      .Str("manifest_digest", *manifest_digest)
      .Int("uploaded_bytes", static_cast<std::int64_t>(counts.uploaded_bytes))
      .Int("requests", static_cast<std::int64_t>((*client)->request_count()))
      .Emit();
  if (o.json) {
    return PrintOut(OciDump({{"reference", tagged->ToString()},
                             {"name", man->name},
                             {"version", man->version},
                             {"tag", tag},
                             {"manifest_digest", *manifest_digest},
                             {"config_digest", config_digest},
                             {"layer_digest", *digest},
                             {"layer_bytes", size},
                             {"uploaded_bytes", counts.uploaded_bytes},
                             {"blobs_uploaded", counts.uploaded},
                             {"blobs_skipped", counts.skipped}}));
  }
  return PrintOut("pushed " + SafeText(man->name) + " " + SafeText(man->version) + " to " +
                  SafeText(tagged->ToString()) + " " + *manifest_digest + "\n");
}

// ---- pull --------------------------------------------------------------------------------------

struct PullOptions {
  std::string reference;
  std::string output;
  bool force = false;
  std::vector<std::string> trust;
  bool allow_unsigned = false;
  std::string registry;  // pull's own --registry (deploy's wins when this is empty)
  bool json = false;
  RemoteOptions remote;
};

// Streams the layer into `file`, digest-checked by the client as it arrives.
Result<void> DownloadLayer(oci::Client& client, const oci::Reference& ref,
                           const oci::Descriptor& layer, core::AtomicFile& file) {
  DLSYS_TRY(client.PullBlob(ref.repository, layer.digest, layer.size,
                            [&file](std::string_view bytes) { return file.Write(bytes); }));
  RememberBlob(ref.host, layer.digest, ref.repository);
  return {};
}

// The downloaded archive's head must be the config blob the manifest names: otherwise a
// registry could show one manifest to inspect and ship another archive.
Result<void> CheckConfigIsHead(const std::string& path, const oci::Reference& ref,
                               const std::string& config) {
  DLSYS_ASSIGN_OR_RETURN(ArchiveHead head, ReadArchiveHead(path, ref.ToString()));
  if (head.manifest_json != config) {
    return Fail(Code::kVerifyFailed, "the archive in '" + SafeText(ref.ToString()) +
                                         "' holds a manifest.json other than its config blob (" +
                                         DigestOf(head.manifest_json) + " instead of " +
                                         DigestOf(config) + ")");
  }
  return {};
}

int RunPull(const PullOptions& o, const std::string& deploy_registry) {
  auto fail = [&o](Error e) { return ReportError(e, o.json); };
  auto ref = ParseRef(o.reference, true);
  if (!ref) return fail(ref.error());
  auto verify = package::TrustOptions(o.trust, o.allow_unsigned, "deploy pull accepts", "pull");
  if (!verify) return fail(verify.error());
  ProgressLine progress("pulling " + ref->ToString());
  auto client = Connect(*ref, o.remote, [&progress](std::uint64_t done, std::uint64_t total) {
    progress.Update("downloading", done, total);
  });
  if (!client) return fail(client.error());
  auto artifact = FetchArtifact(**client, *ref);
  if (!artifact) return fail(artifact.error());
  auto man = manifest::Parse(artifact->config);
  if (!man) return fail(std::move(man.error()).Wrap("cannot pull '" + ref->ToString() + "'"));
  // name and version passed manifest::Parse ([a-z0-9._-] and SemVer): a safe file name.
  const std::string out = o.output.empty() ? man->name + "-" + man->version + ".dlsys" : o.output;
  auto file = core::AtomicFile::Create(out, o.force);
  if (!file) return fail(file.error());
  if (auto got = DownloadLayer(**client, *ref, artifact->manifest.layer, *file); !got) {
    return fail(std::move(got.error()).Wrap("cannot pull '" + ref->ToString() + "'"));
  }
  const std::string temp = FdPath(file->fd());
  if (auto same = CheckConfigIsHead(temp, *ref, artifact->config); !same) {
    return fail(same.error());
  }
  auto report = package::Verify(temp, *verify);
  if (!report) return fail(report.error());
  if (!report->ok) {
    return fail(ReportFailure(*report, "cannot pull '" + ref->ToString() +
                                           "': the archive does not verify; nothing was written"));
  }
  if (auto committed = file->Commit(); !committed) return fail(committed.error());
  const std::string registry_dir = o.registry.empty() ? deploy_registry : o.registry;
  std::optional<deploy::PushResult> stored;
  if (!registry_dir.empty()) {
    auto registry = deploy::Registry::Open(registry_dir, /*create=*/true);
    if (!registry) return fail(registry.error());
    auto pushed = registry->Push(out, *verify, "pulled from " + ref->ToString());
    if (!pushed) return fail(pushed.error());
    stored = std::move(*pushed);
  }
  log::Info("oci.pull", "pulled " + ref->ToString() + " to " + out)
      .Str("reference", ref->ToString())
      .Str("archive", out)
      .Str("manifest_digest", artifact->fetched.digest)
      .Int("requests", static_cast<std::int64_t>((*client)->request_count()))
      .Emit();
  if (o.json) {
    OciJson j = {{"reference", ref->ToString()},
                 {"manifest_digest", artifact->fetched.digest},
                 {"archive", out},
                 {"name", man->name},
                 {"version", man->version},
                 {"layer_digest", artifact->manifest.layer.digest},
                 {"archive_bytes", artifact->manifest.layer.size},
                 {"key_id", report->key_id},
                 {"registry", registry_dir.empty() ? OciJson(nullptr) : OciJson(registry_dir)},
                 {"stored", stored ? stored->stored : false}};
    return PrintOut(OciDump(j));
  }
  std::string text = "pulled " + SafeText(man->name) + " " + SafeText(man->version) + " from " +
                     SafeText(ref->ToString()) + " " + SafeText(artifact->fetched.digest) + " to " +
                     SafeText(out) + " (" +
                     (report->key_id.empty() ? std::string("unsigned")
                                             : "signed by " + SafeText(report->key_id, 12)) +
                     ")\n";
  if (stored) {
    text += (stored->stored ? "stored in " : "already stored in ") + SafeText(registry_dir) + "\n";
  }
  return PrintOut(text);
}

// ---- tags --------------------------------------------------------------------------------------

struct TagsOptions {
  std::string reference;
  bool json = false;
  RemoteOptions remote;
};

int RunTags(const TagsOptions& o) {
  auto fail = [&o](Error e) { return ReportError(e, o.json); };
  auto ref = oci::ParseReference(o.reference);
  if (!ref) return fail(ref.error());
  if (!ref->tag.empty() || !ref->digest.empty()) {
    return fail(Error{Code::kUsage,
                      "deploy tags takes a repository: oci://HOST/REPO, without "
                      ":TAG or @DIGEST",
                      {}});
  }
  auto client = Connect(*ref, o.remote);
  if (!client) return fail(client.error());
  auto tags = (*client)->ListTags(ref->repository);
  if (!tags) return fail(tags.error());
  std::sort(tags->begin(), tags->end(), [](const std::string& a, const std::string& b) {
    const int c = core::CompareSemver(a, b);
    return c != 0 ? c < 0 : a < b;
  });
  if (o.json) return PrintOut(OciDump({{"repository", ref->ToString()}, {"tags", *tags}}));
  std::string text;
  for (const auto& t : *tags) text += SafeText(t) + "\n";
  return PrintOut(text);
}

// ---- verify ------------------------------------------------------------------------------------

void AddRow(package::VerifyReport& r, std::string check, std::string subject, Status status,
            std::string message, std::string expected = "", std::string found = "") {
  if (status == Status::kFail) r.ok = false;
  r.checks.push_back(Check{std::move(check), std::move(subject), status, std::move(message),
                           std::move(expected), std::move(found)});
}

// The signature row, as a local verify writes it, for the envelope the annotation carries.
// Returns false when the envelope is not a canonical one (the artifact is broken: exit 4).
bool SignatureRow(package::VerifyReport& r, const std::string& config,
                  const std::optional<std::string>& envelope_json,
                  const package::VerifyOptions& v) {
  package::SignatureCheck c = package::CheckSignature(
      config, envelope_json, v, "annotation " + std::string(oci::kSignatureAnnotation));
  if (c.broken) r.container_broken = true;
  if (!c.key_id.empty()) r.key_id = c.key_id;
  AddRow(r, c.row.check, c.row.subject, c.row.status, c.row.message, c.row.expected, c.row.found);
  return !c.broken;
}

// Rows for the OCI manifest and the config; false when the artifact is broken (exit 4).
bool MetadataRows(package::VerifyReport& r, const RemoteArtifact& a, bool with_signature,
                  const package::VerifyOptions& v) {
  AddRow(r, "archive", "oci manifest", Status::kPass,
         "OCI manifest " + a.fetched.digest + ": a dlsys artifact, layer " +
             a.manifest.layer.digest + " (" + core::HumanBytes(a.manifest.layer.size) + ")");
  auto man = manifest::Parse(a.config);
  if (!man) {
    r.container_broken = true;
    AddRow(r, "manifest", "manifest.json", Status::kFail, man.error().message);
    return false;
  }
  r.name = man->name;
  r.version = man->version;
  AddRow(r, "manifest", "manifest.json", Status::kPass,
         "schema v" + std::to_string(man->format_version) + ": " + man->name + " " + man->version +
             ", " + std::to_string(man->files.size()) + " files (config blob " +
             a.manifest.config.digest + ")");
  const auto signature = SignatureAnnotation(a.manifest);
  if (with_signature && !SignatureRow(r, a.config, signature, v)) return false;
  // The manifest must be exactly what BuildManifest writes for this config and signature:
  // then every annotation (title, version, created, source, revision) agrees with the manifest.
  auto rebuilt =
      oci::BuildManifest(a.config, signature, a.manifest.layer.digest, a.manifest.layer.size,
                         oci::LayerCompression(a.manifest.layer).value_or(""));
  if (!rebuilt || *rebuilt != a.fetched.bytes) {
    AddRow(r, "archive", "oci annotations", Status::kFail,
           "the OCI manifest's annotations do not agree with its manifest.json (title, version, "
           "created, source, revision): it was edited after the push",
           rebuilt ? DigestOf(*rebuilt) : "", a.fetched.digest);
  } else {
    AddRow(r, "archive", "oci annotations", Status::kPass,
           "annotations agree with manifest.json (" +
               a.manifest.annotations.at("org.opencontainers.image.title") + ")");
  }
  return true;
}

// An unnamed temporary file for --full: gone when closed, whatever happens.
Result<core::UniqueFd> AnonymousTempFile() {
  const char* tmp = std::getenv("TMPDIR");
  const std::string dir = tmp && *tmp ? tmp : "/tmp";
  int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0) {
    std::string templ = dir + "/dlsys-oci-XXXXXX";
    fd = ::mkostemp(templ.data(), O_CLOEXEC);
    if (fd < 0) {
      return Fail(Code::kInternal,
                  "cannot create a temporary file in '" + dir + "': " + core::ErrnoMessage(errno));
    }
    ::unlink(templ.c_str());
  }
  return core::UniqueFd(fd);
}

Result<package::VerifyReport> VerifyRemote(const std::string& reference,
                                           const package::VerifyOptions& options, bool full,
                                           const RemoteOptions& remote) {
  DLSYS_ASSIGN_OR_RETURN(oci::Reference ref, ParseRef(reference, true));
  if (!full && (options.target || options.smoke)) {
    return Fail(Code::kUsage, "--target and --smoke need the model: add --full to verify '" +
                                  SafeText(reference) + "' (it downloads the archive)");
  }
  ProgressLine progress("downloading " + ref.ToString());
  DLSYS_ASSIGN_OR_RETURN(auto client,
                         Connect(ref, remote, [&progress](std::uint64_t done, std::uint64_t total) {
                           progress.Update("downloading", done, total);
                         }));
  package::VerifyReport r;
  r.archive_path = ref.ToString();
  auto artifact = FetchArtifact(*client, ref);
  if (!artifact) {
    // A manifest that is not the dlsys layout is a broken artifact (a report row, exit 4);
    // not found, not authorized, unavailable stay errors.
    if (artifact.error().code != Code::kInvalid) return tl::unexpected(artifact.error());
    r.container_broken = true;
    AddRow(r, "archive", "oci manifest", Status::kFail, artifact.error().message);
    return r;
  }
  if (!MetadataRows(r, *artifact, /*with_signature=*/!full, options) || !full) return r;

  DLSYS_ASSIGN_OR_RETURN(core::UniqueFd fd, AnonymousTempFile());
  std::uint64_t written = 0;
  DLSYS_TRY(client->PullBlob(
      ref.repository, artifact->manifest.layer.digest, artifact->manifest.layer.size,
      [&](std::string_view bytes) -> Result<void> {
        const char* p = bytes.data();
        for (std::size_t left = bytes.size(); left > 0;) {
          const ssize_t n = ::pwrite(fd.get(), p, left, static_cast<off_t>(written));
          if (n < 0 && errno == EINTR) continue;
          if (n <= 0) {
            return Fail(Code::kInternal,
                        "cannot write a temporary file: " + core::ErrnoMessage(errno));
          }
          p += n;
          left -= static_cast<std::size_t>(n);
          written += static_cast<std::uint64_t>(n);
        }
        return {};
      }));
  const std::string path = FdPath(fd.get());
  if (auto same = CheckConfigIsHead(path, ref, artifact->config); !same) {
    AddRow(r, "manifest", "oci config", Status::kFail, same.error().message);
  } else {
    AddRow(r, "manifest", "oci config", Status::kPass,
           "the layer's manifest.json is the config blob");
  }
  package::VerifyOptions v = options;
  v.progress = [&progress](const package::Progress& p) {
    progress.Update(p.phase, p.done_bytes, p.total_bytes);
  };
  DLSYS_ASSIGN_OR_RETURN(package::VerifyReport local, package::Verify(path, v));
  for (auto& c : local.checks) r.checks.push_back(std::move(c));
  r.ok = r.ok && local.ok;
  r.container_broken = local.container_broken;
  r.key_id = local.key_id;
  return r;
}

// ---- inspect -----------------------------------------------------------------------------------

Result<package::InspectResult> InspectRemote(const std::string& reference,
                                             const RemoteOptions& remote) {
  DLSYS_ASSIGN_OR_RETURN(oci::Reference ref, ParseRef(reference, true));
  DLSYS_ASSIGN_OR_RETURN(auto client, Connect(ref, remote));
  DLSYS_ASSIGN_OR_RETURN(RemoteArtifact a, FetchArtifact(*client, ref));
  package::InspectResult r;
  auto man = manifest::Parse(a.config);
  if (!man) return tl::unexpected(std::move(man.error()).Wrap("'" + SafeText(reference) + "'"));
  r.manifest = std::move(*man);
  r.manifest_json = a.config;
  r.archive_bytes = a.manifest.layer.size;
  DLSYS_ASSIGN_OR_RETURN(r.compression, archive::ParseCompression(
                                            oci::LayerCompression(a.manifest.layer).value_or("")));
  if (const auto signature = SignatureAnnotation(a.manifest)) {
    auto env = signing::ParseEnvelope(*signature);
    if (!env) return tl::unexpected(std::move(env.error()).Wrap("'" + SafeText(reference) + "'"));
    r.is_signed = true;
    for (const auto& s : env->signatures) r.signer_key_ids.push_back(s.keyid);
  }
  log::Info("oci.inspect", "read the manifest and config of " + ref.ToString())
      .Str("reference", ref.ToString())
      .Str("manifest_digest", a.fetched.digest)
      .Int("requests", static_cast<std::int64_t>(client->request_count()))
      .Emit();
  return r;
}

// ---- serve -------------------------------------------------------------------------------------


Result<std::string> PullToCache(const std::string& reference, const RemoteOptions& remote) {
  DLSYS_ASSIGN_OR_RETURN(oci::Reference ref, ParseRef(reference, true));
  DLSYS_ASSIGN_OR_RETURN(std::string dir, CacheDir());
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return Fail(Code::kInternal,
                "cannot create the cache directory '" + dir + "': " + ec.message());
  }
  ProgressLine progress("pulling " + ref.ToString());
  DLSYS_ASSIGN_OR_RETURN(auto client,
                         Connect(ref, remote, [&progress](std::uint64_t done, std::uint64_t total) {
                           progress.Update("downloading", done, total);
                         }));
  DLSYS_ASSIGN_OR_RETURN(RemoteArtifact a, FetchArtifact(*client, ref));
  // Named by the layer digest (64 hex digits: checked by ParseManifest), so a tag that moves
  // gets a new file and one that does not reuses it.
  const std::string path = dir + "/sha256-" + a.manifest.layer.digest.substr(7) + ".dlsys";
  auto file = core::AtomicFile::Create(path, /*overwrite=*/false);
  if (!file && file.error().code == Code::kExists) return path;  // cached earlier
  if (!file) return tl::unexpected(file.error());
  DLSYS_TRY(DownloadLayer(*client, ref, a.manifest.layer, *file));
  DLSYS_TRY(CheckConfigIsHead(FdPath(file->fd()), ref, a.config));
  if (auto committed = file->Commit(); !committed && committed.error().code != Code::kExists) {
    return tl::unexpected(committed.error());
  }
  log::Info("oci.cache", "pulled " + ref.ToString() + " into " + path)
      .Str("reference", ref.ToString())
      .Str("archive", path)
      .Emit();
  return path;
}

// ---- registration ------------------------------------------------------------------------------

void RegisterPull(CLI::App& deploy, std::function<std::string()> registry_dir, RunFn& run) {
  auto o = std::make_shared<PullOptions>();
  auto* sub = deploy.add_subcommand("pull", "Download an archive from an OCI registry, verified");
  sub->fallthrough();  // deploy's --registry and the logging flags may follow the name
  sub->footer(
      "Streams the archive layer into a temporary file next to FILE, checking its digest as it\n"
      "arrives, checks that its manifest.json is the config blob the registry showed, verifies\n"
      "it (canonical form, every digest, a signature by a --trust'ed key) and only then gives\n"
      "it its name. With --registry DIR it is also stored there as 'deploy push' would.\n"
      "Exit codes: 0 pulled, 2 usage (FILE exists without --force, no --trust), 3 reference not\n"
      "found, 4 not a dlsys archive or unsafe, 5 a digest or the signature does not verify,\n"
      "6 registry unavailable or access refused (docs/oci.md).\n\n"
      "Examples:\n"
      "  dlsys deploy pull oci://registry.example.com/team/iris:1.0.0 --trust release.key.pub\n"
      "  dlsys deploy pull oci://127.0.0.1:5000/iris@sha256:3f2a... -o iris.dlsys --plain-http "
      "--trust keys/\n"
      "  dlsys deploy --registry /srv/dlsys pull oci://registry.example.com/team/iris:1.0.0 "
      "--trust keys/");
  sub->add_option("reference", o->reference, "oci://HOST[:PORT]/REPO:TAG or ...@sha256:DIGEST")
      ->required();
  sub->add_option("-o,--output", o->output,
                  "where to write the archive (default: ./NAME-VERSION.dlsys)")
      ->check(NonEmpty("a file name, or leave the flag out"));
  sub->add_flag("--force", o->force, "replace FILE if it exists");
  AddTrustOptions(sub, o->trust, o->allow_unsigned, "",
                  "accept archives that are unsigned or not signed by a trusted key "
                  "(development)");
  AddRemoteOptions(sub, o->remote);
  sub->add_flag("--json", o->json, "print the result as JSON, also on failure");
  sub->callback(
      [o, registry_dir, &run] { run = [o, registry_dir] { return RunPull(*o, registry_dir()); }; });
}

void RegisterTags(CLI::App& deploy, RunFn& run) {
  auto o = std::make_shared<TagsOptions>();
  auto* sub = deploy.add_subcommand("tags", "List the tags of a repository in an OCI registry");
  sub->fallthrough();
  sub->footer(
      "Tags in SemVer order, one per line. Exit codes: 0, 2 usage, 3 repository not found,\n"
      "6 registry unavailable or access refused.\n\n"
      "Examples:\n"
      "  dlsys deploy tags oci://registry.example.com/team/iris\n"
      "  dlsys deploy tags oci://127.0.0.1:5000/iris --plain-http --json");
  sub->add_option("repository", o->reference, "oci://HOST[:PORT]/REPO")->required();
  AddRemoteOptions(sub, o->remote);
  sub->add_flag("--json", o->json, "print {\"repository\", \"tags\"} as JSON");
  sub->callback([o, &run] { run = [o] { return RunTags(*o); }; });
}

// ---- the header's entry points -----------------------------------------------------------------

void RegisterDeploy(CLI::App& deploy, std::function<std::string()> registry_dir, RunFn& run) {
  RegisterPull(deploy, std::move(registry_dir), run);
  RegisterTags(deploy, run);
}

Result<std::vector<std::string>> ResolveArchives(const std::vector<std::string>& archives,
                                                 const RemoteOptions& remote) {
  std::vector<std::string> out;
  for (const auto& a : archives) {
    if (!oci::IsOciReference(a)) {
      out.push_back(a);
      continue;
    }
    DLSYS_ASSIGN_OR_RETURN(std::string path, PullToCache(a, remote));
    out.push_back(std::move(path));
  }
  return out;
}

}  // namespace dlsys::cli::oci_cmd
