// Seams for tests that must act at an exact point inside a running command (send a signal
// before an output is committed, swap a file between two reads, kill a change half-way).
#pragma once

namespace dlsys::core {

// If the environment variable DLSYS_TEST_HOOK equals `point`, writes the single line
// "dlsys-test-hook: <point>\n" to stderr with one write(2) and stops the process with
// SIGSTOP; the test reads the line, does its work and sends SIGCONT. A no-op otherwise (the
// variable is read once per process). Thread-safe.
//
// Points: "pack-before-commit" (the archive is complete, not yet under its final name),
// "verify-before-smoke" (the archive was read and verified, the smoke test has not started).
void TestHook(const char* point);

// Crash injection: kills the process with SIGKILL at `name`, writing nothing first, when the
// environment variable DLSYS_TEST_CRASH selects it:
//   "NAME"    the first time NAME is reached;
//   "NAME:N"  the Nth time NAME is reached (N >= 1);
//   "*:N"     the Nth crash point reached, whatever its name ("*" alone = "*:1").
// Anything else (including N = 0 or a malformed N) never fires. The variable is read once per
// process, at the first call (or at ResetCrashPointsForTest). Costs a mutex lock per call;
// thread-safe.
//
// Points (lib/deploy/registry.cpp, docs/deploy.md), each under the registry lock except the
// first:
//   "deploy-blob-written"      push: the temporary copy is complete, hashed, flushed and
//                              verified; not renamed, the registry lock not taken
//   "deploy-blob-stored"       push: the blob is under its digest name, the state not committed
//   "deploy-history-appended"  any change: its history line is written and flushed, the state
//                              not committed
//   "deploy-state-written"     any change: the new registry.json is written and flushed to an
//                              unnamed file, not yet renamed (the commit point)
//   "deploy-committed"         any change: registry.json renamed, the lock still held
//   "deploy-blob-unlinked"     remove: the blob is deleted after the commit
void CrashPoint(const char* name);

// Re-reads DLSYS_TEST_CRASH and restarts the counts, for a test's child process made by fork()
// after it sets the variable.
void ResetCrashPointsForTest();

}  // namespace dlsys::core
