#include "algo/sre_throttle.hpp"

#include <algorithm>
#include <stdexcept>

namespace sluice::algo {

SreThrottle::SreThrottle(const SreConfig &config, uint64_t origin_ns)
	: config_(config), window_(config.window_ns, config.buckets, origin_ns)
{
	if (!(config.k > 0))
		throw std::invalid_argument("sre throttle: K must be positive");
}

void SreThrottle::record(uint64_t now_ns, uint64_t requests, uint64_t accepts)
{
	Bucket &bucket = window_.current(now_ns);
	bucket.requests += requests;
	bucket.accepts += accepts;
}

void SreThrottle::record(uint64_t now_ns, const TickStats &tick)
{
	const uint64_t accepted = tick.completed - std::min(tick.errors, tick.completed);
	record(now_ns, tick.requests, accepted);
}

uint64_t SreThrottle::requests(uint64_t now_ns) const
{
	uint64_t total = 0;
	window_.for_each(now_ns, [&](const Bucket &b) { total += b.requests; });
	return total;
}

uint64_t SreThrottle::accepts(uint64_t now_ns) const
{
	uint64_t total = 0;
	window_.for_each(now_ns, [&](const Bucket &b) { total += b.accepts; });
	return total;
}

double SreThrottle::probability(uint64_t now_ns) const
{
	uint64_t requests = 0, accepts = 0;
	window_.for_each(now_ns, [&](const Bucket &b) {
		requests += b.requests;
		accepts += b.accepts;
	});
	if (requests < config_.min_requests)
		return 0.0;
	const double r = static_cast<double>(requests);
	return std::max(0.0, (r - config_.k * static_cast<double>(accepts)) / (r + 1.0));
}

} // namespace sluice::algo
