#include "algo/gcra.hpp"

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <string>

#include "sluice/gcra.h"

namespace sluice::algo {

sl_rate Gcra::make_rate(uint64_t interval_ns, uint32_t burst)
{
	uint64_t tolerance_ns = 0;
	if (__builtin_mul_overflow(interval_ns, uint64_t(burst), &tolerance_ns))
		throw std::invalid_argument("gcra: burst " + std::to_string(burst) + " * interval " +
					    std::to_string(interval_ns) + " ns overflows 64 bits");
	sl_rate rate{};
	rate.interval_ns = interval_ns;
	rate.tolerance_ns = tolerance_ns;
	rate.burst = burst;
	return rate;
}

static const sl_rate &checked(const sl_rate &rate)
{
	if (rate.interval_ns > Gcra::kMaxSpanNs || rate.tolerance_ns > Gcra::kMaxSpanNs - rate.interval_ns)
		throw std::invalid_argument("gcra: interval " + std::to_string(rate.interval_ns) +
					    " ns + tolerance " + std::to_string(rate.tolerance_ns) +
					    " ns exceeds 2^63 ns; the TAT arithmetic would wrap");
	return rate;
}

Gcra::Gcra(const sl_rate &rate, uint64_t tat_ns) : rate_(checked(rate)), tat_(tat_ns) {}

bool Gcra::allow(uint64_t now_ns)
{
	if (rate_.interval_ns == 0)
		return true;

	uint64_t seen = tat_.load(std::memory_order_acquire);
	for (;;) {
		__u64 next = 0;
		if (!sl_gcra_conforms(seen, now_ns, rate_.interval_ns, rate_.tolerance_ns, &next))
			return false;
		// On failure `seen` is reloaded and the unit decided again, as in
		// bucket_take().
		if (tat_.compare_exchange_weak(seen, next, std::memory_order_acq_rel,
					       std::memory_order_acquire))
			return true;
	}
}

double Gcra::tokens_at(uint64_t now_ns) const
{
	if (rate_.interval_ns == 0)
		return std::numeric_limits<double>::infinity();
	uint64_t ahead = std::max(tat_ns(), now_ns) - now_ns; // how far the TAT runs ahead of now
	if (ahead >= rate_.tolerance_ns)
		return 0.0;
	return double(rate_.tolerance_ns - ahead) / double(rate_.interval_ns);
}

} // namespace sluice::algo
