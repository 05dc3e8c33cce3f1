#include "cli/args.hpp"

#include <charconv>
#include <cstdlib>

#include "core/error.hpp"

namespace sluice::cli {

uint64_t parse_uint(std::string_view text, const std::string& what, uint64_t lo, uint64_t hi) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec == std::errc::invalid_argument || end != text.data() + text.size())
    throw UsageError(what + " '" + std::string(text) + "': expected a whole number from " + std::to_string(lo) +
                     " to " + std::to_string(hi));
  if (ec == std::errc::result_out_of_range || v < lo || v > hi)
    throw UsageError(what + " " + std::string(text) + " is out of range (" + std::to_string(lo) + ".." +
                     std::to_string(hi) + ")");
  return v;
}

double parse_double(std::string_view text, const std::string& what, double lo, double hi) {
  std::string s(text);
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size())
    throw UsageError(what + " '" + s + "': expected a number");
  if (!(v >= lo && v <= hi))
    throw UsageError(what + " " + s + " is out of range (" + std::to_string(lo) + ".." + std::to_string(hi) + ")");
  return v;
}

}  // namespace sluice::cli
