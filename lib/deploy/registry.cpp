#include "deploy/registry.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <memory>
#include <set>
#include <span>
#include <thread>
#include <utility>

#include "core/encoding.h"
#include "deploy/internal/format.h"
#include "core/file.h"
#include "core/internal/json.h"
#include "core/test_hook.h"
#include "core/text.h"
#include "core/utf8.h"
#include "manifest/internal/json_read.h"
#include "manifest/manifest.h"
#include "signing/digest.h"

namespace dlsys::deploy {
namespace {

using namespace internal;  // NOLINT: the validators and SHA-256 shared with registry_format.cpp

using Json = nlohmann::json;
using manifest::internal::Find;
using manifest::internal::Join;
using manifest::internal::Reader;

constexpr const char* kStateName = "registry.json";
constexpr const char* kHistoryName = "history.jsonl";
constexpr const char* kLockName = "lock";
constexpr const char* kBlobSubdir = "blobs/sha256";
constexpr std::string_view kTempBlobPrefix = ".tmp-";
constexpr std::size_t kCopyChunkBytes = std::size_t{1} << 20;

// ---- Files and the lock ------------------------------------------------------------------

std::string ErrnoText() { return core::ErrnoMessage(errno); }

Result<void> SyncDir(const std::string& dir) {
  core::UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd || ::fsync(fd.get()) != 0) {
    return Fail(Code::kInternal, "cannot flush directory '" + dir + "': " + ErrnoText());
  }
  return {};
}

Result<void> MakeDirs(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Fail(Code::kInternal, "cannot create '" + dir + "': " + ec.message());
  return {};
}

// An exclusive flock(2) on DIR/lock, released when this is destroyed (or the process dies).
class DirLock {
 public:
  static Result<DirLock> Acquire(const std::string& dir) {
    const std::string path = dir + "/" + kLockName;
    // O_NONBLOCK|O_NOFOLLOW: a FIFO or symbolic link planted at the path neither blocks nor
    // redirects the open.
    core::UniqueFd fd(
        ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0644));
    if (!fd) return Fail(Code::kInternal, "cannot open the lock '" + path + "': " + ErrnoText());
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
      return Fail(Code::kInvalid, "the lock '" + path + "' is not a regular file");
    }
    // Waiting is right: another deploy command holds the lock for one short change.
    while (::flock(fd.get(), LOCK_EX) != 0) {
      if (errno != EINTR) {
        return Fail(Code::kInternal, "cannot lock '" + path + "': " + ErrnoText());
      }
    }
    return DirLock(std::move(fd));
  }

 private:
  explicit DirLock(core::UniqueFd fd) : fd_(std::move(fd)) {}
  core::UniqueFd fd_;
};

// The temporary copy of an archive being pushed: DIR/blobs/sha256/.tmp-XXXXXX, flock'ed by
// its owner for its whole life (so a sweep never removes a live push's copy) and unlinked on
// destruction unless it was renamed to its blob name.
class TempBlob {
 public:
  static Result<TempBlob> Create(const std::string& blob_dir) {
    std::string path = blob_dir + "/" + std::string(kTempBlobPrefix) + "XXXXXX";
    const int fd = ::mkostemp(path.data(), O_CLOEXEC);
    if (fd < 0) {
      return Fail(Code::kInternal, "cannot create a file in '" + blob_dir + "': " + ErrnoText());
    }
    TempBlob t(core::UniqueFd(fd), std::move(path));
    if (::flock(t.fd_.get(), LOCK_EX) != 0) {
      return Fail(Code::kInternal, "cannot lock '" + t.path_ + "': " + ErrnoText());
    }
    return t;
  }
  TempBlob(TempBlob&& o) noexcept : fd_(std::move(o.fd_)), path_(std::exchange(o.path_, "")) {}
  TempBlob& operator=(TempBlob&&) = delete;
  ~TempBlob() {
    if (!path_.empty()) ::unlink(path_.c_str());
  }
  int fd() const { return fd_.get(); }
  const std::string& path() const { return path_; }
  // Renames the file to `target` and forgets it.
  [[nodiscard]] Result<void> RenameTo(const std::string& target) {
    if (::rename(path_.c_str(), target.c_str()) != 0) {
      return Fail(Code::kInternal, "cannot store '" + target + "': " + ErrnoText());
    }
    path_.clear();
    return {};
  }

 private:
  TempBlob(core::UniqueFd fd, std::string path) : fd_(std::move(fd)), path_(std::move(path)) {}
  core::UniqueFd fd_;
  std::string path_;
};

std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> names;
  std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir.c_str()), ::closedir);
  if (!d) return names;
  while (const dirent* e = ::readdir(d.get())) {
    const std::string_view name(e->d_name);
    if (name != "." && name != "..") names.emplace_back(name);
  }
  return names;
}

// A temporary blob is made and flock'ed under the registry lock (Push) and keeps its flock
// until its owner ends, so under the lock a copy whose flock can be taken is a dead push's.
bool IsDeadTemp(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
  core::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  // A live push holds its copy's flock: only a dead one's can be taken.
  return fd && ::flock(fd.get(), LOCK_EX | LOCK_NB) == 0;
}

// Under the lock: removes what a change that died left behind. Only changes make these files
// and they hold the lock, so any found now is dead, except a temporary blob being copied and
// verified by a live push outside the lock (kept: its owner holds its flock).
void SweepJunk(const std::string& dir, const State& state) {
  const std::string state_temp_prefix = std::string(".") + kStateName + ".";
  for (const auto& name : ListDir(dir)) {
    if (name.starts_with(state_temp_prefix)) ::unlink((dir + "/" + name).c_str());
  }
  std::set<std::string> referenced;
  for (const auto& [model, versions] : state.versions) {
    for (const auto& [version, record] : versions) {
      referenced.insert(record.digest.substr(kDigestPrefix.size()));
    }
  }
  const std::string blob_dir = dir + "/" + kBlobSubdir;
  for (const auto& name : ListDir(blob_dir)) {
    const std::string path = blob_dir + "/" + name;
    if (name.starts_with(kTempBlobPrefix)) {
      if (IsDeadTemp(path)) ::unlink(path.c_str());
    } else if (IsLowerHex(name, 64) && !referenced.contains(name)) {
      ::unlink(path.c_str());  // stored by a push that died before its commit, or removed
    }
  }
}

struct Principal {
  std::string user;
  std::string host;
};

Principal CurrentPrincipal() {
  Principal p;
  if (const passwd* pw = ::getpwuid(::geteuid()); pw != nullptr && pw->pw_name != nullptr) {
    p.user = pw->pw_name;
  }
  if (!IsPrincipal(p.user, kMaxUserBytes)) p.user = std::to_string(::geteuid());
  char host[HOST_NAME_MAX + 1] = {};
  if (::gethostname(host, sizeof(host) - 1) == 0) p.host = host;
  if (!IsPrincipal(p.host, kMaxHostBytes)) p.host = "localhost";
  return p;
}

std::string RouteWhere(std::string_view model, std::string_view env) {
  return "model " + Q(model) + " in environment " + Q(env);
}

// ---- Route transitions (pure) ------------------------------------------------------------

void PushPrevious(Route& r, const std::string& version) {
  r.previous.push_back(version);
  if (r.previous.size() > kMaxPrevious) {
    r.previous.erase(r.previous.begin(), r.previous.end() - kMaxPrevious);
  }
}

Route Settled(std::string stable, std::vector<std::string> previous) {
  Route out;
  out.strategy = Strategy::kReplace;
  out.stable = std::move(stable);
  out.previous = std::move(previous);
  return out;
}

tl::unexpected<Error> InFlight(const Route& r, const std::string& where) {
  if (!r.standby.empty()) {
    return Fail(Code::kUsage, where + " keeps " + Q(r.standby) +
                                  " on standby (blue-green): run dlsys deploy finalize to "
                                  "release it or dlsys deploy rollback to return to it first");
  }
  return Fail(Code::kUsage, where + " is rolling out " + Q(r.candidate) + " (" +
                                StrategyName(r.strategy) +
                                "): run dlsys deploy finalize to make it stable or dlsys deploy "
                                "rollback to drop it first");
}

Result<void> CheckPromoteFlags(const PromoteRequest& q) {
  auto bad = [](const char* flag, const char* applies) {
    return Fail(Code::kUsage, std::string(flag) + " applies to " + applies + " only");
  };
  const Strategy s = q.strategy;
  if (q.weight && s != Strategy::kCanary && s != Strategy::kAb) {
    return bad("--weight", "--strategy canary and ab");
  }
  if (q.step && s != Strategy::kCanary) return bad("--step", "--strategy canary");
  if (!q.key.empty() && s != Strategy::kAb) return bad("--key", "--strategy ab");
  if (q.sample && s != Strategy::kShadow) return bad("--sample", "--strategy shadow");
  if (q.weight && !(std::isfinite(*q.weight) && *q.weight > 0 && *q.weight <= 100)) {
    return Fail(Code::kUsage, "--weight must be a percentage greater than 0 and at most 100");
  }
  if (q.step && !(std::isfinite(*q.step) && *q.step > 0 && *q.step <= 100)) {
    return Fail(Code::kUsage, "--step must be a percentage greater than 0 and at most 100");
  }
  if (q.sample && !(std::isfinite(*q.sample) && *q.sample > 0 && *q.sample <= 1)) {
    return Fail(Code::kUsage, "--sample must be a fraction greater than 0 and at most 1");
  }
  if (s == Strategy::kCanary && q.weight.has_value() == q.step.has_value()) {
    return Fail(Code::kUsage,
                "--strategy canary needs either --weight PERCENT (start or set the canary) or "
                "--step PERCENT (raise the current canary's weight)");
  }
  if (s == Strategy::kAb && (!q.weight || q.key.empty())) {
    return Fail(Code::kUsage,
                "--strategy ab needs --key HEADER (the request header whose value picks the "
                "arm) and --weight PERCENT");
  }
  if (!q.key.empty() && !IsHeaderToken(q.key)) {
    return Fail(Code::kUsage, "--key " + Q(q.key) + " is not an HTTP header name");
  }
  return {};
}

Result<Route> PromotedRoute(const std::optional<Route>& current, const PromoteRequest& q) {
  const std::string where = RouteWhere(q.model, q.env);
  const std::string& v = q.version;
  if (!current) {
    if (q.strategy == Strategy::kReplace || q.strategy == Strategy::kBlueGreen) {
      return Settled(v, {});
    }
    return Fail(Code::kUsage, where + " has nothing to compare with: promote a first version "
                                      "with --strategy replace");
  }
  Route r = *current;
  const bool in_flight = !r.candidate.empty() || !r.standby.empty();
  if (r.stable == v) {
    return Fail(Code::kUsage, "version " + Q(v) + " is already stable for " + where);
  }
  // Re-promoting the candidate under its own strategy adjusts its parameters.
  const bool same_rollout = r.strategy == q.strategy && r.candidate == v;
  switch (q.strategy) {
    case Strategy::kReplace:
      if (in_flight) return InFlight(r, where);
      PushPrevious(r, r.stable);
      return Settled(v, r.previous);
    case Strategy::kBlueGreen: {
      if (in_flight) return InFlight(r, where);
      Route out = Settled(v, r.previous);
      PushPrevious(out, r.stable);
      out.strategy = Strategy::kBlueGreen;
      out.standby = r.stable;
      return out;
    }
    case Strategy::kCanary:
      if (q.step) {
        if (!same_rollout) {
          return Fail(Code::kUsage, "--step raises the weight of the current canary, and " +
                                        Q(v) + " is not the canary of " + where +
                                        (r.candidate.empty() ? std::string(" (none)")
                                                             : " (it is " + Q(r.candidate) + ")") +
                                        ": start one with --weight");
        }
        r.weight = std::min(100.0, r.weight + *q.step);
        return r;
      }
      if (in_flight && !same_rollout) return InFlight(r, where);
      r.strategy = Strategy::kCanary;
      r.candidate = v;
      r.weight = *q.weight;
      return r;
    case Strategy::kAb:
      if (in_flight && !same_rollout) return InFlight(r, where);
      r.strategy = Strategy::kAb;
      r.candidate = v;
      r.weight = *q.weight;
      r.key = Lower(q.key);
      return r;
    case Strategy::kShadow:
      if (in_flight && !same_rollout) return InFlight(r, where);
      r.strategy = Strategy::kShadow;
      r.candidate = v;
      r.sample = q.sample.value_or(1.0);
      return r;
  }
  return Fail(Code::kInternal, "unknown strategy");
}

Result<Route> FinalizedRoute(const Route& r, const std::string& where) {
  switch (r.strategy) {
    case Strategy::kCanary:
    case Strategy::kAb:
    case Strategy::kShadow: {
      Route out = Settled(r.candidate, r.previous);
      PushPrevious(out, r.stable);
      return out;
    }
    case Strategy::kBlueGreen:
      return Settled(r.stable, r.previous);
    case Strategy::kReplace:
      break;
  }
  return Fail(Code::kUsage, "nothing to finalize: " + where + " has no rollout in flight (" +
                                Q(r.stable) + " takes all traffic)");
}

Result<Route> RolledBackRoute(const Route& r, const std::string& where) {
  if (!r.candidate.empty()) return Settled(r.stable, r.previous);
  if (r.previous.empty()) {
    return Fail(Code::kUsage, "nothing to roll back to: " + where + " has only " + Q(r.stable) +
                                  " and no earlier stable version");
  }
  // Blue-green: the standby is the newest previous version, so both cases pop it.
  std::vector<std::string> previous = r.previous;
  std::string target = previous.back();
  previous.pop_back();
  return Settled(std::move(target), std::move(previous));
}

}  // namespace

// ---- Registry ----------------------------------------------------------------------------

namespace {

// One change in progress: the lock, the committed state it starts from, and the history
// file cut back to that state's committed bytes.
struct Change {
  DirLock lock;
  State state;
  core::UniqueFd history;
  std::string last_line_hash;  // of the last committed line, or 64 zeros
};

std::string HistoryPath(const std::string& dir) { return dir + "/" + kHistoryName; }

// The hash of the last committed line, read from the tail (a line is at most
// kMaxHistoryLineBytes, so the tail window holds it and the newline before it).
Result<std::string> LastLineHash(int fd, std::uint64_t committed, const std::string& display) {
  if (committed == 0) return kZeroHash;
  const std::uint64_t window = std::min<std::uint64_t>(committed, kMaxHistoryLineBytes + 2);
  std::string tail(window, '\0');
  DLSYS_TRY(core::ReadAt(fd, committed - window, std::as_writable_bytes(std::span(tail)), display));
  if (tail.back() != '\n') {
    return Fail(Code::kInvalid, display + ": the committed history does not end with a newline");
  }
  const auto start = tail.rfind('\n', tail.size() - 2);
  if (start == std::string::npos && window < committed) {
    return Fail(Code::kInvalid, display + ": the last committed line is longer than " +
                                    std::to_string(kMaxHistoryLineBytes) + " bytes");
  }
  const std::size_t from = start == std::string::npos ? 0 : start + 1;
  return signing::Sha256Hex(core::AsBytes(std::string_view(tail).substr(from, tail.size() - 1 - from)));
}

Result<Change> BeginChange(const Registry& reg) {
  DLSYS_ASSIGN_OR_RETURN(DirLock lock, DirLock::Acquire(reg.dir()));
  DLSYS_ASSIGN_OR_RETURN(State state, reg.Read());
  const std::string path = HistoryPath(reg.dir());
  core::UniqueFd fd(::open(path.c_str(),
                           O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK,
                           0644));
  if (!fd) return Fail(Code::kInternal, "cannot open '" + path + "': " + ErrnoText());
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return Fail(Code::kInvalid, "'" + path + "' is not a regular file");
  }
  const auto size = static_cast<std::uint64_t>(st.st_size);
  if (size < state.history_bytes) {
    return Fail(Code::kInvalid, "'" + path + "' has " + std::to_string(size) +
                                    " bytes but registry.json records " +
                                    std::to_string(state.history_bytes) +
                                    " committed bytes: the history was cut");
  }
  // A line past the committed bytes belongs to a change that died before its commit.
  if (size > state.history_bytes) {
    if (::ftruncate(fd.get(), static_cast<off_t>(state.history_bytes)) != 0 ||
        ::fdatasync(fd.get()) != 0) {
      return Fail(Code::kInternal, "cannot cut '" + path + "' back: " + ErrnoText());
    }
  }
  DLSYS_ASSIGN_OR_RETURN(std::string last, LastLineHash(fd.get(), state.history_bytes, path));
  SweepJunk(reg.dir(), state);
  return Change{std::move(lock), std::move(state), std::move(fd), std::move(last)};
}

// Appends the change's history line, then commits `next` as registry.json (the commit point).
Result<void> CommitChange(const Registry& reg, Change& change, HistoryEntry entry, State next) {
  const Principal who = CurrentPrincipal();
  entry.seq = change.state.history_entries + 1;
  entry.time = FormatUtc(std::chrono::system_clock::now(), true);
  entry.user = who.user;
  entry.host = who.host;
  entry.prev = change.last_line_hash;
  const std::string line = SerializeHistoryEntry(entry);
  const std::string history_path = HistoryPath(reg.dir());
  // What is written must read back: never commit a line History() would refuse.
  DLSYS_TRY(ParseHistoryLine(line, history_path + " (new line)"));
  const std::string record = line + "\n";

  // The new state is built and checked before anything is written.
  next.generation = change.state.generation + 1;
  next.history_entries = change.state.history_entries + 1;
  next.history_bytes = change.state.history_bytes + record.size();
  const std::string text = SerializeState(next);
  if (text.size() > kMaxStateBytes) {
    return Fail(Code::kUsage, "registry.json would exceed " + std::to_string(kMaxStateBytes) +
                                  " bytes: remove old versions first");
  }
  DLSYS_TRY(ParseState(text, reg.StatePath() + " (new state)"));

  // One write(2) of the whole line, so the file never holds part of a line of a live change.
  const ssize_t n = ::write(change.history.get(), record.data(), record.size());
  if (n != static_cast<ssize_t>(record.size()) || ::fdatasync(change.history.get()) != 0) {
    const std::string why = n < 0 ? ErrnoText() : "short write";
    [[maybe_unused]] const int ignored =
        ::ftruncate(change.history.get(), static_cast<off_t>(change.state.history_bytes));
    return Fail(Code::kInternal, "cannot append to '" + history_path + "': " + why);
  }
  core::CrashPoint("deploy-history-appended");

  DLSYS_ASSIGN_OR_RETURN(core::AtomicFile file, core::AtomicFile::Create(reg.StatePath(), true));
  DLSYS_TRY(file.Write(text));
  core::CrashPoint("deploy-state-written");
  DLSYS_TRY(file.Commit());
  core::CrashPoint("deploy-committed");
  change.state = std::move(next);
  return {};
}

Result<Route*> FindRoute(State& state, const std::string& model, const std::string& env) {
  const auto e = state.environments.find(env);
  if (e != state.environments.end()) {
    const auto m = e->second.models.find(model);
    if (m != e->second.models.end()) return &m->second;
  }
  return Fail(Code::kNotFound, RouteWhere(model, env) +
                                   " has no route: promote a version there first");
}

// Copies the archive into `temp` (in the kernel with copy_file_range where the file systems
// allow, else read/write); returns the number of bytes copied.
Result<std::uint64_t> CopyInto(const core::UniqueFd& in, const std::string& source,
                               const TempBlob& temp, const package::ProgressFn& progress) {
  struct stat st {};
  const std::uint64_t total =
      ::fstat(in.get(), &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
  std::uint64_t done = 0;
  bool in_kernel = true;
  std::vector<char> buf;
  for (;;) {
    ssize_t n = -1;
    if (in_kernel) {
      n = ::copy_file_range(in.get(), nullptr, temp.fd(), nullptr, kCopyChunkBytes * 8, 0);
      if (n < 0 && done == 0 &&
          (errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP)) {
        in_kernel = false;
        continue;
      }
    } else {
      if (buf.empty()) buf.resize(kCopyChunkBytes);
      n = ::read(in.get(), buf.data(), buf.size());
      for (ssize_t off = 0; n > 0 && off < n;) {
        const ssize_t w = ::write(temp.fd(), buf.data() + off, static_cast<std::size_t>(n - off));
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) {
          return Fail(Code::kInternal, "cannot write '" + temp.path() + "': " + ErrnoText());
        }
        off += w;
      }
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      return Fail(Code::kInvalid, "cannot read '" + source + "': " + ErrnoText());
    }
    if (n == 0) break;
    done += static_cast<std::uint64_t>(n);
    if (progress) progress({"copying", done, std::max(done, total)});
  }
  return done;
}

// The SHA-256 (hex) of the first `size` bytes of the copy, which is then flushed to disk.
Result<std::string> HashAndFlush(const TempBlob& temp, std::uint64_t size) {
  // Start writing the copy back to disk now, so the flush at the end finds most of it done.
  [[maybe_unused]] const int started = ::sync_file_range(temp.fd(), 0, 0, SYNC_FILE_RANGE_WRITE);
  signing::Sha256Hasher hasher;
  std::vector<std::byte> buf(kCopyChunkBytes);
  for (std::uint64_t offset = 0; offset < size;) {
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), size - offset));
    DLSYS_TRY(core::ReadAt(temp.fd(), offset, std::span(buf.data(), n), temp.path()));
    hasher.Update(std::span(buf.data(), n));
    offset += n;
  }
  if (::fdatasync(temp.fd()) != 0) {
    return Fail(Code::kInternal, "cannot flush '" + temp.path() + "': " + ErrnoText());
  }
  return hasher.FinishHex();
}

// The checks ran on the registry's private copy: messages name the user's file instead.
tl::unexpected<Error> VerifyFailure(const std::string& source, const std::string& copy,
                                    const package::VerifyReport& report) {
  auto as_source = [&](std::string text) {
    for (std::size_t at = text.find(copy); at != std::string::npos;
         at = text.find(copy, at + source.size())) {
      text.replace(at, copy.size(), source);
    }
    return text;
  };
  std::vector<std::string> details;
  for (const auto& c : report.checks) {
    if (c.status != Status::kFail) continue;
    details.push_back(as_source(c.check + (c.subject.empty() ? "" : " " + c.subject) + ": " +
                                c.message));
  }
  const std::size_t failed = details.size();
  return Fail(report.container_broken ? Code::kInvalid : Code::kVerifyFailed,
              "cannot push '" + source + "': it does not verify (" + std::to_string(failed) +
                  (failed == 1 ? " failed check" : " failed checks") +
                  "); run 'dlsys verify' on it for the full report",
              std::move(details));
}

}  // namespace

Result<Registry> Registry::Open(const std::string& dir, bool create) {
  if (dir.empty()) return Fail(Code::kUsage, "the registry directory is empty");
  if (create) {
    DLSYS_TRY(MakeDirs(dir + "/" + kBlobSubdir));
  }
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    return Fail(Code::kNotFound, "no registry at '" + dir +
                                     "': push an archive first, or name the registry with "
                                     "--registry DIR or DLSYS_REGISTRY");
  }
  if (!S_ISDIR(st.st_mode)) {
    return Fail(Code::kInvalid, "the registry '" + dir + "' is " + core::FileKindName(st.st_mode) +
                                    ", not a directory");
  }
  return Registry(dir);
}

std::string Registry::StatePath() const { return dir_ + "/" + kStateName; }

std::string Registry::BlobPath(std::string_view digest) const {
  if (digest.starts_with(kDigestPrefix)) digest.remove_prefix(kDigestPrefix.size());
  return dir_ + "/" + kBlobSubdir + "/" + std::string(digest);
}

Result<State> Registry::Read() const {
  auto text = core::ReadFile(StatePath(), kMaxStateBytes);
  if (!text) {
    if (text.error().code == Code::kNotFound) return State{};
    return tl::unexpected(std::move(text).error());
  }
  return ParseState(*text, StatePath());
}

Result<std::vector<HistoryEntry>> Registry::History(std::string_view model,
                                                    std::string_view env) const {
  DLSYS_ASSIGN_OR_RETURN(const State state, Read());
  std::vector<HistoryEntry> out;
  if (state.history_bytes == 0) return out;
  const std::string path = HistoryPath(dir_);
  auto fd = core::OpenRegularFile(path);
  if (!fd) {
    return Fail(Code::kInvalid, "'" + path + "' cannot be read (" + fd.error().message +
                                    ") but registry.json records " +
                                    std::to_string(state.history_entries) + " entries");
  }
  std::string prev_hash = kZeroHash;
  std::uint64_t seq = 0;
  std::string pending;  // the start of a line whose end is in the next chunk
  std::string chunk;
  for (std::uint64_t offset = 0; offset < state.history_bytes;) {
    const std::uint64_t n = std::min<std::uint64_t>(kCopyChunkBytes, state.history_bytes - offset);
    chunk.resize(n);
    DLSYS_TRY(core::ReadAt(fd->get(), offset, std::as_writable_bytes(std::span(chunk)), path));
    offset += n;
    std::size_t start = 0;
    for (std::size_t nl; (nl = chunk.find('\n', start)) != std::string::npos; start = nl + 1) {
      pending.append(chunk, start, nl - start);
      ++seq;
      const std::string display = path + " line " + std::to_string(seq);
      DLSYS_ASSIGN_OR_RETURN(HistoryEntry e, ParseHistoryLine(pending, display));
      if (e.seq != seq) {
        return Fail(Code::kInvalid, display + ": seq is " + std::to_string(e.seq) +
                                        ", expected " + std::to_string(seq) +
                                        " (the history was edited)");
      }
      if (e.prev != prev_hash) {
        return Fail(Code::kInvalid, display + ": the hash chain is broken (prev " + e.prev +
                                        ", the line before hashes to " + prev_hash +
                                        "): the history was edited");
      }
      prev_hash = signing::Sha256Hex(core::AsBytes(pending));
      pending.clear();
      if ((model.empty() || e.model == model) && (env.empty() || e.env == env)) {
        out.push_back(std::move(e));
      }
    }
    pending.append(chunk, start);
    if (pending.size() > kMaxHistoryLineBytes) {
      return Fail(Code::kInvalid, path + " line " + std::to_string(seq + 1) +
                                      ": longer than the limit of " +
                                      std::to_string(kMaxHistoryLineBytes) + " bytes");
    }
  }
  if (!pending.empty() || seq != state.history_entries) {
    return Fail(Code::kInvalid, "'" + path + "' holds " + std::to_string(seq) +
                                    " committed lines but registry.json records " +
                                    std::to_string(state.history_entries));
  }
  return out;
}

Result<PushResult> Registry::Push(const std::string& archive_path,
                                  const package::VerifyOptions& verify, const std::string& reason,
                                  const package::ProgressFn& progress) {
  DLSYS_TRY(CheckReason(reason));
  const std::string blob_dir = dir_ + "/" + kBlobSubdir;
  DLSYS_TRY(MakeDirs(blob_dir));
  // The source is opened once (a FIFO or directory is refused at once) and read once.
  DLSYS_ASSIGN_OR_RETURN(const core::UniqueFd source, core::OpenRegularFile(archive_path));
  // Copy and verify before taking the lock: both take as long as the archive is big, and
  // other changes need not wait for them.
  std::optional<TempBlob> temp_slot;
  {
    // Made and flock'ed under the registry lock, so a sweep (also under it) never finds a
    // live push's copy before its owner has locked it.
    DLSYS_ASSIGN_OR_RETURN(DirLock lock, DirLock::Acquire(dir_));
    DLSYS_ASSIGN_OR_RETURN(TempBlob made, TempBlob::Create(blob_dir));
    temp_slot.emplace(std::move(made));
  }
  TempBlob& temp = *temp_slot;
  std::optional<package::VerifyReport> report_slot;
  DLSYS_ASSIGN_OR_RETURN(const std::uint64_t size, CopyInto(source, archive_path, temp, progress));
  // The copy is what gets stored, so the copy is what is hashed and verified: both at once
  // (verify reads it through its own descriptor; both are served from the page cache).
  Result<std::string> digest = Fail(Code::kInternal, "not hashed");
  {
    std::jthread hasher([&] { digest = HashAndFlush(temp, size); });
    auto verified = package::Verify(temp.path(), verify);
    hasher.join();
    if (!verified) return tl::unexpected(std::move(verified.error()));
    DLSYS_TRY(digest);
    if (!verified->ok) return VerifyFailure(archive_path, temp.path(), *verified);
    report_slot.emplace(std::move(*verified));
  }
  core::CrashPoint("deploy-blob-written");
  const package::VerifyReport& report = *report_slot;
  const std::pair<std::string, std::uint64_t> copied{*digest, size};
  DLSYS_ASSIGN_OR_RETURN(const package::InspectResult head, package::Inspect(temp.path()));

  VersionRecord record;
  record.name = report.name;
  record.version = report.version;
  record.digest = std::string(kDigestPrefix) + copied.first;
  record.size = copied.second;
  record.compression = archive::CompressionName(head.compression);
  record.signer = report.key_id;
  record.created = head.manifest.created;
  record.pushed_at = FormatUtc(std::chrono::system_clock::now(), false);
  const Principal who = CurrentPrincipal();
  record.pushed_by = who.user + "@" + who.host;
  if (!IsModelName(record.name) || !IsVersion(record.version)) {
    return Fail(Code::kInvalid, "cannot push '" + archive_path + "': its manifest has no valid "
                                                                 "name and version");
  }

  DLSYS_ASSIGN_OR_RETURN(Change change, BeginChange(*this));
  const auto model = change.state.versions.find(record.name);
  if (model != change.state.versions.end()) {
    if (const auto it = model->second.find(record.version); it != model->second.end()) {
      if (it->second.digest == record.digest) return PushResult{it->second, false};
      return Fail(Code::kExists,
                  "model " + Q(record.name) + " version " + Q(record.version) +
                      " is already stored with digest " + it->second.digest +
                      "; this archive has digest " + record.digest +
                      ": stored versions never change, so pack this one as a new version");
    }
    if (model->second.size() >= kMaxVersionsPerModel) {
      return Fail(Code::kUsage, "model " + Q(record.name) + " already has " +
                                    std::to_string(kMaxVersionsPerModel) +
                                    " versions: remove old ones first");
    }
  }

  const std::string blob = BlobPath(record.digest);
  if (::fchmod(temp.fd(), 0444) != 0) {
    return Fail(Code::kInternal, "cannot set the mode of '" + temp.path() + "': " + ErrnoText());
  }
  struct stat st {};
  if (::lstat(blob.c_str(), &st) != 0) {
    DLSYS_TRY(temp.RenameTo(blob));
  }  // else the same bytes are already there: the temporary copy is dropped
  DLSYS_TRY(SyncDir(blob_dir));
  core::CrashPoint("deploy-blob-stored");

  State next = change.state;
  next.versions[record.name][record.version] = record;
  HistoryEntry entry;
  entry.action = "push";
  entry.model = record.name;
  entry.version = record.version;
  entry.reason = reason;
  entry.digest = record.digest;
  DLSYS_TRY(CommitChange(*this, change, std::move(entry), std::move(next)));
  return PushResult{record, true};
}

Result<VersionRecord> Registry::Remove(const std::string& model, const std::string& version,
                                       bool force, const std::string& reason) {
  DLSYS_TRY(CheckModelArg(model));
  DLSYS_TRY(CheckVersionArg(version));
  DLSYS_TRY(CheckReason(reason));
  DLSYS_ASSIGN_OR_RETURN(Change change, BeginChange(*this));
  State next = change.state;
  const auto by_model = next.versions.find(model);
  if (by_model == next.versions.end() || !by_model->second.contains(version)) {
    return Fail(Code::kNotFound,
                "model " + Q(model) + " version " + Q(version) + " is not in the registry");
  }
  const VersionRecord record = by_model->second.at(version);
  std::string routed, kept;
  for (auto& [env, body] : next.environments) {
    const auto it = body.models.find(model);
    if (it == body.models.end()) continue;
    const auto loaded = LoadedVersions(it->second);
    if (std::find(loaded.begin(), loaded.end(), version) != loaded.end()) {
      routed += (routed.empty() ? "" : ", ") + env;
    } else if (std::find(it->second.previous.begin(), it->second.previous.end(), version) !=
               it->second.previous.end()) {
      kept += (kept.empty() ? "" : ", ") + env;
      std::erase(it->second.previous, version);
    }
  }
  const std::string what = "model " + Q(model) + " version " + Q(version);
  if (!routed.empty()) {
    return Fail(Code::kUsage, "cannot remove " + what + ": environment(s) " + routed +
                                  " route traffic to it; promote another version or roll back "
                                  "there first");
  }
  if (!kept.empty() && !force) {
    return Fail(Code::kUsage, "cannot remove " + what + ": environment(s) " + kept +
                                  " keep it as a rollback target; pass --force to drop it from "
                                  "their rollback lists");
  }
  by_model->second.erase(version);
  if (by_model->second.empty()) next.versions.erase(by_model);
  HistoryEntry entry;
  entry.action = "remove";
  entry.model = model;
  entry.version = version;
  entry.reason = reason;
  entry.digest = record.digest;
  DLSYS_TRY(CommitChange(*this, change, std::move(entry), std::move(next)));
  // After the commit: a crash before this leaves an unreferenced blob the next change sweeps.
  const std::string blob = BlobPath(record.digest);
  if (::unlink(blob.c_str()) != 0 && errno != ENOENT) {
    return Fail(Code::kInternal, "removed " + what + " but cannot delete '" + blob +
                                     "': " + ErrnoText() + " (the next change retries)");
  }
  DLSYS_TRY(SyncDir(dir_ + "/" + kBlobSubdir));
  core::CrashPoint("deploy-blob-unlinked");
  return record;
}

Result<Route> Registry::Promote(const PromoteRequest& request) {
  DLSYS_TRY(CheckModelArg(request.model));
  DLSYS_TRY(CheckVersionArg(request.version));
  DLSYS_TRY(CheckEnvironmentName(request.env));
  DLSYS_TRY(CheckReason(request.reason));
  DLSYS_TRY(CheckPromoteFlags(request));
  DLSYS_ASSIGN_OR_RETURN(Change change, BeginChange(*this));
  const auto stored = change.state.versions.find(request.model);
  if (stored == change.state.versions.end() || !stored->second.contains(request.version)) {
    return Fail(Code::kNotFound, "model " + Q(request.model) + " version " + Q(request.version) +
                                     " is not in the registry: push it first");
  }
  State next = change.state;
  std::optional<Route> current;
  if (auto found = FindRoute(next, request.model, request.env)) current = **found;
  if (!next.environments.contains(request.env) &&
      next.environments.size() >= kMaxEnvironments) {
    return Fail(Code::kUsage, "the registry already has " + std::to_string(kMaxEnvironments) +
                                  " environments");
  }
  DLSYS_ASSIGN_OR_RETURN(Route route, PromotedRoute(current, request));
  next.environments[request.env].models[request.model] = route;
  HistoryEntry entry;
  entry.action = "promote";
  entry.model = request.model;
  entry.version = request.version;
  entry.env = request.env;
  entry.strategy = StrategyName(route.strategy);
  entry.from = current;
  entry.to = route;
  entry.reason = request.reason;
  DLSYS_TRY(CommitChange(*this, change, std::move(entry), std::move(next)));
  return route;
}

namespace {

// Finalize and Rollback: the same change around a different transition.
template <typename Transition>
Result<Route> ChangeRoute(Registry& reg, const char* action, const std::string& model,
                          const std::string& env, const std::string& reason,
                          Transition transition) {
  DLSYS_TRY(CheckModelArg(model));
  DLSYS_TRY(CheckEnvironmentName(env));
  DLSYS_TRY(CheckReason(reason));
  DLSYS_ASSIGN_OR_RETURN(Change change, BeginChange(reg));
  State next = change.state;
  DLSYS_ASSIGN_OR_RETURN(Route * slot, FindRoute(next, model, env));
  const Route before = *slot;
  DLSYS_ASSIGN_OR_RETURN(Route after, transition(before, RouteWhere(model, env)));
  *slot = after;
  HistoryEntry entry;
  entry.action = action;
  entry.model = model;
  entry.version = after.stable;
  entry.env = env;
  entry.strategy = StrategyName(after.strategy);
  entry.from = before;
  entry.to = after;
  entry.reason = reason;
  DLSYS_TRY(CommitChange(reg, change, std::move(entry), std::move(next)));
  return after;
}

}  // namespace

Result<Route> Registry::Finalize(const std::string& model, const std::string& env,
                                 const std::string& reason) {
  return ChangeRoute(*this, "finalize", model, env, reason, FinalizedRoute);
}

Result<Route> Registry::Rollback(const std::string& model, const std::string& env,
                                 const std::string& reason) {
  return ChangeRoute(*this, "rollback", model, env, reason, RolledBackRoute);
}

}  // namespace dlsys::deploy
