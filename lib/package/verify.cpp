#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <set>

#include "core/encoding.h"
#include "core/file.h"
#include "core/parallel.h"
#include "package/internal/head.h"
#include "package/package.h"
#include "signing/digest.h"

namespace dlsys::package {
namespace {

std::string Short(const std::string& digest) {
  return digest.size() > 16 ? digest.substr(0, 16) + "…" : digest;
}

// One unit of digest work: a whole small file or one shard of a large one.
struct DigestJob {
  const manifest::FileRecord* record;
  std::size_t shard;          // index into record->shards, or 0 for whole-file digests
  std::uint64_t offset;       // offset of the job's bytes within the file
  std::uint64_t length;
};

std::vector<DigestJob> JobsFor(const manifest::FileRecord& f) {
  std::vector<DigestJob> jobs;
  if (f.shard_bytes == 0) {
    jobs.push_back({&f, 0, 0, f.size});
    return jobs;
  }
  for (std::size_t i = 0; i < f.shards.size(); ++i) {
    const std::uint64_t off = i * f.shard_bytes;
    jobs.push_back({&f, i, off, std::min(f.shard_bytes, f.size - off)});
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

class Verifier {
 public:
  Verifier(const std::string& path, const VerifyOptions& o) : path_(path), o_(o) {
    report_.archive_path = path;
  }

  VerifyReport Run() {
    auto head = internal::ReadHead(path_);
    if (!head) {
      Broken(head.error().message);
      return std::move(report_);
    }
    auto m = manifest::Parse(head->manifest_json);
    if (!m) {
      Add("manifest", "manifest.json", Status::kFail, m.error().message);
      return std::move(report_);
    }
    manifest_ = std::move(*m);
    report_.name = manifest_.name;
    report_.version = manifest_.version;
    Add("manifest", "manifest.json", Status::kPass,
        "schema v" + std::to_string(manifest_.format_version) + ": " + manifest_.name + " " +
            manifest_.version + ", " + std::to_string(manifest_.files.size()) + " files");
    CheckSignature(head->manifest_json, head->envelope_json);
    CheckFiles(*head);
    if (o_.target || o_.smoke) CheckFitness();
    return std::move(report_);
  }

 private:
  void Add(std::string check, std::string subject, Status status, std::string message,
           std::string expected = "", std::string found = "") {
    if (status == Status::kFail) report_.ok = false;
    std::lock_guard lock(mu_);
    report_.checks.push_back(Check{std::move(check), std::move(subject), status,
                                   std::move(message), std::move(expected), std::move(found)});
  }

  // The container itself is unreadable or unsafe: reading stops here.
  void Broken(const std::string& message) {
    report_.container_broken = true;
    Add("archive", "", Status::kFail, message);
  }

  // Target compatibility and the smoke test, after integrity.
  void CheckFitness() {
    auto req = hw::ParseRequirements(manifest_.requirements_json, "manifest requirements");
    if (!req) {
      Add("requirements", "requirements", Status::kFail, req.error().message);
      return;
    }
    if (o_.target) {
      for (auto& c : hw::CheckTarget(manifest_, *req, *o_.target)) AddRow(std::move(c));
    }
    if (!o_.smoke) return;
    const bool intact = !report_.container_broken &&
                        std::none_of(report_.checks.begin(), report_.checks.end(), [](const Check& c) {
                          return c.check == "file" && c.status == Status::kFail;
                        });
    if (!intact) {
      Add("smoke", "load", Status::kFail,
          "smoke test not run: the archive failed its integrity checks above");
      return;
    }
    for (auto& c : Smoke(path_, manifest_, *req)) AddRow(std::move(c));
  }

  void AddRow(Check c) {
    if (c.status == Status::kFail) report_.ok = false;
    report_.checks.push_back(std::move(c));
  }

  void CheckSignature(const std::string& manifest_json,
                      const std::optional<std::string>& envelope_json) {
    const Status unsigned_status = o_.allow_unsigned ? Status::kWarn : Status::kFail;
    const std::string allowed = o_.allow_unsigned ? " (allowed by --allow-unsigned)" : "";
    if (!envelope_json) {
      Add("signature", "signature.json", unsigned_status,
          "archive is not signed" +
              (allowed.empty() ? "; sign it with 'dlsys pack --key', or pass --allow-unsigned"
                               : allowed));
      return;
    }
    auto env = signing::ParseEnvelope(*envelope_json);
    if (!env) {
      Add("signature", "signature.json", Status::kFail, env.error().message);
      return;
    }
    if (env->payload_type != manifest::kPayloadType) {
      Add("signature", "signature.json", Status::kFail, "signature envelope has payloadType '" +
              env->payload_type + "', expected '" + std::string(manifest::kPayloadType) + "'",
          std::string(manifest::kPayloadType), env->payload_type);
      return;
    }
    if (env->payload != manifest_json) {
      Add("signature", "signature.json", Status::kFail,
          "the signed payload differs from manifest.json: the manifest was altered after signing",
          signing::Sha256Hex(core::AsBytes(env->payload)),
          signing::Sha256Hex(core::AsBytes(manifest_json)));
      return;
    }
    if (o_.trust.empty()) {
      std::string ids;
      for (const auto& s : env->signatures) ids += (ids.empty() ? "" : ", ") + Short(s.keyid);
      Add("signature", "signature.json", unsigned_status,
          "signed by " + ids + ", but no trusted key was given; pass --trust KEY.pub" + allowed);
      return;
    }
    auto result = signing::CheckEnvelope(*env, o_.trust);
    if (!result.signed_by_trusted) {
      Add("signature", "signature.json", Status::kFail, result.problem);
      return;
    }
    report_.key_id = result.key_id;
    Add("signature", "signature.json", Status::kPass,
        "signed by trusted key " + Short(result.key_id), "", result.key_id);
  }

  void CheckFiles(internal::Head& head) {
    std::set<std::string> seen;
    std::vector<DigestJob> jobs;
    std::vector<std::uint64_t> offsets;  // data offset per job (uncompressed fast path)
    const bool positional = head.reader.compression() == archive::Compression::kNone;
    std::optional<archive::Entry> entry = std::move(head.next);
    while (entry) {
      const auto* record = manifest::FindFile(manifest_, entry->path);
      if (record == nullptr) {
        Add("file", entry->path, Status::kFail,
            entry->path + ": present in the archive but not listed in the manifest");
      } else if (entry->size != record->size) {
        seen.insert(record->path);
        Add("file", entry->path, Status::kFail,
            entry->path + ": archive entry has " + std::to_string(entry->size) +
                " bytes, manifest says " + std::to_string(record->size),
            std::to_string(record->size), std::to_string(entry->size));
      } else {
        seen.insert(record->path);
        if (positional) {
          for (auto& j : JobsFor(*record)) {
            offsets.push_back(head.reader.data_offset() + j.offset);
            jobs.push_back(j);
          }
        } else if (!StreamDigest(head.reader, *record)) {
          return;
        }
      }
      auto next = head.reader.Next();
      if (!next) {
        Broken(next.error().message);
        return;
      }
      entry = std::move(*next);
    }
    for (const auto& f : manifest_.files) {
      if (!seen.count(f.path)) {
        Add("file", f.path, Status::kFail,
            f.path + ": listed in the manifest but missing from the archive");
      }
    }
    if (positional) {
      MappedDigests(jobs, offsets);
    } else {
      Summarise();
    }
  }

  void Compare(const DigestJob& job, const std::string& found) {
    const std::string& want = Expected(job);
    if (found != want) {
      failed_.insert(job.record);
      Add("file", job.record->path, Status::kFail,
          job.record->path + ": sha256" + Where(job) + " is " + Short(found) +
              ", manifest says " + Short(want),
          want, found);
    } else if (job.shard + 1 == std::max<std::size_t>(job.record->shards.size(), 1) &&
               !failed_.count(job.record)) {
      passed_.push_back(job.record);
    }
  }

  // Uncompressed archives: hash every shard straight from a mapping of the archive, on all
  // cores. Shards of one file that all pass yield a single PASS row.
  void MappedDigests(const std::vector<DigestJob>& jobs, const std::vector<std::uint64_t>& offsets) {
    auto mapped = core::MappedFile::Open(path_);
    if (!mapped) {
      Broken(mapped.error().message);
      return;
    }
    const auto bytes = mapped->bytes();
    std::uint64_t total = 0;
    for (const auto& j : jobs) total += j.length;
    std::atomic<std::uint64_t> done{0};
    std::vector<std::string> found(jobs.size());
    core::ParallelFor(jobs.size(), o_.threads, [&](std::size_t i) {
      if (offsets[i] + jobs[i].length > bytes.size()) {
        found[i] = "truncated";
        return;
      }
      found[i] = signing::Sha256Hex(bytes.subspan(offsets[i], jobs[i].length));
      const auto d = done += jobs[i].length;
      if (o_.progress) {
        std::lock_guard lock(mu_);
        o_.progress({"verifying", d, total});
      }
    });
    for (std::size_t i = 0; i < jobs.size(); ++i) {
      if (found[i] == "truncated") {
        Broken("archive is truncated: entry '" + jobs[i].record->path + "' extends past the end "
               "of the file (" + std::to_string(bytes.size()) + " bytes)");
        return;
      }
      Compare(jobs[i], found[i]);
    }
    Summarise();
  }

  // Compressed archives: hash while decompressing, shard by shard.
  bool StreamDigest(archive::Reader& reader, const manifest::FileRecord& f) {
    std::vector<std::byte> buf(1u << 20);
    auto jobs = JobsFor(f);
    for (const auto& job : jobs) {
      signing::Sha256Hasher hasher;
      std::uint64_t left = job.length;
      while (left > 0) {
        auto n = reader.Read(std::span(buf.data(), std::min<std::uint64_t>(buf.size(), left)));
        if (!n) {
          Broken(n.error().message);
          return false;
        }
        if (*n == 0) {
          Broken("archive is truncated in entry '" + f.path + "'");
          return false;
        }
        hasher.Update(std::span(buf.data(), *n));
        left -= *n;
        streamed_ += *n;
        if (o_.progress) o_.progress({"verifying", streamed_, 0});
      }
      Compare(job, hasher.FinishHex());
    }
    return true;
  }

  void Summarise() {
    for (const auto* f : passed_) {
      std::string how = f->shard_bytes ? " (" + std::to_string(f->shards.size()) + " shards)" : "";
      Add("file", f->path, Status::kPass,
          f->path + ": " + core::HumanBytes(f->size) + ", sha256 matches" + how);
    }
    passed_.clear();
  }

  std::string path_;
  const VerifyOptions& o_;
  VerifyReport report_;
  manifest::Manifest manifest_;
  std::vector<const manifest::FileRecord*> passed_;
  std::set<const manifest::FileRecord*> failed_;  // files with at least one bad shard
  std::uint64_t streamed_ = 0;
  std::mutex mu_;
};

}  // namespace

Result<VerifyReport> Verify(const std::string& path, const VerifyOptions& options) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return Fail(Code::kNotFound, "archive '" + path + "' does not exist");
  }
  Verifier v(path, options);
  return v.Run();
}

}  // namespace dlsys::package
