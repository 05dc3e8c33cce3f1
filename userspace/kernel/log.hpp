// Messages from libbpf and libxdp. They are kept, not printed, so the CLI
// can say what went wrong in one line; `-v` (or SLUICE_DEBUG=1) prints them.
#pragma once

#include <string>

namespace sluice::kernel {

void capture_library_logs(bool verbose);
// The last warning libbpf or libxdp emitted, trimmed; empty if none.
std::string last_library_message();
void clear_library_message();
// " (that message)", or "" if there is none: for the end of an error.
std::string library_detail();
// `what`, then the library's message in parentheses if there is one.
std::string with_library_message(const std::string& what);

}  // namespace sluice::kernel
