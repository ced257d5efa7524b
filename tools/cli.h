// Shared by the subcommand files: registration, error reporting, exit codes, output helpers.
//
// Adding a subcommand: write tools/cmd_NAME.cpp with an Options struct, a Run(const Options&)
// that calls the library and renders, and a Register function; add it to the table in
// main.cpp; pin its --help and exit codes in tests/cli.
#pragma once

#include <signal.h>

#include <CLI/CLI.hpp>
#include <functional>
#include <string>

#include "core/error.h"

namespace dlsys::cli {

// Set by a subcommand's callback when it is chosen; main runs it after parsing.
using RunFn = std::function<int()>;
using RegisterFn = void (*)(CLI::App& app, RunFn& run);

// Exit codes (docs/exit-codes.md).
enum ExitCode : int {
  kExitOk = 0,
  kExitInternal = 1,
  kExitUsage = 2,
  kExitNotFound = 3,
  kExitInvalid = 4,
  kExitVerifyFailed = 5,
  kExitUnavailable = 6,
  kExitAlert = 7,
  kExitInterrupted = 130,  // SIGINT; other signals give 128 + signal number
};

int ExitCodeFor(Code code);
// Prints "dlsys: error: <message>" and indented detail lines to stderr, every string made
// terminal-safe; with json, also prints RenderErrorJson on stdout so --json output stays
// parseable on failure. Returns the exit code.
int ReportError(const Error& error, bool json = false);
// True if argv asks for JSON output ("--json" before any "--"), for failures found before or
// while the command line is parsed.
bool WantsJson(int argc, const char* const* argv);
// True if stderr is a terminal (progress is shown only then).
bool StderrIsTerminal();
// Blocks SIGINT, SIGTERM and SIGHUP in the calling thread (and the threads it starts later)
// and returns that set, for a command that takes them synchronously (sigwait, sigtimedwait)
// to stop cleanly: serve, monitor --follow.
sigset_t BlockStopSignals();

// CLI11 validators for option values, so a bad value is a usage error (exit 2) naming the
// flag and what to give instead.
// Refuses an explicitly empty value: `hint` says what to give, e.g. "a profile file or 'local'".
CLI::Validator NonEmpty(std::string hint);
// --trust KEY.pub|DIR (repeatable, one value per flag, so an archive may follow it) with
// `trust_help` after the common text, and --allow-unsigned described by `allow_help`.
void AddTrustOptions(CLI::App* sub, std::vector<std::string>& trust, bool& allow_unsigned,
                     const std::string& trust_help, const std::string& allow_help);
// A whole number in [lo, hi]; `hint` explains the range, e.g. "0 means all cores".
CLI::Validator WholeNumberIn(unsigned lo, unsigned hi, std::string hint = "");

// A progress line on stderr, redrawn at most every 100 ms, shown only on a terminal and only
// once work has gone on for 300 ms. Thread-safe.
class ProgressLine {
 public:
  explicit ProgressLine(std::string label);
  ~ProgressLine();
  void Update(const char* phase, std::uint64_t done, std::uint64_t total);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

void RegisterKeygen(CLI::App& app, RunFn& run);
void RegisterPack(CLI::App& app, RunFn& run);
void RegisterInspect(CLI::App& app, RunFn& run);
void RegisterVerify(CLI::App& app, RunFn& run);
void RegisterProbe(CLI::App& app, RunFn& run);
void RegisterServe(CLI::App& app, RunFn& run);
void RegisterDeploy(CLI::App& app, RunFn& run);
void RegisterMonitor(CLI::App& app, RunFn& run);

}  // namespace dlsys::cli
