// The whole command line as a function, so main() and the CLI fuzzer share it.
#pragma once

#include "cli/context.hpp"

namespace sluice::cli {

// Parses and runs one command; returns the process exit code (0 ok, 1 the
// system refused, 2 a bad command). `backend` null: act on the kernel.
int run_cli(int argc, const char* const* argv, Backend* backend = nullptr);

}  // namespace sluice::cli
