#include "algo/token_bucket.hpp"

#include <algorithm>
#include <limits>

namespace sluice::algo {

TokenBucket::TokenBucket(uint64_t interval_ns, uint64_t burst)
	: interval_ns_(interval_ns), burst_(burst), capacity_(Credit(burst) * interval_ns),
	  credit_(capacity_)
{
}

TokenBucket::Credit TokenBucket::credit_at(uint64_t now_ns) const
{
	if (interval_ns_ == kZeroRate)
		return credit_;
	// Backwards clock: measure from now_ns itself, so nothing refills.
	uint64_t from = std::min(last_ns_, now_ns);
	return std::min(capacity_, credit_ + (now_ns - from));
}

bool TokenBucket::allow_n(uint64_t now_ns, uint64_t n)
{
	if (interval_ns_ == kUnlimited)
		return true;
	if (n > burst_)
		return false;

	std::lock_guard lock(mu_);
	Credit credit = credit_at(now_ns);
	Credit cost = Credit(n) * interval_ns_;
	if (credit < cost)
		return false; // like x/time/rate, a refusal stores nothing
	credit_ = credit - cost;
	last_ns_ = now_ns;
	return true;
}

double TokenBucket::tokens_at(uint64_t now_ns) const
{
	if (interval_ns_ == kUnlimited)
		return std::numeric_limits<double>::infinity();
	std::lock_guard lock(mu_);
	return double(credit_at(now_ns)) / double(interval_ns_);
}

} // namespace sluice::algo
