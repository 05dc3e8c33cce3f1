#include "algo/leaky_bucket.hpp"

#include <algorithm>
#include <stdexcept>

namespace sluice::algo {

static uint64_t per_request(uint64_t rate, uint64_t period_ns)
{
	if (rate == 0)
		throw std::invalid_argument("leaky bucket: rate must be at least 1 per period");
	return period_ns / rate;
}

static uint64_t max_slack(uint32_t slack, uint64_t per_request_ns)
{
	uint64_t ns = 0;
	if (__builtin_mul_overflow(uint64_t(slack), per_request_ns, &ns))
		throw std::invalid_argument("leaky bucket: slack * per-request time overflows 64 bits");
	return ns;
}

LeakyBucket::LeakyBucket(uint64_t rate, uint64_t period_ns, uint32_t slack)
	: per_request_ns_(per_request(rate, period_ns)), max_slack_ns_(max_slack(slack, per_request_ns_))
{
}

uint64_t LeakyBucket::take(uint64_t now_ns)
{
	std::lock_guard lock(mu_);
	// How long the limiter has been idle past the last permission; 0 if the
	// last permission is still in the future.
	uint64_t idle = now_ns > next_ns_ ? now_ns - next_ns_ : 0;

	if (!started_ || (max_slack_ns_ == 0 && idle > per_request_ns_))
		next_ns_ = now_ns;
	else if (max_slack_ns_ > 0 && idle > max_slack_ns_ + per_request_ns_)
		next_ns_ = now_ns - max_slack_ns_; // bank at most maxSlack of idle time
	else
		next_ns_ += per_request_ns_;
	started_ = true;
	return std::max(now_ns, next_ns_);
}

} // namespace sluice::algo
