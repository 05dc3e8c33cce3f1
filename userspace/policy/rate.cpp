#include "policy/rate.hpp"

#include <charconv>

#include "core/error.hpp"

namespace sluice::policy {

Rate parse_rate(std::string_view text, std::string_view what) {
  auto fail = [&](const std::string& why) -> Rate {
    throw UsageError(std::string(what) + " '" + std::string(text) + "': " + why);
  };
  auto slash = text.find('/');
  std::string_view count = text.substr(0, slash);
  std::string_view unit = slash == std::string_view::npos ? "s" : text.substr(slash + 1);

  uint64_t tokens = 0;
  auto [end, ec] = std::from_chars(count.data(), count.data() + count.size(), tokens);
  if (count.empty() || ec != std::errc() || end != count.data() + count.size()) {
    if (count.find('.') != std::string_view::npos)
      return fail("rates are whole numbers per period; write e.g. 150/m instead of 2.5/s");
    return fail("expected a rate like 100/s, 6000/m or 50000/h");
  }
  uint32_t period = 0;
  if (unit == "s" || unit == "sec" || unit == "second")
    period = 1;
  else if (unit == "m" || unit == "min" || unit == "minute")
    period = 60;
  else if (unit == "h" || unit == "hour")
    period = 3600;
  else
    return fail("unknown period '" + std::string(unit) + "'; use /s, /m or /h");
  if (tokens == 0) return fail("a rate must be at least 1 per period (to refuse everything, use a deny rule)");
  if (tokens / period > kMaxRatePerSecond || tokens > UINT32_MAX)
    return fail("at most " + std::to_string(kMaxRatePerSecond) + " per second");
  return Rate{static_cast<uint32_t>(tokens), period};
}

std::string to_string(const Rate& rate) {
  const char* unit = rate.period_s == 3600 ? "h" : rate.period_s == 60 ? "m" : "s";
  return std::to_string(rate.tokens) + "/" + unit;
}

uint32_t default_burst(const Rate& rate) {
  uint64_t per_second = (static_cast<uint64_t>(rate.tokens) + rate.period_s - 1) / rate.period_s;
  return per_second < 1 ? 1 : static_cast<uint32_t>(per_second);
}

sl_rate to_kernel(const Rate& rate, uint32_t burst) {
  sl_rate out{};
  if (!rate.is_set()) return out;  // interval 0: unlimited
  uint64_t period_ns = static_cast<uint64_t>(rate.period_s) * 1'000'000'000ull;
  out.interval_ns = (period_ns + rate.tokens / 2) / rate.tokens;  // nearest nanosecond
  if (out.interval_ns == 0) out.interval_ns = 1;
  out.tolerance_ns = out.interval_ns * burst;
  out.tokens = rate.tokens;
  out.period_s = rate.period_s;
  out.burst = burst;
  return out;
}

Rate rate_of(const sl_rate& kernel) { return kernel.tokens ? Rate{kernel.tokens, kernel.period_s} : Rate{}; }

}  // namespace sluice::policy
