// dlsys: the command table, the one place errors become exit codes.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <exception>

#include "cli.h"
#include "core/file.h"
#include "core/parallel.h"
#include "core/text.h"
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
    {"probe", dlsys::cli::RegisterProbe},
};

}  // namespace

int main(int argc, char** argv) {
  using namespace dlsys::cli;
  dlsys::core::InstallSignalCleanup();
  auto logger = spdlog::stderr_color_st("dlsys");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::warn);

  CLI::App app{
      "dlsys: the life of a deep-learning model after training.\n"
      "Pack a TorchScript model into a signed, reproducible archive; inspect it; verify its\n"
      "integrity, signature and fitness for a target machine.",
      "dlsys"};
  app.set_version_flag("--version", DLSYS_VERSION);
  app.require_subcommand(1);
  app.fallthrough(false);
  bool verbose = false;
  app.add_flag("-v,--verbose", verbose, "log debug messages to stderr");
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
  if (verbose) spdlog::set_level(spdlog::level::debug);
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
