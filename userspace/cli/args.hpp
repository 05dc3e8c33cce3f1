// Parsing command-line values, with errors that name the option.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace sluice::cli {

// A whole number in [lo, hi]; throws UsageError naming `what` otherwise.
uint64_t parse_uint(std::string_view text, const std::string& what, uint64_t lo, uint64_t hi);
double parse_double(std::string_view text, const std::string& what, double lo, double hi);

}  // namespace sluice::cli
