// Rates as operators write them ("100/s", "6000/m", "50000/h") and as the data
// path uses them (a GCRA interval and tolerance in nanoseconds).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "sluice/abi.h"

namespace sluice::policy {

struct Rate {
  uint32_t tokens = 0;    // units admitted per period; 0 = no rate set
  uint32_t period_s = 1;  // 1, 60 or 3600

  bool is_set() const { return tokens != 0; }
  bool operator==(const Rate&) const = default;
};

// The largest rate a single bucket can express: one unit per nanosecond.
inline constexpr uint64_t kMaxRatePerSecond = 1'000'000'000;
inline constexpr uint32_t kMaxBurst = 1'000'000'000;

// Throws UsageError naming `what` (e.g. "--rate") when `text` is not a rate.
Rate parse_rate(std::string_view text, std::string_view what);
std::string to_string(const Rate& rate);

// One second's worth of the rate, at least 1: the burst when none is given.
uint32_t default_burst(const Rate& rate);

// The data path's form: interval = period / tokens, tolerance = burst × interval.
sl_rate to_kernel(const Rate& rate, uint32_t burst);
// Inverse of to_kernel for the fields the operator wrote.
Rate rate_of(const sl_rate& kernel);

}  // namespace sluice::policy
