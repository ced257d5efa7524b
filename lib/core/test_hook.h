// A seam for tests that must act at an exact point inside a running command (send a signal
// before an output is committed, swap a file between two reads).
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

}  // namespace dlsys::core
