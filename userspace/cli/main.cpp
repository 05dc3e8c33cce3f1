// sluice: kernel-assisted admission control.
#include "cli/app.hpp"

int main(int argc, char** argv) { return sluice::cli::run_cli(argc, argv); }
