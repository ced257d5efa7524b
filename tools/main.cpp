// dlsys: the command table, the one place errors become exit codes.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <vector>

#include "cli.h"
#include "core/file.h"
#include "core/parallel.h"
#include "core/text.h"
#include "log/log.h"
#include "render.h"

namespace {

struct Subcommand {
  const char* name;
  dlsys::cli::RegisterFn register_fn;
};

// One table of subcommands, in the order --help lists them.
constexpr Subcommand kSubcommands[] = {
    {"keygen", dlsys::cli::RegisterKeygen},   {"pack", dlsys::cli::RegisterPack},
    {"inspect", dlsys::cli::RegisterInspect}, {"verify", dlsys::cli::RegisterVerify},
    {"probe", dlsys::cli::RegisterProbe},     {"serve", dlsys::cli::RegisterServe},
    {"deploy", dlsys::cli::RegisterDeploy},   {"monitor", dlsys::cli::RegisterMonitor},
};

// The logging flags every command takes (docs/logging.md), before or after its name.
struct LogFlags {
  int verbosity = 0;   // -v debug, -vv trace
  std::string format;  // "" when not given
  std::string file;
  std::string level;
};

void AddLogFlags(CLI::App& app, LogFlags& flags, bool with_env) {
  auto* group = app.add_option_group("Logging", "structured log records (docs/logging.md)");
  group->add_flag("-v,--verbose", flags.verbosity,
                  "log more: -v from DEBUG, -vv from TRACE (default: WARN and above; INFO for serve)");
  auto* format = group
                     ->add_option("--log-format", flags.format,
                                  "text (default) or json: one JSON object per line "
                                  "(schemas/log-record.schema.json)")
                     ->check(CLI::IsMember({"text", "json"}));
  group->add_option("--log-file", flags.file, "append log records to FILE instead of stderr")
      ->check(dlsys::cli::NonEmpty("the log file to append to, or leave the flag out for stderr"));
  auto* level = group
                    ->add_option("--log-level", flags.level,
                                 "the least severe level logged: trace, debug, info, warn "
                                 "(default; info for serve), error or fatal")
                    ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "fatal"},
                                          CLI::ignore_case));
  if (with_env) {
    format->envname("DLSYS_LOG_FORMAT");
    level->envname("DLSYS_LOG_LEVEL");
  }
}

// Merges the flags given before the command's name with those given after it (which win).
dlsys::log::Options LogOptions(const std::vector<LogFlags>& all, dlsys::log::Level default_level) {
  using dlsys::log::Level;
  dlsys::log::Options options;
  options.level = default_level;
  int verbosity = 0;
  for (const auto& f : all) {
    verbosity += f.verbosity;
    if (!f.format.empty()) options.format = *dlsys::log::ParseFormat(f.format);
    if (!f.file.empty()) options.file = f.file;
    if (!f.level.empty()) options.level = *dlsys::log::ParseLevel(f.level);
  }
  if (verbosity > 0) {
    options.level = std::min(options.level, verbosity == 1 ? Level::kDebug : Level::kTrace);
  }
  return options;
}

int RunCommand(const dlsys::cli::RunFn& run, bool json) {
  using namespace dlsys::cli;
  // The library ignores a bad DLSYS_THREADS; the command line refuses it.
  if (auto threads = dlsys::core::ThreadsFromEnv(); !threads) {
    threads.error().details.push_back("unset DLSYS_THREADS to use all cores");
    return ReportError(threads.error(), json);
  }
  try {
    return run ? run() : kExitUsage;
  } catch (const std::exception& e) {
    return ReportError(
        dlsys::Error{dlsys::Code::kInternal, std::string("internal error: ") + e.what(), {}}, json);
  }
}

}  // namespace

int main(int argc, char** argv) {
  using namespace dlsys::cli;
  const auto start = std::chrono::steady_clock::now();
  dlsys::core::InstallSignalCleanup();

  CLI::App app{
      "dlsys: the life of a deep-learning model after training.\n"
      "Pack a TorchScript model into a signed, reproducible archive; inspect it; verify its\n"
      "integrity, signature and fitness for a target machine.",
      "dlsys"};
  app.set_version_flag("--version", DLSYS_VERSION);
  app.require_subcommand(1);
  app.fallthrough(false);
  // One set of logging flags per command line position: dlsys [flags] COMMAND [flags].
  std::vector<LogFlags> log_flags(std::size(kSubcommands) + 1);
  AddLogFlags(app, log_flags[0], /*with_env=*/true);
  app.footer(
      "Start here:\n"
      "  dlsys keygen --out release.key\n"
      "  dlsys pack model.pt --name mlp --version 1.0.0 --key release.key -o mlp-1.0.0.dlsys\n"
      "  dlsys inspect mlp-1.0.0.dlsys\n"
      "  dlsys verify mlp-1.0.0.dlsys --trust release.key.pub\n"
      "  dlsys verify mlp-1.0.0.dlsys --trust release.key.pub --target local --smoke\n"
      "Run 'dlsys COMMAND --help' for a command's options. Exit codes: docs/exit-codes.md");

  RunFn run;
  for (const auto& sub : kSubcommands) sub.register_fn(app, run);
  for (std::size_t i = 0; i < std::size(kSubcommands); ++i) {
    AddLogFlags(*app.get_subcommand(kSubcommands[i].name), log_flags[i + 1], false);
  }
  // Failures found here have no command to report them: print them the way ReportError does,
  // as JSON on stdout too when the command line asks for --json.
  const bool json = WantsJson(argc, argv);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "dlsys: usage error: %s\nRun 'dlsys --help' or 'dlsys COMMAND --help'.\n",
                 dlsys::core::TerminalSafe(e.what()).c_str());
    if (json) {
      const dlsys::Error error{
          dlsys::Code::kUsage, e.what(), {"Run 'dlsys --help' or 'dlsys COMMAND --help'."}};
      const std::string out = RenderErrorJson(error, kExitUsage);
      std::fwrite(out.data(), 1, out.size(), stdout);
    }
    return kExitUsage;
  }
  // A server logs its requests and lifecycle (INFO); the other commands only their problems.
  const dlsys::log::Options log_options = LogOptions(
      log_flags, app.got_subcommand("serve") ? dlsys::log::Level::kInfo : dlsys::log::Level::kWarn);
  if (auto logging = dlsys::log::Init(log_options); !logging) {
    // A log file that cannot be used is a mistake on the command line.
    logging.error().code = dlsys::Code::kUsage;
    logging.error().details.push_back("leave --log-file out to log to stderr");
    return ReportError(logging.error(), json);
  }
  const auto chosen = app.get_subcommands();
  const std::string command = chosen.empty() ? "" : chosen.front()->get_name();
  dlsys::log::Debug("cli.start", "dlsys " + command)
      .Str("command", command)
      .Str("version", DLSYS_VERSION)
      .Emit();
  const int code = RunCommand(run, json);
  dlsys::log::Info("cli.exit", "dlsys " + command + " exited with " + std::to_string(code))
      .Str("command", command)
      .Int("exit_code", code)
      .Num("duration_ms",
           std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
               .count())
      .Emit();
  dlsys::log::Shutdown();
  return code;
}
