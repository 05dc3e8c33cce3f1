#include "algo/rolling_window.hpp"

#include <stdexcept>
#include <string>

namespace sluice::algo {

BucketClock::BucketClock(uint64_t window_ns, uint32_t buckets, uint64_t origin_ns)
	: window_ns_(window_ns), bucket_ns_(0), buckets_(buckets), origin_ns_(origin_ns)
{
	if (buckets == 0)
		throw std::invalid_argument("rolling window: bucket count must be at least 1");
	if (window_ns == 0 || window_ns % buckets != 0)
		throw std::invalid_argument("rolling window: window of " + std::to_string(window_ns) +
					    " ns does not split into " + std::to_string(buckets) +
					    " equal non-empty buckets");
	bucket_ns_ = window_ns / buckets;
}

uint64_t BucketClock::bucket_number(uint64_t now_ns) const
{
	if (now_ns < origin_ns_)
		return 0;
	return (now_ns - origin_ns_) / bucket_ns_;
}

} // namespace sluice::algo
