// The command tree of `sluice`. Each group registers its subcommands on the
// CLI11 app; the callbacks throw UsageError/SystemError and main() turns
// those into one line and an exit code.
#pragma once

#include <CLI/CLI.hpp>

#include "cli/context.hpp"

namespace sluice::cli {

void add_attach_commands(CLI::App& app, GlobalOptions& g);  // attach, detach, status, reset
void add_policy_commands(CLI::App& app, GlobalOptions& g);  // service, tenant, limit, deny, apply, export
void add_stats_command(CLI::App& app, GlobalOptions& g);    // stats
void add_run_command(CLI::App& app, GlobalOptions& g);      // run (the controller)

}  // namespace sluice::cli
