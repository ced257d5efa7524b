// The deployment registry (`dlsys deploy`): a directory holding verified archives, stored
// content-addressed and immutable, the routing state of every environment, and an append-only
// audit history (docs/deploy.md).
//
//   DIR/registry.json     the committed state (schemas/deploy-registry.schema.json): every
//                         stored version, every environment's routes, the history length
//   DIR/history.jsonl     the audit log, one JSON object per line
//                         (schemas/deploy-history.schema.json)
//   DIR/blobs/sha256/HEX  the archives, byte for byte, named by the SHA-256 of the file, 0444
//   DIR/lock              taken with flock(2) by every change: concurrent changes serialize
//
// Crash safety. A change (under the lock) appends its history line (write + fsync), then
// replaces registry.json (temp + fsync + rename + fsync of the directory): the rename is the
// commit point. registry.json records how many bytes of history.jsonl are committed, so a line
// written by a change that died before its rename is cut off by the next change and never read;
// a blob written by a push that died before its rename is unreferenced and swept by the next
// push. Readers need no lock: they read registry.json once (a rename is atomic), then at most
// the committed bytes of the history.
//
// Everything read from the directory is hostile: registry.json and history lines are parsed
// strictly (unknown keys, wrong types, names that are not valid, sizes over bounds are
// kInvalid naming the file), and serve verifies every archive it loads from a blob.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "package/package.h"

namespace dlsys::deploy {

// --registry, else $DLSYS_REGISTRY (non-empty), else $XDG_DATA_HOME/dlsys/registry, else
// $HOME/.local/share/dlsys/registry. kUsage if none of them can be formed.
[[nodiscard]] Result<std::string> DefaultRegistryDir();

// One stored archive.
struct VersionRecord {
  std::string name;
  std::string version;
  std::string digest;  // "sha256:" + 64 lower-case hex digits of the archive file
  std::uint64_t size = 0;
  std::string compression;  // "none", "gzip", "zstd"
  std::string signer;       // key id of the trusted signer at push; "" if pushed unsigned
  std::string created;      // the manifest's "created" (RFC 3339)
  std::string pushed_at;    // RFC 3339 UTC, seconds
  std::string pushed_by;    // "user@host"
};

enum class Strategy { kReplace, kCanary, kAb, kShadow, kBlueGreen };
const char* StrategyName(Strategy s);  // "replace", "canary", "ab", "shadow", "blue-green"
[[nodiscard]] Result<Strategy> ParseStrategy(std::string_view text);  // kUsage listing them

// How one model's requests are routed in one environment.
//   replace:    stable takes all traffic.
//   canary:     `weight` percent of requests (chosen at random per request) go to candidate.
//   ab:         `weight` percent of the values of request header `key` go to candidate; the
//               same value always goes to the same arm (requests without the header: stable).
//   shadow:     stable answers every request; a `sample` fraction is also run on candidate,
//               whose answer is only logged (with its difference to stable's).
//   blue-green: stable (the new version) takes all traffic; standby (the old one) stays loaded
//               and warm for an instant rollback until `deploy finalize`.
struct Route {
  Strategy strategy = Strategy::kReplace;
  std::string stable;     // always set
  std::string candidate;  // canary, ab, shadow
  std::string standby;    // blue-green
  double weight = 0;      // canary, ab: percent 0..100
  std::string key;        // ab: header name, lower-case
  double sample = 1;      // shadow: fraction 0 < sample <= 1
  // Earlier stable versions, oldest first (at most kMaxPrevious): rollback's targets.
  std::vector<std::string> previous;
};
inline constexpr std::size_t kMaxPrevious = 20;

// The versions a route needs loaded: stable, then candidate or standby if set.
std::vector<std::string> LoadedVersions(const Route& r);

struct Environment {
  std::map<std::string, Route> models;  // by model name
};

struct State {
  std::uint64_t generation = 0;  // +1 per committed change
  // name -> version -> record
  std::map<std::string, std::map<std::string, VersionRecord>> versions;
  std::map<std::string, Environment> environments;  // by environment name
  std::uint64_t history_entries = 0;                // committed lines of history.jsonl
  std::uint64_t history_bytes = 0;                  // committed bytes of history.jsonl
};

// One line of the audit history.
struct HistoryEntry {
  std::uint64_t seq = 0;  // 1, 2, ...
  std::string time;       // RFC 3339 UTC, microseconds
  std::string user;
  std::string host;
  std::string action;  // push, remove, promote, finalize, rollback
  std::string model;
  std::string version;  // the version pushed, removed or promoted; after rollback: the new stable
  std::string env;      // "" for push and remove
  std::string strategy;  // promote, finalize, rollback: the route's strategy after the change
  std::optional<Route> from;  // promote, finalize, rollback: the route before ("" = none)
  std::optional<Route> to;    // ... and after
  std::string reason;         // --reason, "" if none
  std::string digest;         // push, remove: the archive's digest
  // SHA-256 (64 lower-case hex digits) of the previous line's bytes (without its newline);
  // 64 zeros on the first line. Set by the registry when it appends the line; History()
  // checks the chain, so an edited or deleted line is detected.
  std::string prev;
};

// Bounds on what the registry stores and reads (kUsage when a change would exceed them,
// kInvalid when a file does).
inline constexpr std::size_t kMaxStateBytes = std::size_t{64} << 20;       // registry.json
inline constexpr std::size_t kMaxHistoryLineBytes = std::size_t{64} << 10;  // without newline
inline constexpr std::size_t kMaxReasonBytes = 1024;  // UTF-8, no control characters
inline constexpr std::size_t kMaxVersionsPerModel = 10000;
inline constexpr std::size_t kMaxEnvironments = 1000;

// Environment names: 1-63 characters of [a-z0-9-], starting and ending with a letter or digit
// (a DNS label, so they can name Kubernetes objects). kUsage saying so otherwise.
[[nodiscard]] Result<void> CheckEnvironmentName(std::string_view env);

struct PushResult {
  VersionRecord record;
  bool stored = false;  // false: the same bytes were already stored (a no-op)
};

struct PromoteRequest {
  std::string model;
  std::string version;
  std::string env;
  Strategy strategy = Strategy::kReplace;
  std::optional<double> weight;  // canary, ab: percent
  std::optional<double> step;    // canary: raise the current candidate's weight by this much
  std::string key;               // ab: header name (stored lower-case)
  std::optional<double> sample;  // shadow
  std::string reason;
};

class Registry {
 public:
  // Opens the registry at `dir`. With create, makes the directory (0755, parents too) and its
  // layout if missing; without, kNotFound naming the directory and `--registry`/DLSYS_REGISTRY.
  [[nodiscard]] static Result<Registry> Open(const std::string& dir, bool create);

  const std::string& dir() const { return dir_; }
  std::string StatePath() const;                         // DIR/registry.json
  std::string BlobPath(std::string_view digest) const;  // DIR/blobs/sha256/HEX

  // The committed state, read once without the lock (an empty State if nothing was committed).
  [[nodiscard]] Result<State> Read() const;
  // The committed history (oldest first), optionally only one model's / one environment's.
  [[nodiscard]] Result<std::vector<HistoryEntry>> History(std::string_view model = {},
                                                          std::string_view env = {}) const;

  // Copies the archive into the registry (hashing as it copies), verifies the copy with
  // `verify` (kVerifyFailed with the failing checks as details; kInvalid for a broken
  // container), then stores it under its digest and records name/version. Pushing a version
  // already stored with the same digest is a no-op (stored = false, no history line); with a
  // different digest kExists naming both digests.
  [[nodiscard]] Result<PushResult> Push(const std::string& archive_path,
                                        const package::VerifyOptions& verify,
                                        const std::string& reason = "",
                                        const package::ProgressFn& progress = nullptr);

  // Removes a stored version: kNotFound if not stored; kUsage naming the environments if any
  // environment routes to it (stable, candidate, standby) or keeps it as a rollback target
  // (unless force: then it is dropped from those rollback lists). The blob is deleted after
  // the commit.
  [[nodiscard]] Result<VersionRecord> Remove(const std::string& model, const std::string& version,
                                             bool force, const std::string& reason = "");

  // Changes a route (see Route). kNotFound for a version not stored; kUsage for a request that
  // does not fit the current route, naming what to do (e.g. a canary while another candidate
  // is rolling out: finalize or roll back first; canary/ab/shadow with nothing stable yet;
  // --step for a version that is not the current canary; weights outside 0..100).
  [[nodiscard]] Result<Route> Promote(const PromoteRequest& request);
  // Ends a rollout: canary/ab/shadow -> the candidate becomes stable (replace); blue-green ->
  // the standby is released. kUsage if there is nothing to finalize.
  [[nodiscard]] Result<Route> Finalize(const std::string& model, const std::string& env,
                                       const std::string& reason = "");
  // One step back: during a rollout (candidate set) the candidate is dropped; otherwise the
  // newest `previous` version becomes stable again (blue-green: the standby). kUsage if there
  // is nothing to roll back to.
  [[nodiscard]] Result<Route> Rollback(const std::string& model, const std::string& env,
                                       const std::string& reason = "");

 private:
  explicit Registry(std::string dir) : dir_(std::move(dir)) {}
  std::string dir_;
};

// Strict readers of the two files (also used by tests and fuzzers). kInvalid naming `display`.
[[nodiscard]] Result<State> ParseState(std::string_view json, const std::string& display);
[[nodiscard]] Result<HistoryEntry> ParseHistoryLine(std::string_view line,
                                                    const std::string& display);
// The canonical JSON of a state (what registry.json holds) and of a history line (no newline).
std::string SerializeState(const State& state);
std::string SerializeHistoryEntry(const HistoryEntry& entry);

}  // namespace dlsys::deploy
