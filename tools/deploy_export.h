// dlsys deploy export: writes what a user applies to a real cluster (KServe, Kubernetes,
// Dockerfile) for one model's route in one environment (lib/deploy/export.h).
#pragma once

#include <CLI/CLI.hpp>

#include "cli.h"

namespace dlsys::cli::deploy_export {
// Adds the `export` subcommand to the `deploy` App. The registry directory is read at run time
// from the deploy App's --registry option, else deploy::DefaultRegistryDir().
void Register(CLI::App& deploy, RunFn& run);
}  // namespace dlsys::cli::deploy_export
