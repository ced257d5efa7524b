#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <mutex>
#include <set>

#include "core/encoding.h"
#include "core/file.h"
#include "core/parallel.h"
#include "core/test_hook.h"
#include "package/internal/head.h"
#include "package/internal/stream_hasher.h"
#include "package/package.h"
#include "signing/digest.h"

namespace dlsys::package {
namespace {

constexpr std::size_t kReadChunkBytes = 1 << 20;
// Per-file rows of one status listed individually; beyond that one summary row counts the rest,
// so the report (and its text, JSON and JUnit renderings) stays small whatever the archive.
constexpr std::size_t kMaxFileRows = 1000;
// Compressed entries at least this large are hashed on a second thread while the next chunk
// is decompressed; smaller ones are not worth a thread.
constexpr std::uint64_t kPipelineBytes = 4 << 20;

std::string Short(const std::string& digest) {
  return digest.size() > 16 ? digest.substr(0, 16) + "…" : digest;
}

// One unit of digest work: a whole small file or one shard of a large one.
struct DigestJob {
  const manifest::FileRecord* record;
  std::size_t shard;     // index into record->shards, or 0 for whole-file digests
  std::uint64_t offset;  // offset of the job's bytes within the file
  std::uint64_t length;
  std::uint64_t archive_offset;  // where the file's data starts in the archive (uncompressed)
};

std::vector<DigestJob> JobsFor(const manifest::FileRecord& f, std::uint64_t archive_offset) {
  std::vector<DigestJob> jobs;
  if (f.shard_bytes == 0) {
    jobs.push_back({&f, 0, 0, f.size, archive_offset});
    return jobs;
  }
  for (std::size_t i = 0; i < f.shards.size(); ++i) {
    const std::uint64_t off = i * f.shard_bytes;
    jobs.push_back({&f, i, off, std::min(f.shard_bytes, f.size - off), archive_offset});
  }
  return jobs;
}

const std::string& Expected(const DigestJob& j) {
  return j.record->shard_bytes == 0 ? j.record->sha256 : j.record->shards[j.shard];
}

std::string Where(const DigestJob& j) {
  if (j.record->shard_bytes == 0) return "";
  return " in shard " + std::to_string(j.shard) + " (bytes " + std::to_string(j.offset) + "-" +
         std::to_string(j.offset + j.length - 1) + ")";
}

// The files smoke tests and servers load: the model and every example tensor.
std::set<std::string> LoadedPaths(const manifest::Manifest& m) {
  std::set<std::string> paths = {m.entry_file};
  for (const auto& ex : m.examples) {
    for (const auto& t : ex.inputs) paths.insert(t.path);
    for (const auto& t : ex.outputs) paths.insert(t.path);
  }
  return paths;
}

class Verifier {
 public:
  Verifier(const std::string& path, const VerifyOptions& o, bool keep)
      : path_(path), o_(o), keep_(keep) {
    out_.report.archive_path = path;
  }

  VerifiedArchive Run() {
    auto head = internal::ReadHead(path_);
    if (!head) {
      Broken(head.error().message);
      return Take();
    }
    auto m = manifest::Parse(head->manifest_json);
    if (!m) {
      Broken(m.error().message, "manifest", std::string(manifest::kManifestPath));
      return Take();
    }
    out_.manifest = std::move(*m);
    const manifest::Manifest& man = out_.manifest;
    out_.report.name = man.name;
    out_.report.version = man.version;
    auto created = manifest::CreatedEpoch(man);
    if (!created) {
      Broken(created.error().message, "manifest", std::string(manifest::kManifestPath));
      return Take();
    }
    created_ = *created;
    auto req = hw::ParseRequirements(man.requirements_json, "manifest field 'requirements'");
    if (!req) {
      Broken(req.error().message, "manifest", std::string(manifest::kManifestPath));
      return Take();
    }
    out_.requirements = std::move(*req);
    for (const archive::Entry& e : head->head_entries) {
      if (!CheckMtime(e)) return Take();
    }
    Add("manifest", "manifest.json", Status::kPass,
        "schema v" + std::to_string(man.format_version) + ": " + man.name + " " + man.version +
            ", " + std::to_string(man.files.size()) + " files");
    CheckSignature(head->manifest_json, head->envelope_json);
    if (out_.report.container_broken) return Take();
    // Bytes are kept only for an archive the caller may run: never for one whose signature
    // failed, so an untrusted archive cannot make verify hold its (declared) gigabytes.
    if (keep_ && out_.report.ok) wanted_ = LoadedPaths(man);
    CheckFiles(*head);
    return Take();
  }

 private:
  VerifiedArchive Take() {
    SummariseUnlisted();
    if (!out_.report.ok) out_.files.clear();
    return std::move(out_);
  }

  void Add(std::string check, std::string subject, Status status, std::string message,
           std::string expected = "", std::string found = "") {
    std::lock_guard lock(mu_);
    if (status == Status::kFail) out_.report.ok = false;
    if (check == "file" && file_rows_[static_cast<int>(status)]++ >= kMaxFileRows) return;
    out_.report.checks.push_back(Check{std::move(check), std::move(subject), status,
                                       std::move(message), std::move(expected), std::move(found)});
  }

  // One row per status for the per-file rows beyond kMaxFileRows.
  void SummariseUnlisted() {
    for (Status status : {Status::kPass, Status::kFail}) {
      const std::size_t n = file_rows_[static_cast<int>(status)];
      if (n <= kMaxFileRows) continue;
      out_.report.checks.push_back(
          Check{"file", "", status,
                "… and " + std::to_string(n - kMaxFileRows) + " more files " +
                    (status == Status::kPass ? "whose sha256 matches" : "with a failed check") +
                    " (the first " + std::to_string(kMaxFileRows) + " are listed)",
                "", ""});
    }
  }

  // The container or its manifest is not what pack writes: reading stops here (exit code 4).
  void Broken(const std::string& message, std::string check = "archive", std::string subject = "") {
    out_.report.container_broken = true;
    Add(std::move(check), std::move(subject), Status::kFail, message);
  }

  bool CheckMtime(const archive::Entry& e) {
    if (e.mtime == created_) return true;
    Broken("archive '" + path_ + "' is not a canonical dlsys archive: entry '" + e.path +
           "' at offset " + std::to_string(e.header_offset) + ": header field 'mtime' is " +
           std::to_string(e.mtime) + ", expected the manifest's created time " +
           std::to_string(created_) + " (" + out_.manifest.created + ")");
    return false;
  }

  void CheckSignature(const std::string& manifest_json,
                      const std::optional<std::string>& envelope_json) {
    SignatureCheck c = package::CheckSignature(manifest_json, envelope_json, o_, "signature.json");
    if (c.broken) return Broken(c.row.message, "signature", "signature.json");
    if (!c.key_id.empty()) out_.report.key_id = c.key_id;
    Add(std::move(c.row.check), std::move(c.row.subject), c.row.status, std::move(c.row.message),
        std::move(c.row.expected), std::move(c.row.found));
  }

  void Missing(const manifest::FileRecord& f) {
    failed_.insert(&f);
    Add("file", f.path, Status::kFail,
        f.path + ": listed in the manifest but missing from the archive");
  }

  // Walks the payload entries in order against the manifest's sorted file list, then checks
  // every digest. Entries must be strictly sorted (unique); unlisted entries and missing files
  // are failed checks.
  void CheckFiles(internal::Head& head) {
    const auto& files = out_.manifest.files;
    const bool positional = head.reader.compression() == archive::Compression::kNone;
    std::vector<DigestJob> jobs;
    std::vector<const manifest::FileRecord*> missing;
    std::string previous;
    std::size_t i = 0;
    std::optional<archive::Entry> entry = std::move(head.next);
    while (entry) {
      if (!CheckMtime(*entry)) return;
      if (entry->path == manifest::kManifestPath || entry->path == manifest::kSignaturePath ||
          (!previous.empty() && entry->path <= previous)) {
        Broken("archive '" + path_ + "' is not a canonical dlsys archive: entry '" + entry->path +
               "' at offset " + std::to_string(entry->header_offset) +
               " is out of order or repeated; pack writes manifest.json, signature.json, then "
               "the payload sorted by path, each once");
        return;
      }
      previous = entry->path;
      // Reported once the walk is over: if the container breaks later, these would be noise.
      while (i < files.size() && files[i].path < entry->path) missing.push_back(&files[i++]);
      if (i < files.size() && files[i].path == entry->path) {
        const manifest::FileRecord& record = files[i++];
        if (entry->size != record.size) {
          failed_.insert(&record);
          Add("file", entry->path, Status::kFail,
              entry->path + ": archive entry has " + std::to_string(entry->size) +
                  " bytes, manifest says " + std::to_string(record.size),
              std::to_string(record.size), std::to_string(entry->size));
        } else if (positional) {
          for (auto& j : JobsFor(record, entry->data_offset)) jobs.push_back(j);
        } else if (!StreamDigest(head.reader, record)) {
          return;
        }
      } else {
        Add("file", entry->path, Status::kFail,
            entry->path + ": present in the archive but not listed in the manifest");
      }
      auto next = head.reader.Next();
      if (!next) {
        Broken(next.error().message);
        return;
      }
      entry = std::move(*next);
    }
    while (i < files.size()) missing.push_back(&files[i++]);
    for (const auto* f : missing) Missing(*f);
    if (positional) HashAt(head.fd.get(), jobs);
    Summarise();
  }

  void Compare(const DigestJob& job, const std::string& found) {
    const std::string& want = Expected(job);
    if (found != want) {
      {
        std::lock_guard lock(mu_);
        failed_.insert(job.record);
      }
      Add("file", job.record->path, Status::kFail,
          job.record->path + ": sha256" + Where(job) + " is " + Short(found) + ", manifest says " +
              Short(want),
          want, found);
    }
  }

  // The buffer that keeps file `f`'s bytes, sized (resize) or reserved for it; nullptr when
  // the file is not kept, or when memory for it cannot be had (then nothing is kept and a row
  // says why: the smoke test will not run).
  std::string* KeepBuffer(const manifest::FileRecord& f, bool resize) {
    if (!wanted_.count(f.path)) return nullptr;
    try {
      std::string& buf = out_.files[f.path];
      if (resize) {
        buf.resize(static_cast<std::size_t>(f.size));
      } else {
        buf.reserve(static_cast<std::size_t>(f.size));
      }
      return &buf;
    } catch (const std::exception&) {  // std::bad_alloc, std::length_error
      wanted_.clear();
      out_.files.clear();
      Add("smoke", "memory", Status::kFail,
          "cannot hold '" + f.path + "' (" + core::HumanBytes(f.size) +
              ") in memory to run it here");
      return nullptr;
    }
  }

  // Uncompressed archives: hash every shard with positional reads of the one descriptor, on
  // all cores. Kept files are read straight into their buffer and hashed from there.
  void HashAt(int fd, const std::vector<DigestJob>& jobs) {
    std::uint64_t total = 0;
    // Buffers are sized here, on one thread; the workers only write into them.
    std::vector<std::string*> keeps(jobs.size());
    for (std::size_t k = 0; k < jobs.size(); ++k) {
      total += jobs[k].length;
      keeps[k] = k > 0 && jobs[k].record == jobs[k - 1].record
                     ? keeps[k - 1]
                     : KeepBuffer(*jobs[k].record, /*resize=*/true);
    }
    if (wanted_.empty()) std::fill(keeps.begin(), keeps.end(), nullptr);
    std::atomic<std::uint64_t> done{0};
    std::vector<std::string> found(jobs.size());
    std::vector<std::string> errors(jobs.size());
    core::ParallelFor(jobs.size(), o_.threads, [&](std::size_t k) {
      const DigestJob& j = jobs[k];
      signing::Sha256Hasher hasher;
      std::string* keep = keeps[k];
      std::vector<std::byte> scratch(keep ? 0 : std::min<std::uint64_t>(j.length, kReadChunkBytes));
      for (std::uint64_t pos = 0; pos < j.length;) {
        const std::uint64_t n = std::min<std::uint64_t>(j.length - pos, kReadChunkBytes);
        std::span<std::byte> buf =
            keep ? std::as_writable_bytes(std::span(keep->data() + j.offset + pos, n))
                 : std::span(scratch.data(), n);
        if (auto ok = core::ReadAt(fd, j.archive_offset + j.offset + pos, buf, path_); !ok) {
          errors[k] = ok.error().message;
          return;
        }
        hasher.Update(buf);
        pos += n;
        const auto d = done += n;
        if (o_.progress) {
          std::lock_guard lock(mu_);
          o_.progress({"verifying", d, total});
        }
      }
      found[k] = hasher.FinishHex();
    });
    for (std::size_t k = 0; k < jobs.size(); ++k) {
      if (!errors[k].empty()) {
        Broken(errors[k]);
        return;
      }
      Compare(jobs[k], found[k]);
    }
  }

  // Compressed archives: hash while decompressing, shard by shard.
  bool StreamDigest(archive::Reader& reader, const manifest::FileRecord& f) {
    // Reserved up front (its size is signed by a trusted key, or the user allowed unsigned): the
    // hashing thread appends without ever reallocating.
    std::string* keep = KeepBuffer(f, /*resize=*/false);
    const auto jobs = JobsFor(f, 0);
    internal::StreamHasher hasher(keep, f.size >= kPipelineBytes);
    for (const auto& job : jobs) {
      std::uint64_t left = job.length;
      do {  // at least once: an empty file still ends its job
        std::span<std::byte> buf = hasher.Acquire();
        auto n = reader.Read(buf.first(std::min<std::uint64_t>(buf.size(), left)));
        if (!n) {
          hasher.Abandon();
          Broken(n.error().message);
          return false;
        }
        left -= *n;
        hasher.Submit(*n, /*ends_job=*/left == 0);
        streamed_ += *n;
        if (o_.progress) o_.progress({"verifying", streamed_, 0});
      } while (left > 0);
    }
    const std::vector<std::string> digests = hasher.Finish();
    for (std::size_t k = 0; k < jobs.size(); ++k) Compare(jobs[k], digests[k]);
    return true;
  }

  // One PASS row per file whose every digest matched.
  void Summarise() {
    if (out_.report.container_broken) return;
    for (const auto& f : out_.manifest.files) {
      if (failed_.count(&f)) continue;
      std::string how = f.shard_bytes ? " (" + std::to_string(f.shards.size()) + " shards)" : "";
      Add("file", f.path, Status::kPass,
          f.path + ": " + core::HumanBytes(f.size) + ", sha256 matches" + how);
    }
  }

  std::string path_;
  const VerifyOptions& o_;
  bool keep_;
  std::set<std::string> wanted_;
  VerifiedArchive out_;
  std::int64_t created_ = 0;
  std::set<const manifest::FileRecord*> failed_;
  std::size_t file_rows_[3] = {0, 0, 0};  // per Status
  std::uint64_t streamed_ = 0;
  std::mutex mu_;
};

Result<VerifiedArchive> VerifyArchive(const std::string& path, const VerifyOptions& options,
                                      bool keep) {
  if (::access(path.c_str(), F_OK) != 0 && errno == ENOENT) {
    return Fail(Code::kNotFound, "archive '" + path + "' does not exist");
  }
  return Verifier(path, options, keep).Run();
}

void AddRow(VerifyReport& r, Check c) {
  if (c.status == Status::kFail) r.ok = false;
  r.checks.push_back(std::move(c));
}

}  // namespace

Result<VerifyOptions> TrustOptions(const std::vector<std::string>& paths, bool allow_unsigned,
                                   std::string_view who, std::string_view verb) {
  VerifyOptions options;
  options.allow_unsigned = allow_unsigned;
  for (const auto& path : paths) {
    if (auto added = options.trust.Add(path); !added) {
      return tl::unexpected(std::move(added.error()).Wrap("cannot load trusted key '" + path + "'"));
    }
  }
  if (!who.empty() && options.trust.empty() && !allow_unsigned) {
    return Fail(Code::kUsage,
                "no trusted key: " + std::string(who) + " only archives signed by a trusted key",
                {"give the signer's public key with --trust KEY.pub (or a directory of them)",
                 "or --allow-unsigned to " + std::string(verb) +
                     " unsigned archives on a development machine"});
  }
  return options;
}

SignatureCheck CheckSignature(std::string_view manifest_json,
                              const std::optional<std::string>& envelope_json,
                              const VerifyOptions& options, const std::string& subject) {
  SignatureCheck c;
  auto row = [&](Status status, std::string message, std::string expected = "",
                 std::string found = "") {
    c.row = Check{"signature", subject, status, std::move(message), std::move(expected),
                  std::move(found)};
    return c;
  };
  const Status unsigned_status = options.allow_unsigned ? Status::kWarn : Status::kFail;
  const std::string allowed = options.allow_unsigned ? " (allowed by --allow-unsigned)" : "";
  if (!envelope_json) {
    return row(unsigned_status,
               "archive is not signed" +
                   (allowed.empty() ? "; sign it with 'dlsys pack --key', or pass --allow-unsigned"
                                    : allowed));
  }
  auto env = signing::ParseEnvelope(*envelope_json);
  if (!env) {  // not the strict, canonical envelope pack writes: invalid input (exit 4)
    c.broken = true;
    return row(Status::kFail, env.error().message);
  }
  if (env->payload_type != manifest::kPayloadType) {
    return row(Status::kFail,
               "signature envelope has payloadType '" + env->payload_type + "', expected '" +
                   std::string(manifest::kPayloadType) + "'",
               std::string(manifest::kPayloadType), env->payload_type);
  }
  if (env->payload != manifest_json) {
    return row(Status::kFail,
               "the signed payload differs from manifest.json: the manifest was altered after "
               "signing",
               signing::Sha256Hex(core::AsBytes(env->payload)),
               signing::Sha256Hex(core::AsBytes(manifest_json)));
  }
  if (options.trust.empty()) {
    std::string ids;
    for (const auto& s : env->signatures) ids += (ids.empty() ? "" : ", ") + Short(s.keyid);
    return row(unsigned_status, "signed by " + ids +
                                    ", but no trusted key was given; pass --trust KEY.pub" +
                                    allowed);
  }
  auto result = signing::CheckEnvelope(*env, options.trust);
  if (!result.signed_by_trusted) return row(Status::kFail, result.problem);
  c.key_id = result.key_id;
  return row(Status::kPass, "signed by trusted key " + Short(result.key_id), "", result.key_id);
}

Result<VerifiedArchive> LoadVerified(const std::string& path, const VerifyOptions& options) {
  return VerifyArchive(path, options, /*keep=*/true);
}

Result<VerifyReport> Verify(const std::string& path, const VerifyOptions& options) {
  DLSYS_ASSIGN_OR_RETURN(VerifiedArchive archive, VerifyArchive(path, options, options.smoke));
  VerifyReport& report = archive.report;
  if (report.container_broken || (!options.target && !options.smoke)) return std::move(report);
  if (options.target) {
    for (auto& c : hw::CheckTarget(archive.manifest, archive.requirements, *options.target))
      AddRow(report, std::move(c));
  }
  if (!options.smoke) return std::move(report);
  // Bytes are kept only when every check so far passed (VerifiedArchive::files).
  if (archive.files.empty()) {
    AddRow(report, Check{"smoke", "load", Status::kFail,
                         "smoke test not run: the archive failed its integrity or signature checks "
                         "above, and dlsys runs only verified models",
                         "", ""});
    return std::move(report);
  }
  core::TestHook("verify-before-smoke");
  for (auto& c : SmokeIsolated(archive, archive.requirements, options.smoke_timeout_s))
    AddRow(report, std::move(c));
  return std::move(report);
}

}  // namespace dlsys::package
